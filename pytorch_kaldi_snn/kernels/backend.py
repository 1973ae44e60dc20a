"""Which kernel runs a fused spiking time loop: the one place that decides, and logs it.

``PYTORCH_KALDI_SNN_KERNEL`` (default ``auto``) picks it for every fused layer:

=========== ==========================================================================
``auto``    ``triton`` on CUDA tensors when the triton package imports, ``native`` on CPU
            float32/float64 tensors when the C kernels build, ``torch`` otherwise
``triton``  :mod:`.triton_fused`: one Triton launch per layer and direction; needs a CUDA
            tensor, or a CPU tensor with ``TRITON_INTERPRET=1`` (Triton's interpreter)
``native``  :mod:`.native`: one C call per time step (CPU float32/float64)
``torch``   PyTorch operators per time step (any device and dtype)
=========== ==========================================================================

A forced choice that cannot run raises :class:`ConfigError` instead of falling back. The
streaming path (:class:`.streaming.StreamingSNN`) uses the C kernel unless ``torch`` is forced.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from typing import Optional, Set, Tuple

import torch

from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.kernels import native

log = logging.getLogger(__name__)

KERNEL_ENV = "PYTORCH_KALDI_SNN_KERNEL"
KERNELS = ("auto", "triton", "native", "torch")
_REPLACED_ENV = "PYTORCH_KALDI_SNN_NATIVE"  # the earlier switch; ignoring it would mislead
_logged: Set[Tuple[str, str, torch.dtype]] = set()


def requested() -> str:
    """The value of ``PYTORCH_KALDI_SNN_KERNEL`` (``auto`` when unset), validated."""
    if _REPLACED_ENV in os.environ:
        raise ConfigError(f"{_REPLACED_ENV} is no longer read; set {KERNEL_ENV}=torch (or "
                          f"native) instead and unset {_REPLACED_ENV}")
    value = os.environ.get(KERNEL_ENV, "auto")
    if value not in KERNELS:
        raise ConfigError(f"{KERNEL_ENV}={value!r} is not a kernel; valid: {', '.join(KERNELS)}")
    return value


def triton_unavailable(device: torch.device) -> Optional[str]:
    """Why the Triton kernels cannot run on ``device``, or None when they can."""
    if importlib.util.find_spec("triton") is None:
        return "the triton package is not installed"
    if device.type == "cuda":
        return None
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return f"Triton needs a CUDA tensor or TRITON_INTERPRET=1 on CPU (got a {device.type} tensor)"


def _native_ok(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and native.load(x.dtype) is not None


def choose(x: torch.Tensor) -> str:
    """``triton``, ``native`` or ``torch`` for a time loop over ``x``; logged once per kind."""
    want = requested()
    if want == "auto":
        if x.device.type == "cuda" and triton_unavailable(x.device) is None:
            name = "triton"
        else:
            name = "native" if _native_ok(x) else "torch"
    elif want == "triton":
        reason = triton_unavailable(x.device)
        if reason is not None:
            raise ConfigError(f"{KERNEL_ENV}=triton: {reason}")
        name = want
    elif want == "native":
        if not _native_ok(x):
            raise ConfigError(f"{KERNEL_ENV}=native: the C kernels need CPU float32/float64 "
                              f"tensors and a C compiler (got {x.device.type} {x.dtype})")
        name = want
    else:
        name = want
    key = (name, x.device.type, x.dtype)
    if key not in _logged:
        _logged.add(key)
        log.info("fused spiking recurrence: %s kernels (%s, %s; %s=%s)", name, x.device.type,
                 x.dtype, KERNEL_ENV, want)
    return name


def streaming_lib(weight: torch.Tensor) -> Optional[object]:
    """The C library for batch-1 streaming on ``weight``'s device and dtype, or None."""
    if requested() == "torch" or weight.device.type != "cpu":
        return None
    return native.load(weight.dtype)
