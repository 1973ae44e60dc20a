"""Batch norm over the whole data-parallel batch (``[exp] sync_batchnorm``), on CPU and GPU.

In data-parallel training each process normalises a part of the global batch. With plain batch
norm the statistics are those of the part, so the training differs from a single-process run
with the same batch (and with the number of processes). :class:`SyncedBatchNorm1d` sums the
statistics over processes instead: the frame count and the sum of the inputs, then the sum of
the squared deviations from the global mean (two passes, as accurate as one process's batch
norm), each with one all-reduce. The all-reduces are autograd functions
(``torch.distributed.nn.functional.all_reduce``), so the gradient is the gradient of the global
batch. ``torch.nn.SyncBatchNorm`` would do the same on GPUs only (it refuses CPU tensors,
and so the gloo backend); one implementation serves both here.

Outside training, or outside a process group of several processes, it is ``nn.BatchNorm1d``;
parameters and buffers are the same objects under the same names, so checkpoints do not change.
"""
from __future__ import annotations

from typing import Any, List

import torch
import torch.distributed as dist
from torch import Tensor, nn


def _group_of_several() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _SumOverRanks(torch.autograd.Function):
    """Sum over processes; the gradient of each input is the sum of the output's gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class SyncedBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over ``(N, C)`` inputs with statistics of all processes' frames.

    ``replicas`` is how many processes compute the same frames (a batch too small to split is
    computed whole by every process): the mean and variance do not change, but the unbiased
    variance of the running statistics must count the frames once.
    """

    replicas = 1

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and _group_of_several()) or x.dim() != 2:
            return super().forward(x)
        sums = _SumOverRanks.apply(torch.cat([x.sum(0), x.new_full((1,), float(x.shape[0]))]))
        count = float(sums[-1].detach())  # every copy of a replicated batch counted
        mean = sums[:-1] / count
        centred = x - mean
        var = _SumOverRanks.apply(centred.pow(2).sum(0)) / count
        self._track(mean.detach(), var.detach(), count / self.replicas)
        out = centred * torch.rsqrt(var + self.eps)
        return out * self.weight + self.bias if self.affine else out

    @torch.no_grad()
    def _track(self, mean: Tensor, var: Tensor, count: float) -> None:
        """Running statistics as ``F.batch_norm`` updates them (unbiased variance)."""
        if not self.track_running_stats:
            return
        self.num_batches_tracked.add_(1)
        factor = (1.0 / int(self.num_batches_tracked) if self.momentum is None
                  else self.momentum)
        self.running_mean.mul_(1.0 - factor).add_(factor * mean)
        self.running_var.mul_(1.0 - factor).add_(factor * var * count / max(count - 1.0, 1.0))


def synchronise_batchnorm(module: nn.Module) -> List[SyncedBatchNorm1d]:
    """Replace every ``nn.BatchNorm1d`` in ``module`` by a :class:`SyncedBatchNorm1d` sharing its
    parameters and buffers (in place); returns the new layers."""
    replaced: List[SyncedBatchNorm1d] = []
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            synced = SyncedBatchNorm1d(child.num_features, child.eps, child.momentum,
                                       child.affine, child.track_running_stats)
            synced._parameters = child._parameters
            synced._buffers = child._buffers
            synced.train(child.training)
            setattr(module, name, synced)
            replaced.append(synced)
        else:
            replaced += synchronise_batchnorm(child)
    return replaced
