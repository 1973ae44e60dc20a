"""Non-finite guards of the training loop: loss, layer outputs, gradients, parameters, buffers.

A loss guard alone misses divergence: a network whose weights blew up may output zeros with a
finite loss. So each batch is checked at three points — after the forward pass (every value of
the model language, and the buffers the forward updated: the EMA of b, batch-norm statistics),
after the backward pass (gradients) and after the optimiser step (parameters). The checks only
read tensors, so a run that passes them computes exactly what it would without them.

On a bad forward or backward the batch can be skipped (``[exp] on_nonfinite = skip``): the
buffers are put back as they were before the batch and no optimiser steps. Non-finite
parameters after a step cannot be undone and always stop the run.
"""
from __future__ import annotations

from typing import Dict, Iterable, Iterator, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.errors import UserInputError


class DivergenceError(UserInputError):
    """Training produced NaN/Inf: names epoch, batch and the first non-finite tensor."""


def _first_nonfinite(named: Iterable[Tuple[str, Optional[Tensor]]]) -> Optional[str]:
    checked = [(name, t) for name, t in named if t is not None and t.is_floating_point()]
    if not checked:
        return None
    finite = torch.stack([torch.isfinite(t).all() for _, t in checked])
    if bool(finite.all()):  # one device synchronisation per check, not one per tensor
        return None
    return checked[int((~finite).nonzero()[0])][0]


def _values(values: Mapping[str, Tensor]) -> Iterator[Tuple[str, Tensor]]:
    return ((f"value {name}", v) for name, v in values.items())


def _buffers(model: nn.Module) -> Iterator[Tuple[str, Tensor]]:
    return ((f"buffer {name}", b) for name, b in model.named_buffers())


def after_forward(model: nn.Module, values: Mapping[str, Tensor]) -> Optional[str]:
    """The first model-language value or buffer (b, BN statistics) holding NaN/Inf, or None."""
    return _first_nonfinite([*_values(values), *_buffers(model)])


def after_backward(model: nn.Module) -> Optional[str]:
    return _first_nonfinite((f"gradient of {n}", p.grad) for n, p in model.named_parameters())


def after_step(model: nn.Module) -> Optional[str]:
    return _first_nonfinite((f"parameter {n}", p) for n, p in model.named_parameters())


def snapshot_buffers(model: nn.Module) -> Dict[str, Tensor]:
    """Copies of the buffers a training forward pass changes, to undo a skipped batch."""
    return {name: b.detach().clone() for name, b in model.named_buffers()}


def restore_buffers(model: nn.Module, saved: Mapping[str, Tensor]) -> None:
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved[name])


def divergence(where: str, what: str, kept: str) -> DivergenceError:
    """The one-line error: where (``epoch 2, batch 5``), what, what was kept, what to change."""
    return DivergenceError(
        f"training diverged at {where}: {what} is not finite (NaN/Inf); "
        f"{kept}, no results written. Lower arch_lr, check the features, or set "
        f"[exp] on_nonfinite = skip to skip such batches")
