"""Data-parallel training under ``torchrun`` (``[exp] multi_gpu = True``): the processes' world.

``torchrun --standalone --nproc_per_node=N -m pytorch_kaldi_snn.run_exp CFG`` starts N processes
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
:func:`start_world` joins them into one process group (NCCL with one GPU per process when
``use_cuda`` finds GPUs, gloo on CPU; logged). The training loop and ``run_exp`` see the world
only through the :class:`World` hooks; the base class is one process, where every hook is the
identity, so a run without torchrun computes exactly what it always did.

What the processes share (see ``docs/distributed.md``):

* **batches** — every process computes the epoch's order of pieces from ``(seed, epoch)`` as one
  process would, and takes a contiguous share of each global batch (:func:`rank_share`, the one
  sharding function), padded to the global batch's longest piece. The shares, put side by side,
  are the single-process batch.
* **gradients** — each process weights its loss (a mean over its real frames) by its share of
  the global batch's frames and the gradients are summed, so the step is the gradient of the
  global batch's mean (not a mean of the processes' means).
* **b** — every batch maximum the EMA of b sees is the maximum over processes
  (:func:`~pytorch_kaldi_snn.neurons.ema.max_over_ranks`); batch norm sums its statistics over
  processes with ``[exp] sync_batchnorm = True`` (:mod:`.sync_batchnorm`); otherwise each
  process normalises its share and the running statistics are averaged after every epoch.
* **evaluation** — dev batches are dealt round robin at the plan level
  (:func:`~pytorch_kaldi_snn.data.streamed.share_plans`), so that a process reads only the
  utterances of its own batches; loss, frame errors, frame counts and the activity counters of
  :mod:`pytorch_kaldi_snn.layers.cost` are summed over processes.
* **files** — rank 0 alone writes the checkpoint, the log and the results, and it alone
  forwards, decodes and scores the test set; a resumed checkpoint is read by rank 0 and
  broadcast. The other processes log warnings to stderr only.

Compromise on reading data: a global batch draws its pieces from the whole shuffled training
set, so every process loads the whole training and dev sets (as one process does) and computes
only its share of each batch; splitting the utterances per process on speaker boundaries would
save memory but train on other batches than one process. A loader that reads pieces on demand
reads only the process's share: change :func:`rank_batches` alone.
"""
from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pytorch_kaldi_snn.config.experiment import ExpSettings
from pytorch_kaldi_snn.data.batching import Batch, Frames, Piece, make_batch
from pytorch_kaldi_snn.data.streamed import ChunkPlan, share_plans
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.layers.cost import COUNTERS, counted_layers
from pytorch_kaldi_snn.train.sync_batchnorm import SyncedBatchNorm1d, synchronise_batchnorm

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Rank 0 may prepare the built-in corpus (minutes) while the others wait for it.
TIMEOUT = timedelta(minutes=60)
TORCHRUN = "torchrun --standalone --nproc_per_node=N -m pytorch_kaldi_snn.run_exp CFG"


class Share(NamedTuple):
    """One process's part of a global batch."""

    pieces: List[Piece]  # what this process computes
    length: int  # padding length: the global batch's longest piece
    weight: float  # factor of this process's mean loss; the weights sum to 1 over processes
    frames: float  # frames this process accounts for; they sum to the batch's frames
    replicas: int  # processes computing these same pieces (the whole batch when it is small)


def _frames(pieces: Sequence[Piece]) -> int:
    return sum(p.end - p.start for p in pieces)


