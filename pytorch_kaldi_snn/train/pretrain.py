"""``arch_pretrain_file`` and ``arch_freeze``: start an architecture from saved weights, or keep
it fixed, as upstream PyTorch-Kaldi does.

A pretrain file is what upstream saves per architecture (``torch.save({"model_par":
state_dict, "optimizer_par": ...})``) or a bare state dict. A frozen architecture's parameters
get no gradient, so its optimiser never changes them (upstream skips its ``step()``); batch-norm
statistics still follow the data in training mode, as upstream's do.
"""
from __future__ import annotations

import logging
from typing import Mapping

import torch
from torch import nn

from pytorch_kaldi_snn.config.experiment import Architecture
from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.train.checkpoint import read_weights


def _load_state(arch: Architecture) -> Mapping[str, torch.Tensor]:
    path = arch.pretrain_file
    if path is None or not path.is_file():
        raise ConfigError(f"{path} does not exist", section=arch.section, key="arch_pretrain_file")
    try:
        state = read_weights(path, remedy="give a file saved by PyTorch-Kaldi or this project")
    except DataError as err:
        raise ConfigError(f"{path} {err.message}", section=arch.section,
                          key="arch_pretrain_file") from None
    return state.get("model_par", state) if isinstance(state, dict) else state


def apply_pretrain_and_freeze(nets: Mapping[str, nn.Module], archs: Mapping[str, Architecture],
                              log: logging.Logger) -> None:
    """Load every ``arch_pretrain_file``, then freeze every ``arch_freeze = True`` architecture."""
    for name, net in nets.items():
        arch = archs[name]
        if arch.pretrain_file is not None:
            try:
                net.load_state_dict(_load_state(arch))
            except (RuntimeError, KeyError, AttributeError) as err:
                first = str(err).strip().splitlines()[0]
                raise ConfigError(f"{arch.pretrain_file} does not fit {arch.arch_class}: {first}",
                                  section=arch.section, key="arch_pretrain_file") from None
            log.info(f"{name}: weights from {arch.pretrain_file}")
        if arch.freeze:
            net.requires_grad_(False)
            log.info(f"{name}: frozen (arch_freeze = True)")
