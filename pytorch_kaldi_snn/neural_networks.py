"""PyTorch-Kaldi architecture classes: ``(options, inp_dim)`` → typed arguments → layers.

Use inside an upstream PyTorch-Kaldi checkout with ``arch_library = pytorch_kaldi_snn.neural_networks``
and ``arch_class`` one of :class:`TraditionalSNN`, :class:`ImprovedSNNv1`,
:class:`ImprovedSNNv2`, :class:`UniLSTM`, :class:`UniGRU`, :class:`MLP`; ``arch_proto`` points at
the matching file in ``pytorch_kaldi_snn/proto/``.

Contract (upstream's ``model_init``): ``options`` is a configparser section whose values are all
strings, including ``use_cuda`` and ``to_do`` that upstream adds (both ignored here: behaviour
follows ``self.training``, the device follows ``.to()``); the instance has ``out_dim``;
``forward`` takes one time-major tensor (T, B, F) and returns one tensor, (T, B, out_dim) for the
recurrent stacks and (T·B, out_dim) for :class:`MLP`. Bad values raise
:class:`~pytorch_kaldi_snn.errors.ConfigError` naming the option and the value.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple, Type

from torch import Tensor, nn

from pytorch_kaldi_snn.config.options import (
    get_bool,
    get_bool_list,
    get_float,
    get_float_list,
    get_int,
    get_int_list,
    get_str,
    get_str_list,
    per_layer,
    section_name,
)
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.layers import baselines
from pytorch_kaldi_snn.layers.spiking import SPIKING_LAYERS, stack_of
from pytorch_kaldi_snn.neurons.options import NeuronOptions, OptionError

Options = Mapping[str, str]

# cfg key of each option of the spiking layers (neurons.options), and whether it is per layer
SNN_KEYS: Dict[str, Tuple[str, bool]] = {
    "n_bits": ("snn_n_bits", True), "threshold": ("snn_threshold", True),
    "surrogate": ("snn_surrogate", True), "alpha": ("snn_alpha", True),
    "beta": ("snn_beta", True), "dropout": ("snn_drop", True),
    "use_batchnorm": ("snn_use_batchnorm", True), "reading": ("snn_reading", True),
    "learn_decay": ("snn_learn_decay", False), "ema_momentum": ("snn_ema_momentum", False),
    "b_init": ("snn_b_init", False), "impl": ("snn_impl", False),
    "forget_bias": ("snn_forget_bias", False), "orthinit": ("snn_orthinit", False),
}  # the projection's ``bias`` has no cfg key: batch norm replaces it
# snn_reset was an option with one value; cfgs that still say ``output`` load unchanged
LEGACY_RESET = ("snn_reset", "output")


def _layer_sizes(options: Options, key: str) -> List[int]:
    return get_int_list(options, key, min=1)


def _read(options: Options, family: Type[NeuronOptions], name: str, reading: str) -> Any:
    """One option's value(s) from its cfg string, typed, range-checked against ``family``'s
    bounds and choices, or ``family``'s default."""
    key, listed = SNN_KEYS[name]
    default = family.default(name, reading)
    lo, hi = family.bounds(name)
    choices = family.choices(name)
    if isinstance(default, bool):
        return get_bool_list(options, key, default=[default]) if listed else \
            get_bool(options, key, default=default)
    if isinstance(default, int):
        getter = get_int_list if listed else get_int
        return getter(options, key, min=lo, max=hi, default=[default] if listed else default)
    if isinstance(default, float):
        getter = get_float_list if listed else get_float
        return getter(options, key, min=lo, max=hi, default=[default] if listed else default)
    getter = get_str_list if listed else get_str
    return getter(options, key, choices=choices, default=[default] if listed else default)


