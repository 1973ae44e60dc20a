"""Step-by-step time loops of the three spiking layers (pure functions, time-major).

Symbols (per layer of n neurons, batch B, T steps):

* ``i`` — synaptic current I[n]; ``v`` — membrane potential V[n];
* ``y`` — delivered output Ŷ[n] = q[n]·Δ of the multi-bit quantiser (Eq. 22), Δ = b/2^N;
* R[n] — reset term subtracted from the membrane (Eq. 8): R = Ŷ, what was emitted (for
  binary spikes with k = 1, Ŷ = γ so this is Eq. 8's γY). The reset is not detached:
  gradients flow through the surrogate, the P[n] of Eq. 12-13. ``reset`` has the one mode
  ``"output"``: the former ``"threshold"`` (R = γ·q = k·Ŷ) cannot be trained, because its
  backward factor per step is |α − k·s| (3 for k = 4, s = 1), so gradients grow as 3^T
  (1e19 at 40 frames, NaN at 80); see docs/model.md.

The membrane update is shared by all variants (Eq. 8)::

    V[n] = α ⊙ V[n−1] + I[n] − R[n−1],    Ŷ[n] = Q(V[n])

Only the synaptic current differs: Eq. 7 (:func:`lif_loop`), Eq. 16-18 (:func:`v1_loop`),
Eq. 19-21 (:func:`v2_loop`). The fused kernels in ``pytorch_kaldi_snn.kernels.fused`` implement
the same signatures and semantics. ``b`` is constant during a call; the caller updates its EMA
from the returned ``v_max`` afterwards, which keeps these functions pure.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from pytorch_kaldi_snn.neurons.quantizer import quantize

RESET_MODES = ("output",)


class SpikingState(NamedTuple):
    """Neuron state carried between steps; each tensor is (B, n)."""

    i: Tensor  # synaptic current I[n−1]
    v: Tensor  # membrane potential V[n−1]
    y: Tensor  # delivered output Ŷ[n−1]


def zero_state(like: Tensor, n: int) -> SpikingState:
    """All-zero state for a batch like ``like`` (…, B, ·) and ``n`` neurons."""
    zeros = like.new_zeros(like.shape[-2], n)
    return SpikingState(zeros, zeros, zeros)


def reset_term(y: Tensor, k: int, reset: str) -> Tensor:
    """R[n−1] of Eq. 8: Ŷ (``reset="output"``, the only mode)."""
    return y


def membrane_step(i: Tensor, state: SpikingState, alpha: Tensor, b: Tensor, n_bits: int, k: int,
                  surrogate: str, reset: str) -> Tuple[Tensor, Tensor]:
    """Eq. 8 and Eq. 22 for one step: returns (V[n], Ŷ[n]) given the new current I[n]."""
    v = alpha * state.v + i - reset_term(state.y, k, reset)
    return v, quantize(v, b, n_bits, k, surrogate)


def lif_current(x_t: Tensor, i_prev: Tensor, beta: Tensor) -> Tensor:
    """Eq. 7: I[n] = β ⊙ I[n−1] + x_t (x_t the step's masked weighted input sums)."""
    return beta * i_prev + x_t


def gated_current(g_t: Tensor, i_prev: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Eq. 16-18 (and 19-21 with the recurrent sums in g_t): I = F⊙I[n−1] + (1−F)⊙C.

    ``g_t`` (B, 2n) holds the forget and candidate pre-activations; F = σ(g_f),
    C = mask ⊙ ReLU(g_c).
    """
    n = g_t.shape[-1] // 2
    f = torch.sigmoid(g_t[..., :n])
    c = torch.relu(g_t[..., n:])
    if mask is not None:
        c = c * mask
    return f * i_prev + (1.0 - f) * c


def _running_max(current: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(current, v.detach().max())


def lif_loop(drive: Tensor, alpha: Tensor, beta: Tensor, b: Tensor, n_bits: int, k: int,
             surrogate: str, reset: str, mask: Optional[Tensor],
             state: Optional[SpikingState] = None) -> Tuple[Tensor, Tensor, SpikingState]:
    """Traditional LIF layer (Eq. 7-9 with the multi-bit output of Eq. 22).

    ``I[n] = β ⊙ I[n−1] + mask ⊙ drive[n]`` with ``drive = BN(X W)`` precomputed for all steps.

    Args:
        drive: (T, B, n) weighted sums of the inputs.
        alpha, beta: (n,) membrane and current decays (may require grad).
        b: 0-dim membrane maximum; n_bits, k, surrogate, reset: quantiser and reset settings.
        mask: (B, n) recurrent-dropout mask (already scaled by 1/(1−p)), or None.
        state: initial state; zeros if None.

    Returns:
        (Ŷ of shape (T, B, n), detached 0-dim maximum of V over all steps, final state).
    """
    state = zero_state(drive, drive.shape[-1]) if state is None else state
    if mask is not None:
        drive = drive * mask
    v_max = drive.new_tensor(float("-inf"))
    outputs = []
    for x_t in drive:
        i = lif_current(x_t, state.i, beta)
        v, y = membrane_step(i, state, alpha, b, n_bits, k, surrogate, reset)
        state = SpikingState(i, v, y)
        v_max = _running_max(v_max, v)
        outputs.append(y)
    return torch.stack(outputs), v_max, state


def v1_loop(gates: Tensor, alpha: Tensor, b: Tensor, n_bits: int, k: int, surrogate: str,
            reset: str, mask: Optional[Tensor],
            state: Optional[SpikingState] = None) -> Tuple[Tensor, Tensor, SpikingState]:
    """Improved dynamics v1 (Eq. 16-18): forget and candidate from the inputs only.

    ``F = σ(gates[n, :, :n])``, ``C = mask ⊙ ReLU(gates[n, :, n:])``,
    ``I[n] = F ⊙ I[n−1] + (1 − F) ⊙ C``; gates = BN(X W_i) with W_i = [W_fi | W_ci] (m, 2n).
    Arguments and returns as :func:`lif_loop`, with ``gates`` (T, B, 2n) instead of ``drive``.
    """
    n = gates.shape[-1] // 2
    state = zero_state(gates, n) if state is None else state
    v_max = gates.new_tensor(float("-inf"))
    outputs = []
    for g_t in gates:
        i = gated_current(g_t, state.i, mask)
        v, y = membrane_step(i, state, alpha, b, n_bits, k, surrogate, reset)
        state = SpikingState(i, v, y)
        v_max = _running_max(v_max, v)
        outputs.append(y)
    return torch.stack(outputs), v_max, state


def v2_loop(gates: Tensor, w_rec: Tensor, alpha: Tensor, b: Tensor, n_bits: int, k: int,
            surrogate: str, reset: str, mask: Optional[Tensor],
            state: Optional[SpikingState] = None) -> Tuple[Tensor, Tensor, SpikingState]:
    """Improved dynamics v2 (Eq. 19-21): forget and candidate also see the previous output.

    ``g = gates[n] + Ŷ[n−1] @ w_rec``, ``F = σ(g[:, :n])``, ``C = mask ⊙ ReLU(g[:, n:])``,
    ``I[n] = F ⊙ I[n−1] + (1 − F) ⊙ C``; w_rec = [W_fr | W_cr] is (n, 2n). Ŷ[n−1] is sparse,
    which is why the paper feeds it back instead of the dense I[n−1].
    Arguments and returns as :func:`v1_loop`.
    """
    n = w_rec.shape[0]
    state = zero_state(gates, n) if state is None else state
    v_max = gates.new_tensor(float("-inf"))
    outputs = []
    for g_t in gates:
        i = gated_current(g_t + state.y @ w_rec, state.i, mask)
        v, y = membrane_step(i, state, alpha, b, n_bits, k, surrogate, reset)
        state = SpikingState(i, v, y)
        v_max = _running_max(v_max, v)
        outputs.append(y)
    return torch.stack(outputs), v_max, state
