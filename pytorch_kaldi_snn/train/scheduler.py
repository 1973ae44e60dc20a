"""Learning-rate halving on the development error (PyTorch-Kaldi's rule plus patience and a floor).

After each epoch the relative improvement of the dev frame error over the previous epoch,
``(prev - err) / prev``, is compared with ``arch_improvement_threshold``. After
``arch_patience`` consecutive epochs below it, the rate is multiplied by ``arch_halving_factor``
but never goes below ``arch_min_lr``. The paper halves after 3 epochs of improvement below 0.1 %.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from pytorch_kaldi_snn.config.experiment import Architecture


@dataclass
class HalvingScheduler:
    lr: float
    halving_factor: float
    improvement_threshold: float
    patience: int
    min_lr: float
    prev_err: Optional[float] = None
    slow_epochs: int = 0

    @classmethod
    def for_architecture(cls, arch: Architecture) -> "HalvingScheduler":
        return cls(arch.lr, arch.halving_factor, arch.improvement_threshold, arch.patience,
                   arch.min_lr)

    def step(self, dev_err: float) -> float:
        """Record one epoch's dev error; return the learning rate for the next epoch."""
        if self.prev_err is not None:
            improvement = (self.prev_err - dev_err) / self.prev_err if self.prev_err > 0 else 0.0
            slow = improvement < self.improvement_threshold
            self.slow_epochs = self.slow_epochs + 1 if slow else 0
            if self.slow_epochs >= self.patience:
                self.lr = max(self.lr * self.halving_factor, self.min_lr)
                self.slow_epochs = 0
        self.prev_err = dev_err
        return self.lr

    def state_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
