"""Non-finite guards of the training loop: loss, layer outputs, gradients, parameters, buffers.

A loss guard alone misses divergence: a network whose weights blew up may output zeros with a
finite loss. So each batch is checked at three points — after the forward pass (every value of
the model language, and the buffers the forward updated: the EMA of b, batch-norm statistics),
after the backward pass (gradients) and after the optimiser step (parameters). The checks only
read tensors, so a run that passes them computes exactly what it would without them.

On a bad forward or backward the batch can be skipped (``[exp] on_nonfinite = skip``): the
buffers are put back as they were before the batch and no optimiser steps. Non-finite
parameters after a step cannot be undone and always stop the run.

The checks build flags on the device and :func:`read` fetches them together with the batch's
loss and frame error, so the guards add no wait for the GPU beyond the one the log needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.errors import UserInputError


class DivergenceError(UserInputError):
    """Training produced NaN/Inf: names epoch, batch and the first non-finite tensor."""


@dataclass(frozen=True)
class Finite:
    """Whether each named tensor holds only finite values, as one flag tensor on the device.

    Building it does not wait for the device; :func:`read` reads several at once.
    """
    names: Tuple[str, ...] = ()
    flags: Optional[Tensor] = None

    def __add__(self, other: "Finite") -> "Finite":
        if self.flags is None or other.flags is None:
            return self if other.flags is None else other
        return Finite(self.names + other.names, torch.cat([self.flags, other.flags]))


def finite(named: Iterable[Tuple[str, Optional[Tensor]]]) -> Finite:
    checked = [(name, t) for name, t in named if t is not None and t.is_floating_point()]
    if not checked:
        return Finite()
    return Finite(tuple(name for name, _ in checked),
                  torch.stack([torch.isfinite(t.detach()).all() for _, t in checked]))


def read(checks: Sequence[Finite], scalars: Sequence[Tensor]
         ) -> Tuple[List[Optional[str]], List[float]]:
    """The first non-finite name of each check (or None) and the scalars' values, in ONE
    transfer from the device: a training batch waits for the GPU once, for its log line."""
    parts = [c.flags.to(torch.float64) for c in checks if c.flags is not None]
    parts += [s.detach().reshape(1).to(torch.float64) for s in scalars]
    values = torch.cat([t.to(parts[0].device) for t in parts]).tolist() if parts else []
    bad: List[Optional[str]] = []
    offset = 0
    for check in checks:
        flags = values[offset:offset + len(check.names)]
        offset += len(check.names)
        bad.append(next((n for n, ok in zip(check.names, flags) if not ok), None))
    return bad, values[offset:]


def _values(values: Mapping[str, Tensor]) -> Iterator[Tuple[str, Tensor]]:
    return ((f"value {name}", v) for name, v in values.items())


def _buffers(model: nn.Module) -> Iterator[Tuple[str, Tensor]]:
    return ((f"buffer {name}", b) for name, b in model.named_buffers())


def after_forward(model: nn.Module, values: Mapping[str, Tensor]) -> Finite:
    """Every model-language value and buffer (b, BN statistics)."""
    return finite([*_values(values), *_buffers(model)])


def after_backward(model: nn.Module) -> Finite:
    return finite((f"gradient of {n}", p.grad) for n, p in model.named_parameters())


def after_step(model: nn.Module) -> Finite:
    return finite((f"parameter {n}", p) for n, p in model.named_parameters())


def snapshot_buffers(model: nn.Module) -> Dict[str, Tensor]:
    """Copies of the buffers a training forward pass changes, to undo a skipped batch."""
    buffers = {name for name, _ in model.named_buffers()}
    return {name: t.clone() for name, t in model.state_dict().items() if name in buffers}


def restore_buffers(model: nn.Module, saved: Mapping[str, Tensor]) -> None:
    """Put the buffers back through ``load_state_dict``, so that modules that keep a host copy
    of a buffer (the EMA's step count) see the restore, as they see a checkpoint's."""
    model.load_state_dict(dict(saved), strict=False)


def divergence(where: str, what: str, kept: str) -> DivergenceError:
    """The one-line error: where (``epoch 2, batch 5``), what, what was kept, what to change."""
    return DivergenceError(
        f"training diverged at {where}: {what} is not finite (NaN/Inf); "
        f"{kept}, no results written. Lower arch_lr, check the features, or set "
        f"[exp] on_nonfinite = skip to skip such batches")
