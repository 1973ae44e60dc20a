"""PyTorch-Kaldi architecture classes: ``(options, inp_dim)`` → layers.

Use inside an upstream PyTorch-Kaldi checkout with ``arch_library = pytorch_kaldi_snn.neural_networks``
and ``arch_class`` one of :class:`TraditionalSNN`, :class:`ImprovedSNNv1`,
:class:`ImprovedSNNv2`, :class:`UniLSTM`, :class:`UniGRU`, :class:`MLP`; ``arch_proto`` points at
the matching file in ``pytorch_kaldi_snn/proto/``.

Contract (upstream's ``model_init``): ``options`` is a configparser section whose values are all
strings, including ``use_cuda`` and ``to_do`` that upstream adds (both ignored here: behaviour
follows ``self.training``, the device follows ``.to()``); the instance has ``out_dim``;
``forward`` takes one time-major tensor (T, B, F) and returns one tensor, (T, B, out_dim) for the
recurrent stacks and (T·B, out_dim) for :class:`MLP`. Bad values raise
:class:`~pytorch_kaldi_snn.errors.ConfigError` naming the option and the value. The strings are
read by :mod:`pytorch_kaldi_snn.config.architectures`; the runner passes the typed spec it read
once from the cfg instead of the strings.
"""
from __future__ import annotations

from typing import Mapping, Union

from torch import Tensor, nn

from pytorch_kaldi_snn.config.architectures import (
    SpikingSpec, StackSpec, check_arch_class, spiking_spec, stack_spec,
)
from pytorch_kaldi_snn.config.options import section_name
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.layers import baselines
from pytorch_kaldi_snn.layers.spiking import stack_of

Options = Mapping[str, str]


def _widths(spec: Union[SpikingSpec, StackSpec], options: object) -> list:
    """The widths of a spec whose ``N_out_<lab>`` names were replaced (:meth:`sized`);
    upstream replaces them before it builds a model, so a name left here is an error."""
    unknown = [size for size in spec.sizes if isinstance(size, str)]
    if unknown:
        key = "snn_lay" if isinstance(spec, SpikingSpec) else f"{spec.kind}_lay"
        raise ConfigError(f"{unknown[0]} is not known here: give the width as a number",
                          section=None if options is spec else section_name(options), key=key)
    return list(spec.sizes)


class _SpikingArchitecture(nn.Module):
    """Shared adapter for the spiking stacks (options ``snn_*``, see ``proto/*.proto``)."""

    variant = ""

    def __init__(self, options: Union[Options, SpikingSpec], inp_dim: int) -> None:
        super().__init__()
        spec = options if isinstance(options, SpikingSpec) else spiking_spec(self.variant, options)
        sizes = _widths(spec, options)
        self.net = stack_of(self.variant, inp_dim, sizes, list(spec.layers))
        self.out_dim = sizes[-1]

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, inp_dim) → delivered outputs Ŷ (T, B, out_dim)."""
        return self.net(x)


class TraditionalSNN(_SpikingArchitecture):
    """Stack of traditional LIF layers (Eq. 7-9, multi-bit output Eq. 22)."""

    variant = "traditional"


class ImprovedSNNv1(_SpikingArchitecture):
    """Stack of SNN layers with improved dynamics v1 (Eq. 16-18)."""

    variant = "v1"


class ImprovedSNNv2(_SpikingArchitecture):
    """Stack of SNN layers with improved dynamics v2 (Eq. 19-21)."""

    variant = "v2"


class _RecurrentArchitecture(nn.Module):
    """Shared adapter for unidirectional LSTM/GRU stacks with PyTorch-Kaldi's option names."""

    kind = ""

    def __init__(self, options: Union[Options, StackSpec], inp_dim: int) -> None:
        super().__init__()
        spec = options if isinstance(options, StackSpec) else stack_spec(self.kind, options)
        sizes = _widths(spec, options)
        self.net = baselines.recurrent_stack(
            self.kind, inp_dim, sizes, acts=list(spec.acts), dropouts=list(spec.dropouts),
            batchnorms=list(spec.batchnorms), layernorms=list(spec.layernorms),
            use_batchnorm_inp=spec.use_batchnorm_inp, use_layernorm_inp=spec.use_layernorm_inp,
            orthinit=spec.orthinit,
        )
        self.out_dim = sizes[-1]

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, inp_dim) → hidden states (T, B, out_dim)."""
        return self.net(x)


class UniLSTM(_RecurrentArchitecture):
    """Unidirectional LSTM stack (options ``lstm_*`` as upstream's ``LSTM``)."""

    kind = "lstm"


class UniGRU(_RecurrentArchitecture):
    """Unidirectional GRU stack (options ``gru_*`` as upstream's ``GRU``)."""

    kind = "gru"


class MLP(nn.Module):
    """Readout (options ``dnn_*`` as upstream's ``MLP``): (T, B, F) or (N, F) → (N, out_dim).

    ``dnn_lay`` must hold integers: upstream replaces ``N_out_lab_cd`` and the like by numbers
    before building the model. ``dnn_act = softmax`` gives log-probabilities.
    """

    def __init__(self, options: Union[Options, StackSpec], inp_dim: int) -> None:
        super().__init__()
        spec = options if isinstance(options, StackSpec) else stack_spec("dnn", options)
        sizes = _widths(spec, options)
        self.net = baselines.MLP(
            inp_dim, sizes, acts=list(spec.acts), dropouts=list(spec.dropouts),
            batchnorms=list(spec.batchnorms), layernorms=list(spec.layernorms),
            use_batchnorm_inp=spec.use_batchnorm_inp, use_layernorm_inp=spec.use_layernorm_inp,
        )
        self.out_dim = sizes[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def architecture_class(name: str, section: str) -> type:
    """The class named by ``arch_class`` (PyTorch-Kaldi's arch_library registry)."""
    check_arch_class(name, section)
    return globals()[name]
