"""The authors' multi-bit output (reading ``authors``), reproduced from reading their code.

The fork ``wponghiran/imp-snns-for-sl`` (``fake_spike_quantization.py``) quantises differently
from the paper's text (Eq. 22, :mod:`.quantizer`). For N bits and integer threshold k:

* the range is tracked per **time step**: in training, every call first folds the minimum and
  the maximum of this step's V (over batch and neurons) into bias-corrected EMAs (momentum m),
  then quantises with them; eval calls only read them;
* the range is symmetric, a = max(|min|, |max|); V is clamped to [−a, a];
* levels are signed: q = trunc(s·V) with s = n(1 − 10⁻⁴)/a and n = 2^(N−1), so
  q ∈ [−(n − 1), n − 1]; levels with |q| ≤ k are zeroed; the output is q/s;
* gradient: straight-through inside [−a, a], zero outside (the clamp's own gradient).

Consequences worth knowing: with N = 1, n = 1 and |s·V| < 1, so **every output is zero**; with
N = 6 and the authors' k = 3, a neuron fires from |V| ≥ 4a/32 = a/8 (the paper says b/16).
Before any training call a = 0 and every output is zero. In data-parallel training the step's
minimum and maximum are those of the whole batch, over all processes
(:func:`~pytorch_kaldi_snn.neurons.ema.max_over_ranks`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.neurons.ema import max_over_ranks
from pytorch_kaldi_snn.neurons.quantizer import check_bits_threshold

SCALE_MARGIN = 1e-4  # the authors' s = n·(1 − 1e-4)/a keeps s·V strictly inside (−n, n)


class SymmetricQuantiser(nn.Module):
    """Signed symmetric quantiser with a per-step EMA of V's range (buffers in the state_dict)."""

    def __init__(self, n_bits: int, k: int, momentum: float = 0.1) -> None:
        super().__init__()
        check_bits_threshold(n_bits, k)
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"EMA momentum {momentum} is outside (0, 1]")
        self.n_bits, self.k, self.momentum = n_bits, k, momentum
        for name in ("min_biased", "max_biased", "tracked_min", "tracked_max"):
            self.register_buffer(name, torch.tensor(0.0))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def _track(self, v: Tensor) -> None:
        m = self.momentum
        self.steps.add_(1)
        correction = 1.0 - (1.0 - m) ** int(self.steps)
        neg_min, v_max = max_over_ranks(torch.stack([-v.min(), v.max()]))  # one collective
        for biased, tracked, value in ((self.min_biased, self.tracked_min, -neg_min),
                                       (self.max_biased, self.tracked_max, v_max)):
            biased.mul_(1.0 - m).add_(m * value.to(biased))
            tracked.copy_(biased / correction)

    def max_abs(self) -> Tensor:
        """a = max(|tracked min|, |tracked max|)."""
        return torch.maximum(self.tracked_min.abs(), self.tracked_max.abs())

    def forward(self, v: Tensor) -> Tensor:
        """Output of one time step's membrane potentials V (any shape)."""
        if self.training:
            self._track(v.detach())
        a = self.max_abs().to(v)
        n = 2 ** (self.n_bits - 1)
        scale = n * (1.0 - SCALE_MARGIN) / torch.where(a > 0, a, torch.full_like(a, float(n)))
        clamped = v.clamp(-a, a)  # gradient 1 inside [−a, a] (ends included), else 0
        level = torch.trunc(clamped.detach() * scale)
        level = torch.where(level.abs() <= self.k, torch.zeros_like(level), level)
        return level / scale + (clamped - clamped.detach())  # exact value, gradient of clamp

    def extra_repr(self) -> str:
        return f"n_bits={self.n_bits}, k={self.k}, momentum={self.momentum}"