def rank_share(pieces: List[Piece], rank: int, size: int) -> Share:
    """Process ``rank``'s contiguous share of a global batch of ``pieces``.

    A batch with fewer pieces than processes (the epoch's last one, say) is computed whole by
    every process, each weighted 1/size: the summed gradient, the maximum of b and the batch
    norm statistics are then those of the batch itself.
    """
    length = max(p.end - p.start for p in pieces)
    total = _frames(pieces)
    if len(pieces) < size:
        return Share(list(pieces), length, 1.0 / size, total / size, size)
    mine = pieces[rank * len(pieces) // size:(rank + 1) * len(pieces) // size]
    return Share(mine, length, _frames(mine) / total, _frames(mine), 1)


def rank_batches(batches: Iterable[Tuple[Frames, List[Piece]]], rank: int,
                 size: int) -> Iterator[Tuple[Batch, Share]]:
    """This process's batch of every global batch (its chunk and pieces, as
    :func:`~pytorch_kaldi_snn.data.streamed.plan_pieces` gives them): the epoch's sharding."""
    for frames, pieces in batches:
        share = rank_share(pieces, rank, size)
        batch = make_batch(frames, share.pieces, share.length)
        del frames  # not held while the next chunk is read
        yield batch, share


class World:
    """One process: the hooks of the training loop and ``run_exp`` change nothing."""

    rank = 0
    size = 1
    device: Optional[torch.device] = None  # None: run_exp picks the device as it always did

    @property
    def is_writer(self) -> bool:
        """Whether this process writes checkpoints, logs and results (rank 0)."""
        return self.rank == 0

    def describe(self) -> str:
        return "distributed: no (one process)"

    def batches(self, batches: Iterable[Tuple[Frames, List[Piece]]]) -> Iterator[Tuple[Batch, Share]]:
        return rank_batches(batches, self.rank, self.size)

    def eval_share(self, plans: List[ChunkPlan]) -> List[ChunkPlan]:
        """The evaluation plans (chunks and batches) this process reads and computes."""
        return plans

    def dropout_seed(self, seed: int) -> int:
        """Seed of torch's generator for an epoch (recurrent-dropout masks)."""
        return seed

    def first_bad(self, bad: Optional[str]) -> Optional[str]:
        """The non-finite value found here, or one found by another process."""
        return bad

    def sum(self, values: Sequence[float]) -> List[float]:
        return list(values)

    def sum_gradients(self, model: nn.Module) -> None:
        pass

    def sum_counters(self, model: nn.Module) -> None:
        pass

    def average_batchnorm_stats(self, model: nn.Module) -> None:
        pass

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` in every process."""
        return obj

    def broadcast_model(self, model: nn.Module) -> None:
        pass

    def prepare_model(self, model: nn.Module, log: logging.Logger) -> None:
        """Convert batch norm to :class:`~.sync_batchnorm.SyncedBatchNorm1d` if asked to."""

    def close(self) -> None:
        pass


class ProcessGroup(World):
    """A process of a torchrun world of ``size`` > 1 processes (the default process group)."""

    def __init__(self, rank: int, size: int, local_rank: int, device: torch.device,
                 sync_batchnorm: bool) -> None:
        self.rank, self.size, self.local_rank, self.device = rank, size, local_rank, device
        self.sync_batchnorm = sync_batchnorm
        self.synced: List[SyncedBatchNorm1d] = []  # the model's batch norms, once converted

    def describe(self) -> str:
        return (f"distributed: rank {self.rank} of {self.size} (local rank {self.local_rank}), "
                f"backend {dist.get_backend()}, device {self.device}, rendezvous "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}, batch norm "
                f"{'synchronised' if self.sync_batchnorm else 'per process'}")

    def batches(self, batches: Iterable[Tuple[Frames, List[Piece]]]) -> Iterator[Tuple[Batch, Share]]:
        for batch, share in rank_batches(batches, self.rank, self.size):
            for layer in self.synced:
                layer.replicas = share.replicas
            yield batch, share

    def eval_share(self, plans: List[ChunkPlan]) -> List[ChunkPlan]:
        return share_plans(plans, self.rank, self.size)

    def dropout_seed(self, seed: int) -> int:
        # Independent masks per process; rank 0 keeps the single-process seed.
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    def first_bad(self, bad: Optional[str]) -> Optional[str]:
        flag = torch.tensor([0 if bad is None else 1], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if bad is None and int(flag):
            return "a value of another process"
        return bad

    def sum(self, values: Sequence[float]) -> List[float]:
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def sum_gradients(self, model: nn.Module) -> None:
        """Sum the (frame-weighted) gradients of all processes, in one flat all-reduce."""
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def sum_counters(self, model: nn.Module) -> None:
        layers = [layer for _, layer in counted_layers(model)]
        if not layers:
            return
        flat = torch.stack([getattr(layer, name) for layer in layers for name in COUNTERS])
        dist.all_reduce(flat)
        for index, (layer, name) in enumerate((l, n) for l in layers for n in COUNTERS):
            getattr(layer, name).copy_(flat[index])

    def average_batchnorm_stats(self, model: nn.Module) -> None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                for stat in (module.running_mean, module.running_var):
                    dist.all_reduce(stat)
                    stat.div_(self.size)

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def broadcast_model(self, model: nn.Module) -> None:
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)

    def prepare_model(self, model: nn.Module, log: logging.Logger) -> None:
        if self.sync_batchnorm:
            self.synced = synchronise_batchnorm(model)
            log.info(f"distributed: {len(self.synced)} batch-norm layers synchronised over "
                     f"processes")

    def close(self) -> None:
        dist.destroy_process_group()


def _env_int(name: str, cfg: Path) -> int:
    value = os.environ.get(name)
    if value is None or not value.isdigit():
        raise ConfigError(f"multi_gpu = True but the environment variable {name} is "
                          f"{'unset' if value is None else repr(value)}; start with {TORCHRUN}",
                          file=str(cfg), section="exp", key="multi_gpu")
    return int(value)


def _device(use_cuda: bool, local_rank: int, cfg: Path) -> torch.device:
    if not (use_cuda and torch.cuda.is_available()):
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(f"torchrun started local rank {local_rank} but this node has "
                          f"{torch.cuda.device_count()} GPUs; lower --nproc_per_node",
                          file=str(cfg), section="exp", key="use_cuda")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def start_world(settings: ExpSettings, cfg: Path) -> World:
    """The world of this process: one process, or a process group joined from torchrun's env
    (``cfg``: the cfg the settings come from, named by the errors)."""
    launched = "WORLD_SIZE" in os.environ
    if not settings.multi_gpu:
        size = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if size > 1:
            raise ConfigError(f"multi_gpu = False, but torchrun started {size} processes; set "
                              f"multi_gpu = True for data-parallel training (or start one "
                              f"process)", file=str(cfg), section="exp", key="multi_gpu")
        return World()
    if not launched:
        raise ConfigError(f"multi_gpu = True: start the run with {TORCHRUN} (data-parallel "
                          f"training; upstream's DataParallel is not offered: it splits the "
                          f"time-major batches of recurrent models along time)",
                          file=str(cfg), section="exp", key="multi_gpu")
    size = _env_int("WORLD_SIZE", cfg)
    if size == 1:
        return World()
    rank, local_rank = _env_int("RANK", cfg), _env_int("LOCAL_RANK", cfg)
    device = _device(settings.use_cuda, local_rank, cfg)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank,
                            world_size=size, timeout=TIMEOUT)
    return ProcessGroup(rank, size, local_rank, device, settings.sync_batchnorm)


def follower_log(rank: int) -> logging.Logger:
    """The log of a process other than rank 0: warnings only, on stderr, marked with the rank."""
    log = logging.getLogger(f"pytorch_kaldi_snn.run_exp.rank{rank}")
    log.setLevel(logging.WARNING)
    log.propagate = False
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"rank {rank}: %(message)s"))
    log.addHandler(handler)
    return log
