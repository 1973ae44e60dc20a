"""Which kernel runs a fused spiking time loop: the one place that decides, and logs it.

``PYTORCH_KALDI_SNN_KERNEL`` (default ``auto``) picks it for every fused layer:

=========== ==========================================================================
``auto``    ``triton`` on CUDA tensors when the triton package imports and its first launch
            there matches the PyTorch operators (:mod:`.first_launch`), ``native`` on CPU
            float32/float64 tensors when the C kernels build, ``torch`` otherwise
``triton``  :mod:`.triton_fused`: one Triton launch per layer and direction (v2: per step a
            cuBLAS product and one launch); needs a CUDA tensor, or a CPU tensor with
            ``TRITON_INTERPRET=1`` (Triton's interpreter)
``native``  :mod:`.native`: one C call per time step (CPU float32/float64)
``torch``   PyTorch operators per time step (any device and dtype)
=========== ==========================================================================

Under ``auto`` a Triton launch that fails or disagrees at its first use on a device and dtype
(no C compiler or ``Python.h`` for the launcher, no ``libcuda.so.1``, an unwritable cache, a
ptxas the driver refuses) is a WARNING naming the reason, and the next back end runs. A forced
choice that cannot run raises :class:`ConfigError` instead of falling back, and a forced
``triton`` whose launch fails raises that failure. The choice is logged once per device type and
dtype on ``pytorch_kaldi_snn.kernels.backend``, as ``kernels: native C (cpu, float32; auto:
Triton is tried on CUDA only)``; ``run_exp`` puts these lines in log.log and on the console.

Batch-1 streaming (:class:`.streaming.StreamingSNN`) follows the same rule through
:func:`streaming_kernel`: ``triton`` is :mod:`.triton_streaming` (one launch per layer and
frame), ``native`` the C ``stream_frame``, ``torch`` PyTorch operators; under ``auto`` it takes
the verdict of the fused kernels' first launch on the same device and dtype (same compiler,
driver and cache).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, NamedTuple, Optional, Set, Tuple

import torch

from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.kernels import native

log = logging.getLogger(__name__)

KERNEL_ENV = "PYTORCH_KALDI_SNN_KERNEL"
KERNELS = ("auto", "triton", "native", "torch")
LABELS = {"triton": "Triton", "native": "native C", "torch": "PyTorch operators"}
# Device types on which ``auto`` tries Triton (after its first-launch check). Not the CPU: there
# Triton only runs in its interpreter, which is for tests.
AUTO_TRITON_DEVICES: Tuple[str, ...] = ("cuda",)
_REPLACED_ENV = "PYTORCH_KALDI_SNN_NATIVE"  # the earlier switch; ignoring it would mislead
_HALF = (torch.float16, torch.bfloat16)  # the Triton path runs these in float32
_logged: Set[Tuple[str, str, str, torch.dtype]] = set()
# first-launch verdicts per (device, dtype the kernels run in): None = Triton agreed, else why not
_verdicts: Dict[Tuple[str, torch.dtype], Optional[str]] = {}
_forced: Optional[str] = None  # set by :func:`forcing` while the first-launch check runs


class Choice(NamedTuple):
    name: str  # triton, native or torch
    want: str  # the value asked for
    reason: str  # why, under auto ("" when forced)
    warn: bool  # a fallback the user should hear about


def requested() -> str:
    """The value of ``PYTORCH_KALDI_SNN_KERNEL`` (``auto`` when unset), validated."""
    if _forced is not None:
        return _forced
    if _REPLACED_ENV in os.environ:
        raise ConfigError(f"{_REPLACED_ENV} is no longer read; set {KERNEL_ENV}=torch (or "
                          f"native) instead and unset {_REPLACED_ENV}")
    value = os.environ.get(KERNEL_ENV, "auto")
    if value not in KERNELS:
        raise ConfigError(f"{KERNEL_ENV}={value!r} is not a kernel; valid: {', '.join(KERNELS)}")
    return value


@contextmanager
def forcing(kernel: str) -> Iterator[None]:
    """Run ``kernel`` (``triton`` or ``torch``) whatever the environment says, unlogged: the
    first-launch check runs both paths on the same inputs."""
    global _forced
    before, _forced = _forced, kernel
    try:
        yield
    finally:
        _forced = before


def triton_package_missing() -> bool:
    return importlib.util.find_spec("triton") is None


def triton_unavailable(device: torch.device) -> Optional[str]:
    """Why the Triton kernels cannot run on ``device``, or None when they can."""
    if triton_package_missing():
        return "the triton package is not installed"
    if device.type == "cuda":
        return None
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return f"Triton needs a CUDA tensor or TRITON_INTERPRET=1 on CPU (got a {device.type} tensor)"


def _native_ok(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and native.load(x.dtype) is not None


def triton_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the Triton kernels compute in for inputs of ``dtype``."""
    return torch.float32 if dtype in _HALF else dtype


