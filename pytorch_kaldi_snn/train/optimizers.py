"""Upstream PyTorch-Kaldi's three optimisers with every field of their protos.

``proto/adam.proto``: ``opt_betas, opt_eps, opt_weight_decay, opt_amsgrad``;
``proto/sgd.proto``: ``opt_momentum, opt_weight_decay, opt_dampening, opt_nesterov``;
``proto/rmsprop.proto``: ``opt_momentum, opt_alpha, opt_eps, opt_centered, opt_weight_decay``.
A missing field gets torch's default (upstream's cfgs set them all; every upstream RMSprop
baseline sets ``opt_alpha = 0.95`` where torch's default is 0.99).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Iterable

import torch

if TYPE_CHECKING:
    from pytorch_kaldi_snn.config.experiment import Architecture

OPTIMIZERS: Dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
}


def make_optimizer(arch: "Architecture", params: Iterable) -> torch.optim.Optimizer:
    return OPTIMIZERS[arch.opt](params, lr=arch.lr, **arch.opt_kwargs)
