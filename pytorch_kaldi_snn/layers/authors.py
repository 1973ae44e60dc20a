"""Reading ``authors``: the time loop and the input encoder of the authors' code.

Read from ``wponghiran/imp-snns-for-sl`` (``traditional_spiking_model.py``,
``improved_spiking_model_v1.py``/``_v2.py``), not copied. Per layer and step::

    I[n] = current(X[n], I[n−1], Ŷ[n−1])     (the layer's Neuron.current, as in the paper reading)
    V[n] = α ⊙ V[n−1] + I[n] − Ŷ[n−1]        (Eq. 8, reset by the output; α = 1 in their code)
    Ŷ[n] = Q_sym(V[n])                        (neurons.symmetric.SymmetricQuantiser)

Their code writes the membrane as a residual error (``acc += h; out = Q(acc); acc -= out``),
which is the same recursion with α = 1. Their traditional layer has α = 1 and a learned β that
starts at 1. Every spiking model of theirs also encodes the input features the same way
(:class:`ResidualEncoder`: α = 1, I = X), so the first layer sees sparse, quantised inputs.
This reading runs on the PyTorch step path only; the fused kernels implement the paper reading.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.neurons.dynamics import SpikingState, membrane, zero_state
from pytorch_kaldi_snn.neurons.symmetric import SymmetricQuantiser

Current = Callable[[Tensor, SpikingState], Tensor]


def authors_loop(inputs: Tensor, current: Current, alpha: Tensor, quantiser: SymmetricQuantiser,
                 state: Optional[SpikingState] = None) -> Tuple[Tensor, SpikingState]:
    """Step loop of the authors' reading; the quantiser tracks V's range at every step.

    Args:
        inputs: (T, B, ·) per-step inputs of ``current``.
        current: (input_t, previous state) → I[n] of shape (B, n).
        alpha: (n,) or scalar membrane decay. quantiser: the layer's output quantiser.
        state: initial state; zeros if None.
    Returns:
        (Ŷ of shape (T, B, n), final state).
    """
    outputs = []
    for x_t in inputs:
        if state is None:
            state = zero_state(x_t[None], alpha.numel() if alpha.dim() else x_t.shape[-1])
        i = current(x_t, state)
        v = membrane(i, state, alpha)
        y = quantiser(v)
        state = SpikingState(i, v, y)
        outputs.append(y)
    return torch.stack(outputs), state


class ResidualEncoder(nn.Module):
    """The authors' input encoder: features integrated by α = 1 neurons, quantised per step."""

    def __init__(self, n_bits: int, k: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.quantiser = SymmetricQuantiser(n_bits, k, momentum)

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, m) features → (T, B, m) sparse quantised features."""
        one = x.new_ones(())
        y, _ = authors_loop(x, lambda x_t, state: x_t, one, self.quantiser)
        return y
