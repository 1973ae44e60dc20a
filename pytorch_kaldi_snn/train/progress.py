"""Mid-epoch checkpoints: when to write one, and what it must hold to resume inside an epoch.

An epoch of LibriSpeech takes hours; a checkpoint only at its end loses them on a crash. With
``[exp] checkpoint_every_batches = N`` and/or ``checkpoint_every_minutes = M`` the training loop
also writes the checkpoint after every N-th batch of an epoch and/or when M minutes have passed
since the last one (0 = off, the default). To continue inside an epoch exactly as an
uninterrupted run would, a checkpoint records besides the model, optimisers and schedulers:

* the position: how many batches of the epoch were done (the order is a pure function of
  ``(seed, epoch)``, so resuming skips that many batches without running them);
* torch's generator state at that point (dropout), and CUDA's on a CUDA device;
* the running sums of the epoch (loss and error times frames, frames, skipped batches), kept as
  Python floats so that they add up to the same bits;
* the training time already spent in the epoch.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

import torch
from torch import Tensor


def now() -> float:
    """Seconds on a monotonic clock: what ``checkpoint_every_minutes`` is measured on."""
    return time.monotonic()


class CheckpointTrigger:
    """Says after which batches a mid-epoch checkpoint is due.

    Batch counts are positions within the epoch (after batch N, 2N, ... of every epoch), so a
    resumed run writes its checkpoints where the interrupted one would have. Minutes are counted
    from the last checkpoint of any kind (or from the start of the run).
    """

    def __init__(self, every_batches: int, every_minutes: float) -> None:
        self.every_batches = every_batches
        self.every_seconds = 60.0 * every_minutes
        self.last = now()

    def due(self, batches_done: int) -> bool:
        by_count = self.every_batches > 0 and batches_done % self.every_batches == 0
        by_time = self.every_seconds > 0 and now() - self.last >= self.every_seconds
        return by_count or by_time

    @property
    def timed(self) -> bool:
        """Whether a clock decides (it differs between processes; batch counts do not)."""
        return self.every_seconds > 0

    def written(self) -> None:
        """A checkpoint was just written: the minutes start again."""
        self.last = now()


@dataclass
class EpochProgress:
    """How far epoch ``epoch`` (0-based) got; ``batch == 0`` is its start."""

    epoch: int
    batch: int = 0  # batches done (trained or skipped)
    loss: float = 0.0  # sum of loss x frames over the trained batches
    err: float = 0.0  # sum of error x frames
    frames: float = 0.0
    skipped: int = 0  # batches skipped for NaN/Inf (on_nonfinite = skip)
    seconds: float = 0.0  # training time spent in the epoch up to ``batch``
    rng: Optional[Tensor] = None  # torch.get_rng_state() after ``batch`` batches
    cuda_rng: Optional[Tensor] = None  # the CUDA generator's, when trained on CUDA

    @property
    def started(self) -> bool:
        """Whether some of the epoch was done before (it resumes inside the epoch)."""
        return self.batch > 0

    def add(self, loss: float, err: float, frames: float) -> None:
        """Count one trained batch of ``frames`` valid frames with its mean loss and error."""
        self.loss += loss * frames
        self.err += err * frames
        self.frames += frames

    def capture_rng(self, device: torch.device) -> None:
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore_rng(self, device: torch.device) -> None:
        """Put the generators where they were after ``batch`` batches (after the epoch's seed).

        A CUDA state is only restored on CUDA: a run moved to the CPU continues with the CPU
        generator (dropout is then not the interrupted run's, as with any change of device).
        """
        if self.rng is not None:
            torch.set_rng_state(self.rng)
        if self.cuda_rng is not None and device.type == "cuda":
            torch.cuda.set_rng_state(self.cuda_rng, device)

    def state_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: Optional[Dict[str, Any]], epochs_done: int) -> "EpochProgress":
        """The saved progress, or the start of the next epoch when the checkpoint is an
        epoch's end (or older than mid-epoch checkpoints)."""
        if state is None:
            return cls(epochs_done)
        return cls(**state)
