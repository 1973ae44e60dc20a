"""The network a cfg's ``[model]`` section describes, run as one ``nn.Module``.

Each ``compute(arch_name, input)`` instantiates the ``[architectureN]`` class once (PyTorch-Kaldi's
registry contract: ``cls(options, inp_dim)`` with an ``out_dim`` attribute); the other
operations combine outputs. Sequence models take ``(T, B, F)``; frame models (``arch_seq_model =
False``) see the frames flattened to ``(T*B, F)`` and their output is reshaped back.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Dict, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_kaldi_snn.config.experiment import (
    N_OUT_PREFIX, Experiment, Operation, architecture_class,
)
from pytorch_kaldi_snn.data.batching import IGNORE
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.train.precision import autocast


class AcousticModel(nn.Module):
    """All architectures of an experiment wired by its model language."""

    def __init__(self, exp: Experiment, n_out: Mapping[str, int],
                 feature_dims: Mapping[str, int]) -> None:
        super().__init__()
        self.operations = exp.model.operations
        self.precision = exp.exp.precision
        self.nets = nn.ModuleDict()
        self.seq_model: Dict[str, bool] = {}
        dims = dict(feature_dims)
        for op in self.operations:
            a, b = op.args
            if op.op == "compute":
                arch = exp.architectures[a]
                if a not in self.nets:
                    self.nets[a] = architecture_class(arch)(arch.resolved_options(n_out), dims[b])
                    self.seq_model[a] = arch.seq_model
                dims[op.out] = self.nets[a].out_dim
            elif op.op == "concatenate":
                dims[op.out] = dims[a] + dims[b]
            elif op.op in ("sum", "mult_constant") and a in dims:  # not for scalar losses
                dims[op.out] = dims[a]
        self.dims = dims  # value name -> last dimension, for checks against the labels

    def _compute(self, arch: str, x: Tensor) -> Tensor:
        net = self.nets[arch]
        if self.seq_model[arch]:
            return net(x)
        steps, batch = x.shape[:2]
        return net(x.reshape(steps * batch, -1)).reshape(steps, batch, -1)

    def _run_op(self, op: Operation, values: Dict[str, Tensor],
               labels: Mapping[str, Tensor]) -> Tensor:
        a, b = op.args
        if op.op == "compute":
            return self._compute(a, values[b])
        if op.op == "cost_nll":
            out = values[a]
            return F.nll_loss(out.reshape(-1, out.shape[-1]), labels[b].reshape(-1),
                              ignore_index=IGNORE)
        if op.op == "cost_err":
            return frame_error(values[a], labels[b])
        if op.op == "sum":
            return values[a] + values[b]
        if op.op == "mult_constant":
            return values[a] * float(b)
        return torch.cat([values[a], values[b]], dim=-1)  # concatenate

    def forward(self, features: Mapping[str, Tensor],
                labels: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """Every value the model language defines (``loss_final``, ``err_final``, outputs)."""
        values: Dict[str, Tensor] = dict(features)
        with self._autocast(features):
            for op in self.operations:
                values[op.out] = self._run_op(op, values, labels)
        return values

    def _autocast(self, features: Mapping[str, Tensor]) -> AbstractContextManager:
        """The ``[exp] precision`` region of a forward pass, on the features' device."""
        return autocast(self.precision, next(iter(features.values())).device)

    def output(self, features: Mapping[str, Tensor], name: str) -> Tensor:
        """The value ``name`` (e.g. ``forward_out``) from features alone, for audio without
        labels: the operations that produce it, without the costs."""
        values: Dict[str, Tensor] = dict(features)
        with self._autocast(features):
            for op in self.operations:
                if not op.op.startswith("cost_"):
                    values[op.out] = self._run_op(op, values, {})
                if op.out == name:
                    return values[name]
        raise KeyError(name)


def frame_error(log_probs: Tensor, labels: Tensor) -> Tensor:
    """Fraction of non-padded frames whose best class is not the label."""
    valid = labels != IGNORE
    wrong = (log_probs.argmax(dim=-1) != labels) & valid
    return wrong.sum() / valid.sum().clamp(min=1)


def real_frame_mask(labels: Mapping[str, Tensor]) -> Tensor:
    """(T, B) mask of the non-padded frames of a batch (all label sets share the padding)."""
    return next(iter(labels.values())) != IGNORE


def valid_frames(labels: Mapping[str, Tensor]) -> int:
    """Number of non-padded frames in a batch."""
    return int(real_frame_mask(labels).sum())


def check_readout_sizes(exp: Experiment, model: AcousticModel, n_out: Mapping[str, int]) -> None:
    """Each ``cost_nll(out, lab)`` reads an output of exactly N_out_<lab> values (else the loss
    fails with an out-of-range target after training started, or silently ignores classes)."""
    for op in exp.model.operations:
        if op.op != "cost_nll":
            continue
        out, lab = op.args
        if model.dims.get(out) == n_out[lab]:
            continue
        producer = exp.model.producer(out)
        section = exp.architectures[producer.args[0]].section if producer.op == "compute" else "model"
        raise ConfigError(f"{out} has {model.dims.get(out)} values but label set {lab} has "
                          f"{n_out[lab]} classes (size the readout with {N_OUT_PREFIX}{lab})",
                          file=str(exp.cfg_path), section=section)