def _spiking_options(options: Options, family: Type[NeuronOptions],
                     n_layers: int) -> List[NeuronOptions]:
    """One typed options object per layer from the ``snn_*`` strings; a value the options
    class refuses becomes a :class:`ConfigError` naming the cfg key."""
    key, value = LEGACY_RESET
    if key in options:
        get_str(options, key, choices=(value,))
    readings = per_layer(_read(options, family, "reading", "paper"), n_layers, options,
                         "snn_reading")
    reading = "authors" if "authors" in readings else "paper"  # picks α and β's defaults
    values: Dict[str, Any] = {}
    for name in (name for name in family.names() if name in SNN_KEYS):
        value = readings if name == "reading" else _read(options, family, name, reading)
        values[name] = per_layer(value, n_layers, options, SNN_KEYS[name][0]) \
            if SNN_KEYS[name][1] else [value] * n_layers
    try:
        return [family(**{name: values[name][index] for name in values})
                for index in range(n_layers)]
    except OptionError as err:
        key = SNN_KEYS[err.option][0]
        raise ConfigError(err.render(lambda name, value: f"{SNN_KEYS[name][0]} = {_text(value)}"),
                          section=section_name(options), key=key) from None


def _text(value: Any) -> str:
    """A value as a cfg would write it (``0``, not ``0.0``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


class _SpikingArchitecture(nn.Module):
    """Shared adapter for the spiking stacks (options ``snn_*``, see ``proto/*.proto``)."""

    variant = ""

    def __init__(self, options: Options, inp_dim: int) -> None:
        super().__init__()
        sizes = _layer_sizes(options, "snn_lay")
        family = SPIKING_LAYERS[self.variant].neuron.options
        self.net = stack_of(self.variant, inp_dim, sizes,
                            _spiking_options(options, family, len(sizes)))
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

    def __init__(self, options: Options, inp_dim: int) -> None:
        super().__init__()
        p = self.kind
        sizes = _layer_sizes(options, f"{p}_lay")
        if get_bool(options, f"{p}_bidir", default=False):
            raise ConfigError(f"{p}_bidir = {options[f'{p}_bidir']}: only unidirectional "
                              f"models are supported (the paper targets streaming input)",
                              section=section_name(options), key=f"{p}_bidir")

        def layers(values: List[Any], key: str) -> List[Any]:
            return per_layer(values, len(sizes), options, key)

        self.net = baselines.recurrent_stack(
            p, inp_dim, sizes,
            acts=layers(get_str_list(options, f"{p}_act", choices=baselines.RECURRENT_ACTIVATIONS,
                                     default=["tanh"]), f"{p}_act"),
            dropouts=layers(get_float_list(options, f"{p}_drop", min=0.0, max=0.99,
                                           default=[0.0]), f"{p}_drop"),
            batchnorms=layers(get_bool_list(options, f"{p}_use_batchnorm", default=[True]),
                              f"{p}_use_batchnorm"),
            layernorms=layers(get_bool_list(options, f"{p}_use_laynorm", default=[False]),
                              f"{p}_use_laynorm"),
            use_batchnorm_inp=get_bool(options, f"{p}_use_batchnorm_inp", default=False),
            use_layernorm_inp=get_bool(options, f"{p}_use_laynorm_inp", default=False),
            orthinit=get_bool(options, f"{p}_orthinit", default=True),
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

    def __init__(self, options: Options, inp_dim: int) -> None:
        super().__init__()
        sizes = _layer_sizes(options, "dnn_lay")

        def layers(values: List[Any], key: str) -> List[Any]:
            return per_layer(values, len(sizes), options, key)

        self.net = baselines.MLP(
            inp_dim, sizes,
            acts=layers(get_str_list(options, "dnn_act", choices=tuple(baselines.ACTIVATIONS),
                                     default=["softmax"]), "dnn_act"),
            dropouts=layers(get_float_list(options, "dnn_drop", min=0.0, max=0.99,
                                           default=[0.0]), "dnn_drop"),
            batchnorms=layers(get_bool_list(options, "dnn_use_batchnorm", default=[False]),
                              "dnn_use_batchnorm"),
            layernorms=layers(get_bool_list(options, "dnn_use_laynorm", default=[False]),
                              "dnn_use_laynorm"),
            use_batchnorm_inp=get_bool(options, "dnn_use_batchnorm_inp", default=False),
            use_layernorm_inp=get_bool(options, "dnn_use_laynorm_inp", default=False),
        )
        self.out_dim = sizes[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
