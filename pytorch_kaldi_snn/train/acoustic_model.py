"""The network a cfg's ``[model]`` section describes, run as one ``nn.Module``.

Each ``compute(arch_name, input)`` instantiates the ``[architectureN]`` class once (PyTorch-Kaldi's
registry contract: ``cls(options, inp_dim)`` with an ``out_dim`` attribute); the other
operations combine outputs. Sequence models take ``(T, B, F)``; frame models (``arch_seq_model =
False``) see the frames flattened to ``(T*B, F)`` and their output is reshaped back.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, Dict, Mapping, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_kaldi_snn.config.architectures import N_OUT_PREFIX
from pytorch_kaldi_snn.config.experiment import Experiment
from pytorch_kaldi_snn.config.model_language import Operation
from pytorch_kaldi_snn.data.batching import IGNORE
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.neural_networks import architecture_class
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
            if op.op == "compute" and a not in self.nets:
                arch = exp.architectures[a]
                net = architecture_class(arch.arch_class, arch.section)
                self.nets[a] = net(arch.spec.sized(n_out), dims[b])
                self.seq_model[a] = arch.seq_model
            size = _operation(op).size(self, op, dims)
            if size is not None:
                dims[op.out] = size
        self.dims = dims  # value name -> last dimension, for checks against the labels

    def _compute(self, arch: str, x: Tensor) -> Tensor:
        net = self.nets[arch]
        if self.seq_model[arch]:
            return net(x)
        steps, batch = x.shape[:2]
        return net(x.reshape(steps * batch, -1)).reshape(steps, batch, -1)

    def _run_op(self, op: Operation, values: Dict[str, Tensor],
               labels: Mapping[str, Tensor]) -> Tensor:
        return _operation(op).run(self, op.args, values, labels)

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


class _Op(NamedTuple):
    """How an operation of the model language runs, and the last dimension of its value
    (None for a scalar cost)."""

    run: Callable[[AcousticModel, Tuple[str, str], Dict[str, Tensor], Mapping[str, Tensor]],
                  Tensor]
    size: Callable[[AcousticModel, Operation, Mapping[str, int]], Optional[int]]


def _nll(out: Tensor, labels: Tensor) -> Tensor:
    return F.nll_loss(out.reshape(-1, out.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


def _no_size(model: AcousticModel, op: Operation, dims: Mapping[str, int]) -> Optional[int]:
    return None


def _size_of_first(model: AcousticModel, op: Operation, dims: Mapping[str, int]) -> Optional[int]:
    return dims.get(op.args[0])  # none for a cost scaled or summed


# one row per operation of config.model_language.OPERATIONS
# (tests/train/test_acoustic_model.py checks)
OPERATIONS: Dict[str, _Op] = {
    "compute": _Op(lambda m, args, v, lab: m._compute(args[0], v[args[1]]),
                   lambda m, op, dims: m.nets[op.args[0]].out_dim),
    "cost_nll": _Op(lambda m, args, v, lab: _nll(v[args[0]], lab[args[1]]), _no_size),
    "cost_err": _Op(lambda m, args, v, lab: frame_error(v[args[0]], lab[args[1]]), _no_size),
    "sum": _Op(lambda m, args, v, lab: v[args[0]] + v[args[1]], _size_of_first),
    "mult_constant": _Op(lambda m, args, v, lab: v[args[0]] * float(args[1]), _size_of_first),
    "concatenate": _Op(lambda m, args, v, lab: torch.cat([v[args[0]], v[args[1]]], dim=-1),
                       lambda m, op, dims: dims[op.args[0]] + dims[op.args[1]]),
}


def _operation(op: Operation) -> _Op:
    """The row of ``op``; an operation this table lacks is refused by name, never guessed."""
    if op.op not in OPERATIONS:
        raise ConfigError(f"unknown operation {op.op!r} (known: {', '.join(OPERATIONS)})",
                          section="model", key="model")
    return OPERATIONS[op.op]


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
