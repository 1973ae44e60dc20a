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

A forced choice that cannot run raises :class:`ConfigError` instead of falling back. Batch-1
streaming (:class:`.streaming.StreamingSNN`) follows the same rule through
:func:`streaming_kernel`: ``triton`` is :mod:`.triton_streaming` (one launch per layer and
frame), ``native`` the C ``stream_step``, ``torch`` PyTorch operators.
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
_logged: Set[Tuple[str, str, str, torch.dtype]] = set()


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


def _pick(x: torch.Tensor) -> Tuple[str, str]:
    """(kernel that runs on ``x``, value asked for); a forced kernel that cannot run raises."""
    want = requested()
    if want == "auto":
        if x.device.type == "cuda" and triton_unavailable(x.device) is None:
            return "triton", want
        return ("native" if _native_ok(x) else "torch"), want
    if want == "triton":
        reason = triton_unavailable(x.device)
        if reason is not None:
            raise ConfigError(f"{KERNEL_ENV}=triton: {reason}")
    elif want == "native" and not _native_ok(x):
        raise ConfigError(f"{KERNEL_ENV}=native: the C kernels need CPU float32/float64 "
                          f"tensors and a C compiler (got {x.device.type} {x.dtype})")
    return want, want


def _log_once(what: str, name: str, x: torch.Tensor, want: str) -> None:
    key = (what, name, x.device.type, x.dtype)
    if key not in _logged:
        _logged.add(key)
        log.info("%s: %s kernels (%s, %s; %s=%s)", what, name, x.device.type, x.dtype,
                 KERNEL_ENV, want)


def choose(x: torch.Tensor) -> str:
    """``triton``, ``native`` or ``torch`` for a time loop over ``x``; logged once per kind."""
    name, want = _pick(x)
    _log_once("fused spiking recurrence", name, x, want)
    return name


def streaming_kernel(weight: torch.Tensor) -> str:
    """``triton``, ``native`` or ``torch`` for batch-1 streaming on ``weight``'s device and
    dtype (float32/float64 for Triton: its quantiser runs in the state's dtype); logged."""
    name, want = _pick(weight)
    if name == "triton" and weight.dtype not in (torch.float32, torch.float64):
        if want == "triton":
            raise ConfigError(f"{KERNEL_ENV}=triton: streaming needs float32/float64 weights "
                              f"(got {weight.dtype})")
        name = "torch"
    _log_once("streaming inference", name, weight, want)
    return name
