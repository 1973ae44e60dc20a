"""Step-by-step time loops of the spiking layers (pure functions, time-major): the reference.

One loop, :func:`step_loop`, runs every registered neuron (:mod:`pytorch_kaldi_snn.neurons`)
through its ``current`` and the shared membrane update and quantiser (Eq. 8, 22; symbols and
the reset in :mod:`pytorch_kaldi_snn.neurons.dynamics`). :func:`lif_loop`, :func:`v1_loop` and
:func:`v2_loop` are the same loop with each variant's arguments; the fused kernels in
``pytorch_kaldi_snn.kernels.fused`` implement the same signatures and semantics. ``b`` is
constant during a call; the caller updates its EMA from the returned ``v_max`` afterwards,
which keeps these functions pure.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from pytorch_kaldi_snn.neurons.dynamics import SpikingState, membrane, zero_state
from pytorch_kaldi_snn.neurons.quantizer import quantize
from pytorch_kaldi_snn.neurons.surrogate import check_surrogate
from pytorch_kaldi_snn.neurons.variants import TRADITIONAL, V1, V2, Neuron

__all__ = ["SpikingState", "lif_loop", "step_loop", "v1_loop", "v2_loop", "zero_state"]

Output = Tuple[Tensor, Tensor, SpikingState]


def _running_max(current: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(current, v.detach().max())


def step_loop(neuron: Neuron, inputs: Tensor, alpha: Tensor, params: Sequence[Tensor],
              b: Tensor, n_bits: int, k: int, surrogate: str, mask: Optional[Tensor],
              state: Optional[SpikingState] = None) -> Output:
    """Any registered neuron, one step at a time.

    Args:
        neuron: the variant. inputs: (T, B, n_gates·n) projected inputs.
        alpha: (n,) membrane decay (may require grad). params: the tensors ``neuron.params``
            names (β, W_r...). b: 0-dim membrane maximum; n_bits, k, surrogate: quantiser.
        mask: (B, n) recurrent-dropout mask (already scaled by 1/(1−p)), or None.
        state: initial state; zeros if None.

    Returns:
        (Ŷ of shape (T, B, n), detached 0-dim maximum of V over all steps, final state).
    """
    check_surrogate(surrogate)  # the quantiser would only meet it in the backward pass
    state = zero_state(inputs, inputs.shape[-1] // neuron.n_gates) if state is None else state
    v_max = inputs.new_tensor(float("-inf"))
    outputs = []
    for x_t in inputs:
        i = neuron.current(x_t, state, params, mask)
        v = membrane(i, state, alpha)  # Eq. 8
        y = quantize(v, b, n_bits, k, surrogate)  # Eq. 22
        state = SpikingState(i, v, y)
        v_max = _running_max(v_max, v)
        outputs.append(y)
    return torch.stack(outputs), v_max, state


def lif_loop(drive: Tensor, alpha: Tensor, beta: Tensor, b: Tensor, n_bits: int, k: int,
             surrogate: str, mask: Optional[Tensor],
             state: Optional[SpikingState] = None) -> Output:
    """Traditional LIF layer (Eq. 7-9 with the multi-bit output of Eq. 22).

    ``I[n] = β ⊙ I[n−1] + mask ⊙ drive[n]`` with ``drive = BN(X W)`` (T, B, n) precomputed for
    all steps; ``beta`` (n,) the current decay. Otherwise as :func:`step_loop`.
    """
    return step_loop(TRADITIONAL, drive, alpha, (beta,), b, n_bits, k, surrogate, mask, state)


def v1_loop(gates: Tensor, alpha: Tensor, b: Tensor, n_bits: int, k: int, surrogate: str,
            mask: Optional[Tensor], state: Optional[SpikingState] = None) -> Output:
    """Improved dynamics v1 (Eq. 16-18): forget and candidate from the inputs only.

    ``F = σ(gates[n, :, :n])``, ``C = mask ⊙ ReLU(gates[n, :, n:])``,
    ``I[n] = F ⊙ I[n−1] + (1 − F) ⊙ C``; gates = BN(X W_i) with W_i = [W_fi | W_ci] (m, 2n).
    """
    return step_loop(V1, gates, alpha, (), b, n_bits, k, surrogate, mask, state)


def v2_loop(gates: Tensor, w_rec: Tensor, alpha: Tensor, b: Tensor, n_bits: int, k: int,
            surrogate: str, mask: Optional[Tensor],
            state: Optional[SpikingState] = None) -> Output:
    """Improved dynamics v2 (Eq. 19-21): forget and candidate also see the previous output.

    ``g = gates[n] + Ŷ[n−1] @ w_rec``, then as :func:`v1_loop`; w_rec = [W_fr | W_cr] is
    (n, 2n). Ŷ[n−1] is sparse, which is why the paper feeds it back instead of the dense I[n−1].
    """
    return step_loop(V2, gates, alpha, (w_rec,), b, n_bits, k, surrogate, mask, state)
