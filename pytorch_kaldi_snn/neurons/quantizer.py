"""Multi-bit output of a spiking neuron (Eq. 22) with a surrogate gradient.

With ``N`` output bits and membrane maximum ``b`` the step is Δ = b / 2^N and the threshold is
γ = k·Δ for an integer ``k`` in [0, 2^N − 1]. The integer output level is::

    q = 0                                  if V ≤ γ
    q = clamp(floor(V / Δ), 1, 2^N − 1)    if V > γ

which is Eq. 22 clamped to the top level. The lower clamp makes every ``N`` usable: with N = 1
and k = 0 a neuron above 0 emits the single non-zero level instead of nothing.

**Delivered value.** A layer delivers Ŷ = q·Δ (the level rescaled to membrane units), not q.
Ŷ is what the next layer, the recurrent products of v2 (Eq. 19-20), the reset term of Eq. 8 and
the readout receive; it is zero exactly when q is zero, so the cost model of Eq. 10 counts the
same non-zero inputs either way (the scale Δ folds into the next layer's weights on hardware).

Δ, γ and the top level 2^N − 1 are computed here only (:func:`step_size`, :func:`threshold`,
:func:`kernel_scalars`; the top level and N's range in :mod:`.levels`, which the options share);
every back end takes them from these functions.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Tuple

import torch
from torch import Tensor

from pytorch_kaldi_snn.neurons.levels import MAX_BITS, MIN_BITS, top_level
from pytorch_kaldi_snn.neurons.surrogate import surrogate_grad


def check_bits_threshold(n_bits: int, k: int) -> None:
    """Raise ``ValueError`` unless 1 ≤ N ≤ 16 and 0 ≤ k ≤ 2^N − 1."""
    if not MIN_BITS <= n_bits <= MAX_BITS:
        raise ValueError(f"n_bits = {n_bits} is outside [{MIN_BITS}, {MAX_BITS}]")
    top = top_level(n_bits)
    if not 0 <= k <= top:
        raise ValueError(f"threshold k = {k} is outside [0, {top}] for {n_bits}-bit outputs")


def step_size(b: Tensor, n_bits: int) -> Tensor:
    """Δ = b / 2^N, in b's dtype and on b's device."""
    return b / 2 ** n_bits


def threshold(b: Tensor, n_bits: int, k: int) -> Tensor:
    """γ = k·Δ (exact: dividing by a power of two rounds nothing)."""
    return k * step_size(b, n_bits)


class KernelScalars(NamedTuple):
    """Δ, γ and 2^N − 1 as Python floats, the scalar arguments of the compiled kernels."""

    delta: float
    gamma: float
    qmax: float


def kernel_scalars(b: Tensor, n_bits: int, k: int) -> KernelScalars:
    """Δ, γ, 2^N − 1 of one call as floats (reads b from its device once)."""
    return KernelScalars(float(step_size(b, n_bits)), float(threshold(b, n_bits, k)),
                         float(top_level(n_bits)))


def quantize_level(v: Tensor, b: Tensor, n_bits: int, k: int) -> Tensor:
    """Integer output level q of Eq. 22 (as a float tensor), clamped to [1, 2^N − 1] above γ."""
    level = torch.floor(v / step_size(b, n_bits)).clamp(1, top_level(n_bits))
    return torch.where(v > threshold(b, n_bits, k), level, torch.zeros_like(level))


def delivered(v: Tensor, b: Tensor, n_bits: int, k: int) -> Tensor:
    """Ŷ = q·Δ (no gradient path of its own; :func:`quantize` adds the surrogate)."""
    return quantize_level(v, b, n_bits, k) * step_size(b, n_bits)


class _Quantize(torch.autograd.Function):
    """Ŷ = q·Δ forward; dŶ/dV = surrogate(V) backward (no gradient to b)."""

    @staticmethod
    def forward(ctx: Any, v: Tensor, b: Tensor, n_bits: int, k: int, surrogate: str) -> Tensor:
        ctx.save_for_backward(v, b)
        ctx.n_bits, ctx.k, ctx.surrogate = n_bits, k, surrogate
        return delivered(v, b, n_bits, k)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> Tuple[Tensor, None, None, None, None]:
        v, b = ctx.saved_tensors
        gamma = threshold(b, ctx.n_bits, ctx.k)
        return grad_out * surrogate_grad(ctx.surrogate, v, gamma, b), None, None, None, None


def quantize(v: Tensor, b: Tensor, n_bits: int, k: int, surrogate: str = "ste") -> Tensor:
    """Delivered multi-bit output Ŷ = q·Δ of Eq. 22 with surrogate gradient ``surrogate``.

    Args:
        v: membrane potentials V[n], any shape.
        b: 0-dim membrane maximum (a buffer; receives no gradient).
        n_bits: output bits N in [1, 16].
        k: threshold multiple, γ = k·b/2^N, in [0, 2^N − 1].
        surrogate: name in :data:`~pytorch_kaldi_snn.neurons.surrogate.SURROGATES`.
    """
    return _Quantize.apply(v, b.detach(), n_bits, k, surrogate)
