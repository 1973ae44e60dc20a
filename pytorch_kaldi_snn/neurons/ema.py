"""Tracking the membrane maximum b of a layer (the "b" of Eq. 22 and Fig. 4).

The paper estimates b "with an exponential moving average (EMA) ... [of] the maximum value" of
the membrane potentials observed in every training batch (after Jacob et al., 2018). The EMA
starts at zero, so it is bias-corrected as in Adam::

    b_biased ← (1 − m)·b_biased + m·min(v_max, 2·b)
    b_steps  ← b_steps + 1
    b        ← b_biased / (1 − (1 − m)^b_steps)

``b`` starts at ``b_init``. A fixed ``b_init`` quantises the first training batch on an arbitrary
scale: with b too small the outputs saturate at the top level, the reset cannot keep up and V
runs away, and that batch maximum then dominates the bias-corrected EMA for tens of batches.
The layer therefore calls :meth:`MembraneMaxTracker.calibrate` before its first training batch
(see ``SpikingLayer``), which sets b from that batch's own statistic. In calibration and in every
update a batch maximum counts as at most twice the current b (:data:`MAX_GROWTH`): see the note
there. All three values are buffers, so they travel in the ``state_dict`` and survive
PyTorch-Kaldi's rebuild of the model per chunk.

Data-parallel training (``torchrun``, :mod:`pytorch_kaldi_snn.train.distributed`) gives each
process a part of the batch; b must stay the statistic of the whole batch and the same in every
process, so every batch maximum the tracker sees first goes through :func:`max_over_ranks` (the
one place where b meets ``torch.distributed``; the fused kernels only return ``v_max``).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

MIN_B = 1e-6  # keeps Δ = b/2^N positive when a layer never depolarises
CALIBRATION_PASSES = 3  # no-grad passes over the first batch; b moves < 5 % after the third
# A batch maximum counts as at most this multiple of the current b. Without a leak (α = 1) a
# membrane whose current exceeds the top output level drifts up by the excess every step, so
# one long utterance reports a maximum proportional to its length (b jumped from 1 to 327 on
# 2,000 frames); the outputs then grow with b, v2's recurrent gain with them, and BPTT
# overflows float32 (gradient norm 1e131 in float64). Capped, b still reaches the true
# maximum, in a few doublings instead of one leap.
MAX_GROWTH = 2.0


def max_over_ranks(value: Tensor) -> Tensor:
    """``value`` maximised element-wise over the processes of the default group (a copy), or
    ``value`` itself outside a process group of several processes (single-process runs)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    reduced = value.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
    return reduced


class MembraneMaxTracker(nn.Module):
    """Bias-corrected EMA of per-batch membrane maxima; updated only in training mode.

    Args:
        momentum: weight m of the newest batch maximum, in (0, 1].
        b_init: value of b before the first training batch (> 0).
    """

    def __init__(self, momentum: float = 0.1, b_init: float = 1.0) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"EMA momentum {momentum} is outside (0, 1]")
        if not b_init > 0.0:
            raise ValueError(f"b_init {b_init} must be positive")
        self.momentum = momentum
        self.register_buffer("b", torch.tensor(float(b_init)))
        self.register_buffer("b_biased", torch.tensor(0.0))
        self.register_buffer("b_steps", torch.tensor(0, dtype=torch.long))
        # b_steps as a Python int, read from the buffer once after construction or a load:
        # reading the buffer on every batch would make the host wait for the GPU each time.
        self._steps_on_host: Optional[int] = None

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._steps_on_host = None  # the loaded b_steps is read again at its next use

    def _steps(self) -> int:
        if self._steps_on_host is None:
            self._steps_on_host = int(self.b_steps)
        return self._steps_on_host

    @property
    def started(self) -> bool:
        """True once a training batch has been folded into the EMA."""
        return self._steps() > 0

    @torch.no_grad()
    def calibrate(self, batch_max: Callable[[Tensor], Tensor],
                  passes: int = CALIBRATION_PASSES) -> None:
        """Set b to a fixed point of ``b ← batch_max(b)`` (the batch's V maximum under b).

        Starting from ``b_init``, a few no-grad passes over the first batch replace b by the
        maximum membrane potential the batch reaches when quantised with the current b (at most
        :data:`MAX_GROWTH` times the previous b per pass); the first :meth:`update` then folds
        in a statistic measured at a sensible scale.
        """
        b = self.b.clone()
        for _ in range(passes):
            v_max = max_over_ranks(batch_max(b).detach()).to(b)
            b = v_max.clamp(min=MIN_B, max=MAX_GROWTH * float(b))
        self.b.copy_(b)

    @torch.no_grad()
    def update(self, v_max: Tensor) -> None:
        """Fold one batch maximum into the EMA (call after the forward pass, training only)."""
        m, steps = self.momentum, self._steps() + 1
        # The cap is a tensor (2·b is exact in binary floating point, so it equals the former
        # float(b) bound): nothing here waits for the device.
        v_max = torch.minimum(max_over_ranks(v_max.detach()).to(self.b_biased).clamp(min=MIN_B),
                              MAX_GROWTH * self.b)
        self.b_biased.mul_(1.0 - m).add_(m * v_max)
        self.b_steps.add_(1)
        self._steps_on_host = steps
        self.b.copy_(self.b_biased / (1.0 - (1.0 - m) ** steps))

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}"
