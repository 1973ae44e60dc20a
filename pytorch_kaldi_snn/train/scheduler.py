"""Learning-rate halving on the development error: three named rules (``arch_lr_schedule``).

After each epoch the scheduler sees the dev frame error ``err``; a halving multiplies the rate by
``arch_halving_factor``, never below ``arch_min_lr``.

* ``upstream`` (the default): PyTorch-Kaldi's ``run_exp.py``. An epoch is slow when
  ``(prev - err) / err < arch_improvement_threshold`` (relative to the *current* error), and
  every slow epoch halves; ``arch_patience`` is not used.
* ``fork``: the authors' fork as our brief describes it (not checked against its code): a
  ReduceLROnPlateau-style counter of bad epochs, an epoch being bad when
  ``(best - err) / best < threshold`` against the best error so far; the rate halves when
  ``num_bad_epochs > arch_patience``, and the counter restarts.
* a per-epoch ``arch_lr`` (upstream's ``0.08*10|0.04*5``): the listed rate each epoch and no
  halving, as upstream (its ``auto_lr_annealing`` is off then), whatever the rule.
* ``consecutive``: this project's earlier rule, one reading of the paper's "halved after 3
  epochs of improvement less than 0.1": halve after ``arch_patience`` slow epochs *in a row*,
  slow meaning ``(prev - err) / prev < threshold``. A dev error alternating between two values
  can stall it (a better epoch resets the run), which is why it is no longer the default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from pytorch_kaldi_snn.config.registry import SCHEDULES

if TYPE_CHECKING:
    from pytorch_kaldi_snn.config.experiment import Architecture


def _relative(reference: float, err: float, base: float) -> float:
    return (reference - err) / base if base > 0 else 0.0


@dataclass
class HalvingScheduler:
    lr: float
    halving_factor: float
    improvement_threshold: float
    patience: int
    min_lr: float
    rule: str = SCHEDULES[0]
    lr_per_epoch: Tuple[float, ...] = ()
    epochs_seen: int = 0
    prev_err: Optional[float] = None
    best_err: Optional[float] = None
    slow_epochs: int = 0

    @classmethod
    def for_architecture(cls, arch: "Architecture") -> "HalvingScheduler":
        return cls(arch.lr, arch.halving_factor, arch.improvement_threshold, arch.patience,
                   arch.min_lr, arch.lr_schedule, arch.lr_per_epoch)

    def _halve(self) -> None:
        self.lr = max(self.lr * self.halving_factor, self.min_lr)
        self.slow_epochs = 0

    def _halves(self, err: float) -> bool:
        """Whether this epoch's error triggers a halving (updates the slow-epoch count)."""
        if self.rule == "upstream":
            return self.prev_err is not None and _relative(self.prev_err, err, err) < self.improvement_threshold
        if self.rule == "fork":
            if self.best_err is None:
                return False
            bad = _relative(self.best_err, err, self.best_err) < self.improvement_threshold
            self.slow_epochs = self.slow_epochs + 1 if bad else 0
            return self.slow_epochs > self.patience
        if self.prev_err is None:
            return False
        slow = _relative(self.prev_err, err, self.prev_err) < self.improvement_threshold
        self.slow_epochs = self.slow_epochs + 1 if slow else 0
        return self.slow_epochs >= self.patience

    def step(self, dev_err: float) -> float:
        """Record one epoch's dev error; return the learning rate for the next epoch."""
        self.epochs_seen += 1
        if self.lr_per_epoch:
            self.lr = self.lr_per_epoch[min(self.epochs_seen, len(self.lr_per_epoch) - 1)]
        elif self._halves(dev_err):
            self._halve()
        self.prev_err = dev_err
        self.best_err = dev_err if self.best_err is None else min(self.best_err, dev_err)
        return self.lr

    def state_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
