"""State and step dynamics of the spiking neurons as tensor operators (Eq. 7-8, 16-21).

Symbols (per layer of n neurons, batch B):

* ``i`` — synaptic current I[n]; ``v`` — membrane potential V[n];
* ``y`` — delivered output Ŷ[n] = q[n]·Δ of the multi-bit quantiser (Eq. 22), Δ = b/2^N;
* R[n] — reset term subtracted from the membrane (Eq. 8): R = Ŷ, what was emitted (for
  binary spikes with k = 1, Ŷ = γ so this is Eq. 8's γY). The reset is not detached:
  gradients flow through the surrogate, the P[n] of Eq. 12-13. Subtracting γ·q = k·Ŷ instead
  cannot be trained (its backward factor per step is |α − k·s|, 3 for k = 4, so gradients grow
  as 3^T), which is why it is the only reset; see docs/model.md. The compiled kernels take
  R = c·Ŷ with c = :data:`RESET_SCALE`.

The membrane update is shared by all variants (Eq. 8)::

    V[n] = α ⊙ V[n−1] + I[n] − R[n−1],    Ŷ[n] = Q(V[n])

Only the synaptic current differs (:mod:`.variants` names each variant's current function).
The step-by-step loops of :mod:`pytorch_kaldi_snn.layers.recurrence` (which quantise V with
:func:`~pytorch_kaldi_snn.neurons.quantizer.quantize`), the authors' reading and the PyTorch
streaming path all step through these functions.

The functions use tensor operators and methods only: this module imports no torch, so that the
neuron registry (:mod:`.variants`), which names each variant's current, is read by the cfg
reader without loading PyTorch (``tests/project/test_import_graph.py``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:
    from torch import Tensor

RESET_SCALE = 1.0  # c of R = c·Ŷ in the compiled kernels: R = Ŷ


class SpikingState(NamedTuple):
    """Neuron state carried between steps; each tensor is (B, n)."""

    i: Tensor  # synaptic current I[n−1]
    v: Tensor  # membrane potential V[n−1]
    y: Tensor  # delivered output Ŷ[n−1]


def zero_state(like: Tensor, n: int) -> SpikingState:
    """All-zero state for a batch like ``like`` (…, B, ·) and ``n`` neurons."""
    zeros = like.new_zeros(like.shape[-2], n)
    return SpikingState(zeros, zeros, zeros)


def membrane(i: Tensor, state: SpikingState, alpha: Tensor) -> Tensor:
    """Eq. 8: V[n] = α ⊙ V[n−1] + I[n] − Ŷ[n−1]."""
    return alpha * state.v + i - state.y


def lif_current(x_t: Tensor, i_prev: Tensor, beta: Tensor) -> Tensor:
    """Eq. 7: I[n] = β ⊙ I[n−1] + x_t (x_t the step's masked weighted input sums)."""
    return beta * i_prev + x_t


def gated_current(g_t: Tensor, i_prev: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Eq. 16-18 (and 19-21 with the recurrent sums in g_t): I = F⊙I[n−1] + (1−F)⊙C.

    ``g_t`` (B, 2n) holds the forget and candidate pre-activations; F = σ(g_f),
    C = mask ⊙ ReLU(g_c).
    """
    n = g_t.shape[-1] // 2
    f = g_t[..., :n].sigmoid()
    c = g_t[..., n:].relu()
    if mask is not None:
        c = c * mask
    return f * i_prev + (1.0 - f) * c
