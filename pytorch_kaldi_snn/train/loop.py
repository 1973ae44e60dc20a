"""Training with validation each epoch, one atomic checkpoint per epoch, and exact resume.

The unit of work is the epoch. Everything random in epoch ``e`` is seeded from ``(seed, e)``:
the data order (:func:`~pytorch_kaldi_snn.data.batching.train_order`) and torch's generator
(dropout). A checkpoint holds the model, the optimisers, the schedulers and the history, so
rerunning after a crash repeats the interrupted epoch from the same state and ends with the
same weights as an uninterrupted run.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor
from tqdm import tqdm

from pytorch_kaldi_snn.config.experiment import Experiment
from pytorch_kaldi_snn.data.batching import Batch, eval_batches, train_batches
from pytorch_kaldi_snn.data.loading import LoadedSet
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.layers.cost import ModelReport, model_report, real_frames, reset_counters
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel, real_frame_mask, valid_frames
from pytorch_kaldi_snn.train import guards, thread_governor
from pytorch_kaldi_snn.config.resolved import training_differences
from pytorch_kaldi_snn.train.checkpoint import load_torch, save_torch
from pytorch_kaldi_snn.train.optimizers import make_optimizer
from pytorch_kaldi_snn.train.scheduler import HalvingScheduler

CHECKPOINT = "checkpoint.pt"


@dataclass
class EvalResult:
    loss: float
    err: float
    report: ModelReport


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1000 + epoch


@torch.no_grad()
def evaluate(model: AcousticModel, data: LoadedSet, exp: Experiment, device: torch.device,
             desc: str, max_len: Optional[int] = None,
             collect: Optional[Callable[[Batch, Dict[str, Tensor]], None]] = None) -> EvalResult:
    """Loss and frame error over ``data`` in eval mode, with the activity counters refilled.

    Utterances longer than ``max_len`` (default ``max_seq_length_valid``) are cut; ``collect``
    sees every batch with the model's values (the forward stage keeps the outputs).
    """
    model.eval()
    reset_counters(model)
    loss = err = frames = 0.0
    batches = eval_batches(data, max_len or exp.batches.max_seq_length_valid,
                           exp.batches.batch_size_valid)
    bar = tqdm(batches, desc=desc, leave=False, disable=None)
    for batch in bar:
        batch = batch.to(device)
        with real_frames(model, real_frame_mask(batch.labels)):
            values = model(batch.features, batch.labels)
        if collect is not None:
            collect(batch, values)
        n = valid_frames(batch.labels)
        loss += float(values["loss_final"]) * n
        err += float(values["err_final"]) * n
        frames += n
        bar.set_postfix(loss=f"{loss / frames:.3f}", acc=f"{100 * (1 - err / frames):.1f}",
                        zeros=f"{model_report(model).zero_output_pct:.1f}%")
    return EvalResult(loss / frames, err / frames, model_report(model))


class Trainer:
    """Owns the model, its optimisers and schedulers for one experiment."""

    def __init__(self, exp: Experiment, model: AcousticModel, device: torch.device,
                 out: Path, log: logging.Logger) -> None:
        self.exp, self.model, self.device, self.out, self.log = exp, model, device, out, log
        self.optimizers = {name: make_optimizer(exp.architectures[name], net.parameters())
                           for name, net in model.nets.items()}
        self.schedulers = {name: HalvingScheduler.for_architecture(exp.architectures[name])
                           for name in model.nets}
        self.history: List[Dict[str, float]] = []
        self.wall_s = 0.0  # training time of all completed epochs, over interrupted runs too
        self.wall_s_before = 0.0  # the part spent by earlier (interrupted) runs
        self.skipped = 0  # batches skipped for NaN/Inf in the current epoch
        self.governor = thread_governor.for_device(device, log)  # CPU threads under load

    # -- checkpoints -------------------------------------------------------------------------

    def _state(self) -> Dict:
        return {
            "cfg_text": self.exp.cfg_text,
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "history": self.history,
            "wall_s": self.wall_s,
        }

    def resume(self) -> int:
        """Load the last checkpoint if any; return the number of completed epochs."""
        state = load_torch(self.out / CHECKPOINT)
        if state is None:
            return 0
        self._check_trained_with(state)
        self.model.load_state_dict(state["model"])
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][key])
        self.history, self.wall_s = state["history"], state["wall_s"]
        self.wall_s_before = self.wall_s
        self.log.info(f"resuming after epoch {len(self.history)} from {self.out / CHECKPOINT}")
        return len(self.history)

    def _check_trained_with(self, state: Dict) -> None:
        """Refuse a checkpoint trained with another model, schedule or seed, naming the key."""
        path = self.out / CHECKPOINT
        saved = state.get("cfg_text") if isinstance(state, dict) else None
        if saved is None:
            raise ConfigError(f"{path} records no training cfg; remove it or change out_folder",
                              file=str(self.exp.cfg_path), section="exp", key="out_folder")
        differences = training_differences(saved, self.exp.cfg_text)
        if differences:
            section, key, was, now = differences[0]
            difference = f"[{section}] {key}: checkpoint {was or '(unset)'!r}, cfg {now or '(unset)'!r}"
            raise ConfigError(f"{path} was trained with another cfg ({difference}); remove it "
                              f"or change out_folder", file=str(self.exp.cfg_path),
                              section="exp", key="out_folder")

    # -- epochs ------------------------------------------------------------------------------

    def _set_lr(self) -> None:
        for key, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.schedulers[key].lr

    def _kept(self, epoch: int) -> str:
        if epoch == 0:
            return "no checkpoint was written"
        return f"{self.out / CHECKPOINT} of epoch {epoch} is kept"

    def _train_step(self, batch: Batch, epoch: int, index: int) -> Optional[Dict[str, Tensor]]:
        """Forward, backward and step with the non-finite guards; None when the batch is skipped."""
        where = f"epoch {epoch + 1}, batch {index + 1}"
        skip = self.exp.exp.on_nonfinite == "skip"
        saved = guards.snapshot_buffers(self.model) if skip else None
        values = self.model(batch.features, batch.labels)
        bad = guards.after_forward(self.model, values)
        if bad is None:
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
            values["loss_final"].backward()
            bad = guards.after_backward(self.model)
        if bad is not None:
            if saved is None:
                raise guards.divergence(where, bad, self._kept(epoch))
            guards.restore_buffers(self.model, saved)
            self.skipped += 1
            return None
        for opt in self.optimizers.values():
            opt.step()
        bad = guards.after_step(self.model)
        if bad is not None:
            raise guards.divergence(where, bad, self._kept(epoch))
        return values

    def _train_epoch(self, data: LoadedSet, epoch: int) -> Dict[str, float]:
        exp = self.exp
        torch.manual_seed(epoch_seed(exp.exp.seed, epoch))
        self._set_lr()
        self.model.train()
        max_len = exp.batches.train_seq_len(epoch)
        loss = err = frames = 0.0
        self.skipped = 0
        batches = train_batches(data, max_len, exp.batches.batch_size_train, exp.exp.seed, epoch)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{exp.exp.n_epochs_tr} train", leave=False,
                   disable=None)
        for index, batch in enumerate(bar):
            n = valid_frames(batch.labels)
            with self.governor.timing(n):
                values = self._train_step(batch.to(self.device), epoch, index)
            if values is None:
                continue
            loss += float(values["loss_final"].detach()) * n
            err += float(values["err_final"]) * n
            frames += n
            bar.set_postfix(loss=f"{loss / frames:.3f}", acc=f"{100 * (1 - err / frames):.1f}")
        if not frames:
            raise guards.divergence(f"epoch {epoch + 1}", "every batch of the epoch",
                                    self._kept(epoch))
        return {"train_loss": loss / frames, "train_err": err / frames, "seq_len": max_len,
                "skipped_batches": self.skipped}

    def fit(self, train: LoadedSet, dev: LoadedSet) -> List[Dict[str, float]]:
        """Train the remaining epochs; returns the per-epoch history."""
        for epoch in range(self.resume(), self.exp.exp.n_epochs_tr):
            start = time.monotonic()
            lr = {k: s.lr for k, s in self.schedulers.items()}
            row = self._train_epoch(train, epoch)
            dev_result = evaluate(self.model, dev, self.exp, self.device, "valid")
            for sched in self.schedulers.values():
                sched.step(dev_result.err)
            self.wall_s += time.monotonic() - start
            row.update(epoch=epoch + 1, lr=min(lr.values()), lrs=lr, dev_loss=dev_result.loss,
                       dev_err=dev_result.err, dev_zero_pct=dev_result.report.zero_output_pct,
                       seconds=time.monotonic() - start)
            if not all(map(math.isfinite, (dev_result.loss, dev_result.err))):
                raise guards.divergence(f"epoch {epoch + 1}, validation", "the dev loss",
                                        self._kept(epoch))
            self.history.append(row)
            save_torch(self.out / CHECKPOINT, self._state())
            lrs = " ".join(f"{name} {value:.3g}" for name, value in lr.items())
            skipped = f" | {self.skipped} batches skipped (NaN/Inf)" if self.skipped else ""
            self.log.info(f"epoch {epoch + 1}/{self.exp.exp.n_epochs_tr}: lr {lrs} "
                     f"train loss {row['train_loss']:.3f} "
                     f"acc {100 * (1 - row['train_err']):.2f}% | "
                     f"dev loss {row['dev_loss']:.3f} acc {100 * (1 - row['dev_err']):.2f}% "
                     f"zeros {row['dev_zero_pct']:.1f}% | {row['seconds']:.0f}s{skipped}")
        return self.history
