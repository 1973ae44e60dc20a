"""The check ``auto`` runs (:mod:`.backend`, given it by :mod:`.fused`) before it trusts Triton
on a device: one tiny launch per kernel, compared with the PyTorch operators.

A Triton kernel's first launch compiles it and a C launcher (which needs a C compiler and
``Python.h``), loads ``libcuda.so.1``, writes Triton's cache and asks the driver to accept
ptxas' output; any of these can fail on a machine that imports triton fine. So the first time
``auto`` would run Triton on a device and dtype, the forward and backward of the three fused
recurrences (traditional, v1, v2: both kernels, v2's as per-step launches between cuBLAS
products) run once on a few steps of a few neurons, with ``PYTORCH_KALDI_SNN_KERNEL`` forced to
``triton`` and then to ``torch``. Any exception, non-finite value or disagreement is the reason
:func:`triton_failure` returns, and ``auto`` takes the next back end.

Agreement: in float64 every result within 1e-9 of the operators' (relative to its largest
magnitude); in float32 the quantised outputs may differ by one level at a few elements (the
operators contract a multiply-add that the kernels keep apart), so a float32 check that sees no
flipped level compares every result within 1e-3, and one that sees some requires them to be
few (at most 1 in 20 outputs) and one level each.
"""
from __future__ import annotations

from typing import Callable, List, Mapping, Optional

import torch
from torch import Tensor

from pytorch_kaldi_snn.cli import one_line
from pytorch_kaldi_snn.kernels import backend
from pytorch_kaldi_snn.neurons.dynamics import SpikingState

# "lif", "v1", "v2" -> the fused recurrence (kernels.fused passes its own: it imports this module)
Recurrences = Mapping[str, Callable]

STEPS, BATCH, NEURONS = 5, 3, 4  # below one tile, so the bounds masks are exercised too
N_BITS, K, B = 2, 1, 2.0  # levels Δ = 0.5 from γ = 0.5: a mix of zero and non-zero outputs
LEVEL = B / 2 ** N_BITS
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-3}
MAX_FLIP_FRACTION = 0.05


def inputs(kind: str, device: torch.device, dtype: torch.dtype, steps: int = STEPS,
           batch: int = BATCH, neurons: int = NEURONS) -> List[Tensor]:
    """Leaves of one recurrence: input, [W_r], α, [β] and an initial state (I, V, Ŷ)."""
    gen = torch.Generator().manual_seed(0)
    width = neurons if kind == "lif" else 2 * neurons

    def rand(*shape: int, scale: float = 1.0, low: float = 0.0) -> Tensor:
        return low + scale * torch.rand(*shape, generator=gen, dtype=torch.float64)

    leaves = [rand(steps, batch, width, scale=3.0, low=-1.0)]
    if kind == "v2":
        scale = 0.6 / max(1.0, neurons ** 0.5 / 2)  # keeps v2's recurrent drive O(1)
        leaves.append(rand(neurons, 2 * neurons, scale=scale, low=-scale / 2))
    leaves.append(rand(neurons, scale=0.5, low=0.5))
    if kind == "lif":
        leaves.append(rand(neurons, scale=0.5, low=0.5))
    leaves += [rand(batch, neurons), rand(batch, neurons), rand(batch, neurons)]
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in leaves]


def run(kind: str, leaves: List[Tensor], recurrences: Recurrences) -> List[Tensor]:
    """Ŷ, v_max, the final state and the gradients of a loss that touches all of them."""
    fn = recurrences[kind]
    *lead, i0, v0, y0 = leaves
    b = lead[0].new_tensor(B)
    y, v_max, state = fn(*lead, b, N_BITS, K, "pwl", None, SpikingState(i0, v0, y0))
    weights = torch.linspace(-1.0, 2.0, y.numel(), dtype=y.dtype, device=y.device).view_as(y)
    loss = (weights * y).sum() + (0.3 * state.i + 0.7 * state.v - 1.1 * state.y).sum()
    return [r.detach() for r in (y, v_max, *state, *torch.autograd.grad(loss, leaves))]


def disagreement(ref: List[Tensor], got: List[Tensor], dtype: torch.dtype) -> Optional[str]:
    """How the Triton results ``got`` differ from the operators' ``ref`` beyond what the dtype
    allows, or None (see the module's note on agreement)."""
    if not all(bool(torch.isfinite(t).all()) for t in got):
        return "non-finite results"
    level = LEVEL
    flips = (ref[0] - got[0]).abs()
    flipped = int((flips > level / 2).sum())
    if flipped and dtype == torch.float32:
        if flipped > MAX_FLIP_FRACTION * flips.numel() or float(flips.max()) > 1.5 * level:
            return f"{flipped} of {flips.numel()} outputs differ from the PyTorch operators"
        return None
    for index, (a, b) in enumerate(zip(ref, got)):
        error = float((a - b).abs().max()) if a.numel() else 0.0
        if error > TOLERANCE[dtype] * max(1.0, float(a.abs().max()) if a.numel() else 0.0):
            return f"result {index} differs from the PyTorch operators by {error:.3g}"
    return None


def _one_line(err: BaseException) -> str:
    text = one_line(err)
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def triton_failure(device: torch.device, dtype: torch.dtype,
                   recurrences: Recurrences) -> Optional[str]:
    """None when the Triton kernels run and agree with the PyTorch operators on ``device`` in
    ``dtype`` (float32 or float64); otherwise the reason, on one line."""
    # grad on, autocast off, even inside evaluation or a bf16 region: this compares kernels
    with torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast(device.type, enabled=False):
        for kind in ("lif", "v1", "v2"):
            leaves = inputs(kind, device, dtype)
            try:
                with backend.forcing("torch"):
                    ref = run(kind, leaves, recurrences)
                with backend.forcing("triton"):
                    got = run(kind, leaves, recurrences)
            except Exception as err:  # any failure of a first launch means: not here
                return _one_line(err)
            reason = disagreement(ref, got, dtype)
            if reason is not None:
                return f"{kind}: {reason}"
    return None
