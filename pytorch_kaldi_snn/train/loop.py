"""Training with validation each epoch, an atomic checkpoint per epoch (and, if asked, inside
epochs), and exact resume.

Everything random in epoch ``e`` is seeded from ``(seed, e)``: the data order
(:func:`~pytorch_kaldi_snn.data.streamed.train_plan`) and torch's generator (dropout). A
checkpoint holds the model, the optimisers, the schedulers and the history, so rerunning after a
crash repeats the interrupted epoch from the same state and ends with the same weights as an
uninterrupted run. A mid-epoch checkpoint (``[exp] checkpoint_every_batches`` /
``checkpoint_every_minutes``) also holds the epoch's :class:`~pytorch_kaldi_snn.train.progress.
EpochProgress`, and the rerun continues at the batch after it.

Data-parallel runs (torchrun) go through the hooks of a
:class:`~pytorch_kaldi_snn.train.distributed.World`: which share of each batch this process
computes, the weight of its loss, the sums of gradients and evaluation counts, who writes. The
default world is one process, where every hook is the identity.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from tqdm import tqdm

from pytorch_kaldi_snn.config.experiment import Batches, Experiment
from pytorch_kaldi_snn.data.batching import Batch, Source
from pytorch_kaldi_snn.data.streamed import eval_plan, plan_batches, plan_pieces, train_plan
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.layers.cost import ModelReport, model_report, real_frames, reset_counters
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel, real_frame_mask, valid_frames
from pytorch_kaldi_snn.train import guards
from pytorch_kaldi_snn.config.resolved import training_differences
from pytorch_kaldi_snn.train.checkpoint import load_torch, save_torch
from pytorch_kaldi_snn.train.distributed import World
from pytorch_kaldi_snn.train.optimizers import make_optimizer
from pytorch_kaldi_snn.train.progress import CheckpointTrigger, EpochProgress
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
def evaluate(model: AcousticModel, data: Source, batches: Batches, data_workers: int,
             device: torch.device, desc: str, max_len: Optional[int] = None,
             collect: Optional[Callable[[Batch, Dict[str, Tensor]], None]] = None,
             world: World = World()) -> EvalResult:
    """Loss and frame error over ``data`` in eval mode, with the activity counters refilled.

    Batches of ``batches.batch_size_valid`` utterances, read by ``data_workers`` processes;
    utterances longer than ``max_len`` (default ``batches.max_seq_length_valid``) are cut;
    ``collect`` sees every batch with the model's values (the forward stage keeps the outputs).
    In a world of several processes each computes its share of the batches and the sums are
    reduced.
    """
    model.eval()
    reset_counters(model)
    loss = err = frames = 0.0
    plans = world.eval_share(eval_plan(data, max_len or batches.max_seq_length_valid,
                                       batches.batch_size_valid))
    stream = plan_batches(data, plans, data_workers)
    bar = tqdm(stream, desc=desc, leave=False, disable=None)
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
    loss, err, frames = world.sum([loss, err, frames])
    world.sum_counters(model)
    return EvalResult(loss / frames, err / frames, model_report(model))


def time_left(history: List[Dict[str, float]], n_epochs: int) -> str:
    """``, about N min of training left`` from the mean epoch time so far ('' after the last)."""
    left = n_epochs - len(history)
    timed = [row["seconds"] for row in history if "seconds" in row]
    if left <= 0 or not timed:
        return ""
    seconds = left * sum(timed) / len(timed)
    return f", about {max(1, round(seconds / 60))} min of training left"


class Trainer:
    """Owns the model, its optimisers and schedulers for one experiment."""

    def __init__(self, exp: Experiment, model: AcousticModel, device: torch.device,
                 out: Path, log: logging.Logger, world: World = World()) -> None:
        self.exp, self.model, self.device, self.out, self.log = exp, model, device, out, log
        self.world = world
        self.optimizers = {name: make_optimizer(exp.architectures[name], net.parameters())
                           for name, net in model.nets.items()}
        self.schedulers = {name: HalvingScheduler.for_architecture(exp.architectures[name])
                           for name in model.nets}
        self.history: List[Dict[str, float]] = []
        self.wall_s = 0.0  # training time of all completed epochs, over interrupted runs too
        self.wall_s_before = 0.0  # the part spent by earlier (interrupted) runs
        self.trigger = CheckpointTrigger(exp.exp.checkpoint_every_batches,
                                         exp.exp.checkpoint_every_minutes)
        self.saved: Optional[EpochProgress] = None  # where the checkpoint on disk stands
        # the last optimiser step's parameter check, not read yet, and the batch it follows
        self._unconfirmed: Tuple[str, guards.Finite] = ("", guards.Finite())

    # -- checkpoints -------------------------------------------------------------------------

    def _state(self, progress: Optional[EpochProgress]) -> Dict:
        return {
            "cfg_text": self.exp.cfg_text,
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "history": self.history,
            "wall_s": self.wall_s,
            "progress": None if progress is None else progress.state_dict(),
        }

    def _save(self, progress: Optional[EpochProgress] = None) -> None:
        """Write the checkpoint: at an epoch's end (``progress`` None) or inside an epoch. The
        one place that writes it (the writer process alone; the others only note it)."""
        if self.world.is_writer:
            save_torch(self.out / CHECKPOINT, self._state(progress))
        self.trigger.written()
        self.saved = progress

    def resume(self) -> EpochProgress:
        """Load the last checkpoint if any (read by the writer, broadcast to the other
        processes); return where training continues."""
        state = self.world.broadcast(load_torch(self.out / CHECKPOINT) if self.world.is_writer
                                     else None)
        if state is None:
            return EpochProgress(0)
        self._check_trained_with(state)
        self.model.load_state_dict(state["model"])
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][key])
        self.history, self.wall_s = state["history"], state["wall_s"]
        progress = EpochProgress.from_state(state.get("progress"), len(self.history))
        if not self.world.is_writer:  # the saved sums are all processes'; the writer has them
            progress.loss = progress.err = progress.frames = 0.0
        self.wall_s_before = self.wall_s + progress.seconds
        if progress.started:
            self.saved = progress
            self.log.info(f"resuming epoch {progress.epoch + 1} at batch {progress.batch + 1} "
                          f"({progress.batch} batches done) from {self.out / CHECKPOINT}")
        else:
            self.log.info(f"resuming after epoch {len(self.history)} from {self.out / CHECKPOINT}")
        return progress

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

    def _kept(self) -> str:
        """What the checkpoint on disk holds, for the divergence message."""
        if self.saved is not None:
            return (f"{self.out / CHECKPOINT} of epoch {self.saved.epoch + 1}, batch "
                    f"{self.saved.batch} is kept")
        if not self.history:
            return "no checkpoint was written"
        return f"{self.out / CHECKPOINT} of epoch {len(self.history)} is kept"

    def train_step(self, batch: Batch, weight: float, epoch: int,
                   index: int) -> Optional[Tuple[float, float]]:
        """Forward, backward and step with the non-finite guards: the batch's (loss, frame
        error), or None when it is skipped.

        ``weight`` is this process's share of the global batch (1 for one process): the summed
        gradients are those of the global batch's mean loss. The host waits for the device
        once per batch: the guards' flags come with the loss and error the log needs, and the
        parameters' check after this step is read with the next batch's
        (:meth:`_confirm_step` reads it earlier before a checkpoint is written).
        """
        where = f"epoch {epoch + 1}, batch {index + 1}"
        skip = self.exp.exp.on_nonfinite == "skip"
        saved = guards.snapshot_buffers(self.model) if skip else None
        values = self.model(batch.features, batch.labels)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        (values["loss_final"] * weight).backward()  # NaN in, NaN out: the check below says
        self.world.sum_gradients(self.model)
        checks = [self._unconfirmed[1],
                  guards.after_forward(self.model, values) + guards.after_backward(self.model)]
        (step_bad, bad), (loss, err) = guards.read(
            checks, [values["loss_final"], values["err_final"]])
        self._stop_if_bad_step(step_bad)
        bad = self.world.first_bad(bad)
        if bad is not None:
            if saved is None:
                raise guards.divergence(where, bad, self._kept())
            guards.restore_buffers(self.model, saved)
            return None
        for opt in self.optimizers.values():
            opt.step()
        self._unconfirmed = (where, guards.after_step(self.model))
        return loss, err

    def _stop_if_bad_step(self, bad: Optional[str]) -> None:
        """Non-finite parameters after the last step cannot be undone: stop, naming its batch."""
        where, _ = self._unconfirmed
        self._unconfirmed = ("", guards.Finite())
        if bad is not None:
            raise guards.divergence(where, bad, self._kept())

    def _confirm_step(self) -> None:
        """Read the last step's parameter check now (before a checkpoint keeps the weights)."""
        (bad,), _ = guards.read([self._unconfirmed[1]], [])
        self._stop_if_bad_step(bad)

    def _save_mid_epoch(self, progress: EpochProgress, start: float) -> None:
        """A checkpoint inside the epoch. With several processes its running sums are those of
        all processes (the others continue from zero after a resume, see :meth:`resume`)."""
        saved = EpochProgress(**progress.state_dict())
        saved.loss, saved.err, saved.frames = self.world.sum(
            [progress.loss, progress.err, progress.frames])
        saved.seconds = time.monotonic() - start
        saved.capture_rng(self.device)
        self._save(saved)
        self.log.info(f"checkpoint: epoch {saved.epoch + 1}, batch {saved.batch} "
                      f"-> {self.out / CHECKPOINT}")

    def _train_epoch(self, data: Source, progress: EpochProgress,
                     start: float) -> Dict[str, float]:
        """Train epoch ``progress.epoch`` from batch ``progress.batch`` on (0 or a resumed
        position; ``start`` is the epoch's start on time.monotonic, earlier runs included)."""
        exp, epoch = self.exp, progress.epoch
        torch.manual_seed(self.world.dropout_seed(epoch_seed(exp.exp.seed, epoch)))
        progress.restore_rng(self.device)
        self._set_lr()
        self.model.train()
        max_len = exp.batches.train_seq_len(epoch)
        plans = train_plan(data, epoch, exp.exp.seed, max_len, exp.batches.batch_size_train)
        # a run resumed inside the epoch skips the batches it trained on without reading them
        batches = self.world.batches(plan_pieces(data, plans, exp.exp.data_workers,
                                                 start_batch=progress.batch))
        total = sum(len(plan.batches) for plan in plans)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{exp.exp.n_epochs_tr} train", leave=False,
                   disable=None, initial=progress.batch, total=total)
        for index, (batch, share) in enumerate(bar, start=progress.batch):
            result = self.train_step(batch.to(self.device), share.weight, epoch, index)
            progress.batch = index + 1
            if result is None:
                progress.skipped += 1
            else:
                progress.add(*result, share.frames)
                bar.set_postfix(loss=f"{progress.loss / progress.frames:.3f}",
                                acc=f"{100 * (1 - progress.err / progress.frames):.1f}")
            due = self.trigger.due(progress.batch)
            if self.trigger.timed:  # rank 0's clock decides: every process saves at one batch
                due = self.world.broadcast(due)
            if due:
                self._confirm_step()
                self._save_mid_epoch(progress, start)
        self._confirm_step()
        loss, err, frames = self.world.sum([progress.loss, progress.err, progress.frames])
        self.world.average_batchnorm_stats(self.model)
        if not frames:
            raise guards.divergence(f"epoch {epoch + 1}", "every batch of the epoch",
                                    self._kept())
        return {"train_loss": loss / frames, "train_err": err / frames, "seq_len": max_len,
                "skipped_batches": progress.skipped}

    def fit(self, train: Source, dev: Source) -> List[Dict[str, float]]:
        """Train the remaining epochs; returns the per-epoch history."""
        progress = self.resume()
        self.world.broadcast_model(self.model)  # every process starts from rank 0's weights
        for epoch in range(progress.epoch, self.exp.exp.n_epochs_tr):
            if progress.epoch != epoch:
                progress = EpochProgress(epoch)
            start = time.monotonic() - progress.seconds
            lr = {k: s.lr for k, s in self.schedulers.items()}
            row = self._train_epoch(train, progress, start)
            dev_result = evaluate(self.model, dev, self.exp.batches, self.exp.exp.data_workers,
                                  self.device, "valid", world=self.world)
            for sched in self.schedulers.values():
                sched.step(dev_result.err)
            self.wall_s += time.monotonic() - start
            row.update(epoch=epoch + 1, lr=min(lr.values()), lrs=lr, dev_loss=dev_result.loss,
                       dev_err=dev_result.err, dev_zero_pct=dev_result.report.zero_output_pct,
                       seconds=time.monotonic() - start)
            if not all(map(math.isfinite, (dev_result.loss, dev_result.err))):
                raise guards.divergence(f"epoch {epoch + 1}, validation", "the dev loss",
                                        self._kept())
            self.history.append(row)
            self._save()
            lrs = " ".join(f"{name} {value:.3g}" for name, value in lr.items())
            skipped = (f" | {progress.skipped} batches skipped (NaN/Inf)" if progress.skipped
                       else "")
            self.log.info(f"epoch {epoch + 1}/{self.exp.exp.n_epochs_tr}: lr {lrs} "
                     f"train loss {row['train_loss']:.3f} "
                     f"acc {100 * (1 - row['train_err']):.2f}% | "
                     f"dev loss {row['dev_loss']:.3f} acc {100 * (1 - row['dev_err']):.2f}% "
                     f"zeros {row['dev_zero_pct']:.1f}% | {row['seconds']:.0f}s{skipped}"
                     f"{time_left(self.history, self.exp.exp.n_epochs_tr)}")
        return self.history