# (device, dtype) -> None when Triton's first launch there agreed, else why not
FirstLaunchCheck = Callable[[torch.device, torch.dtype], Optional[str]]


def _triton_failure(device: torch.device, dtype: torch.dtype,
                    check: FirstLaunchCheck) -> Optional[str]:
    """The first-launch verdict for ``device`` and ``dtype``, checked once per process."""
    key = (str(device), triton_dtype(dtype))
    if key not in _verdicts:
        _verdicts[key] = check(device, key[1])
    return _verdicts[key]


def _auto(x: torch.Tensor, check: FirstLaunchCheck) -> Choice:
    """Under ``auto``: Triton if it may run and passed its first launch, else the next one."""
    reason, warn = "Triton is tried on CUDA only", False
    if x.device.type in AUTO_TRITON_DEVICES:
        if triton_package_missing():
            reason = ("the triton package is not installed (pip install "
                      "'pytorch-kaldi-snn[gpu]'); per-step operators launch ~30 kernels a step")
            warn = True
        else:
            failure = _triton_failure(x.device, x.dtype, check)
            if failure is None:
                return Choice("triton", "auto", "its first launch matched the PyTorch "
                              "operators", False)
            reason, warn = f"Triton's first launch failed: {failure}", True
    if _native_ok(x):
        return Choice("native", "auto", reason, warn)
    if x.device.type == "cpu":
        reason = f"{reason}; no C kernels for {_dtype_name(x.dtype)} here"
    return Choice("torch", "auto", reason, warn)


def _pick(x: torch.Tensor, check: FirstLaunchCheck) -> Choice:
    """The kernel that runs on ``x``; a forced kernel that cannot run raises. ``check`` is the
    first-launch check ``auto`` runs before it trusts Triton (kernels.first_launch, which runs
    the fused recurrences: they pass it, so that this module imports neither)."""
    want = requested()
    if want == "auto":
        return _auto(x, check)
    if want == "triton":
        reason = triton_unavailable(x.device)
        if reason is not None:
            raise ConfigError(f"{KERNEL_ENV}=triton: {reason}")
    elif want == "native" and not _native_ok(x):
        raise ConfigError(f"{KERNEL_ENV}=native: the C kernels need CPU float32/float64 "
                          f"tensors and a C compiler (got {x.device.type} {x.dtype})")
    return Choice(want, want, "", False)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def describe(what: str, choice: Choice, x: torch.Tensor) -> str:
    """``kernels: native C (cpu, float32; auto: why)``, or ``...; KERNEL_ENV=torch)`` forced."""
    setting = f"auto: {choice.reason}" if choice.want == "auto" else f"{KERNEL_ENV}={choice.want}"
    return (f"{what}: {LABELS[choice.name]} ({x.device.type}, {_dtype_name(x.dtype)}; "
            f"{setting})")


def _log_once(what: str, choice: Choice, x: torch.Tensor) -> None:
    key = (what, choice.name, x.device.type, x.dtype)
    if _forced is None and key not in _logged:
        _logged.add(key)
        log.log(logging.WARNING if choice.warn else logging.INFO, describe(what, choice, x))


def announce(device: torch.device, dtype: torch.dtype, check: FirstLaunchCheck) -> str:
    """Choose the fused recurrences' kernel for ``device`` and ``dtype`` now (the first-launch
    check included) and log the line even if this process logged it before: each run's
    log.log names its kernel."""
    x = torch.empty(0, device=device, dtype=dtype)
    choice = _pick(x, check)
    _logged.discard(("kernels", choice.name, device.type, dtype))
    _log_once("kernels", choice, x)
    return choice.name


def choose(x: torch.Tensor, check: FirstLaunchCheck) -> str:
    """``triton``, ``native`` or ``torch`` for a time loop over ``x``; logged once per kind."""
    choice = _pick(x, check)
    _log_once("kernels", choice, x)
    return choice.name


def streaming_kernel(weight: torch.Tensor, check: FirstLaunchCheck) -> str:
    """``triton``, ``native`` or ``torch`` for batch-1 streaming on ``weight``'s device and
    dtype (float32/float64 for Triton: its quantiser runs in the state's dtype); logged."""
    choice = _pick(weight, check)
    if choice.name == "triton" and weight.dtype not in (torch.float32, torch.float64):
        if choice.want == "triton":
            raise ConfigError(f"{KERNEL_ENV}=triton: streaming needs float32/float64 weights "
                              f"(got {weight.dtype})")
        choice = Choice("torch", "auto", "Triton streams float32/float64 only", False)
    _log_once("streaming kernels", choice, weight)
    return choice.name
