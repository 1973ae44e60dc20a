"""``[architectureN]`` options (cfg strings) → the typed configuration of the class's layers.

Each PyTorch-Kaldi class (:mod:`pytorch_kaldi_snn.neural_networks`) is built from one spec
parsed here once: :class:`SpikingSpec` holds one :class:`~pytorch_kaldi_snn.neurons.options.
NeuronOptions` per layer (the neuron code states each default, range and cross-option check;
this module only translates ``snn_*`` strings and words its errors by cfg key), and
:class:`StackSpec` the options of the LSTM/GRU/MLP baselines, whose activation names
:mod:`~pytorch_kaldi_snn.config.registry` lists (the layer code implements each). A width may
be ``N_out_<lab>`` until the label set's size is known (:meth:`sized`); the PyTorch-Kaldi
classes also accept the strings themselves.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Tuple, Type, Union

from pytorch_kaldi_snn.config.options import (
    Section, get_bool, get_bool_list, get_float, get_float_list, get_int, get_int_list, get_str,
    get_str_list, per_layer, section_name,
)
from pytorch_kaldi_snn.config.registry import ACTIVATIONS, RECURRENT_ACTIVATIONS, UPSTREAM_CLASSES
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.neurons.options import MAX_DROPOUT, NeuronOptions, OptionError
from pytorch_kaldi_snn.neurons.variants import neuron

Options = Mapping[str, str]
Size = Union[int, str]  # a layer width, or N_out_<lab> until that label set's size is known
N_OUT_PREFIX = "N_out_"

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


def _sized(sizes: Tuple[Size, ...], n_out: Mapping[str, int]) -> Tuple[int, ...]:
    return tuple(n_out[s[len(N_OUT_PREFIX):]] if isinstance(s, str) else s for s in sizes)


@dataclass(frozen=True)
class SpikingSpec:
    """A spiking stack: its neuron variant, widths and one options object per layer."""

    variant: str
    sizes: Tuple[Size, ...]
    layers: Tuple[NeuronOptions, ...]

    def sized(self, n_out: Mapping[str, int]) -> "SpikingSpec":
        return dataclasses.replace(self, sizes=_sized(self.sizes, n_out))


@dataclass(frozen=True)
class StackSpec:
    """An LSTM, GRU (``kind`` lstm, gru) or MLP (dnn) stack with PyTorch-Kaldi's options."""

    kind: str
    sizes: Tuple[Size, ...]
    acts: Tuple[str, ...]
    dropouts: Tuple[float, ...]
    batchnorms: Tuple[bool, ...]
    layernorms: Tuple[bool, ...]
    use_batchnorm_inp: bool
    use_layernorm_inp: bool
    orthinit: bool  # recurrent stacks only

    def sized(self, n_out: Mapping[str, int]) -> "StackSpec":
        return dataclasses.replace(self, sizes=_sized(self.sizes, n_out))


ArchSpec = Union[SpikingSpec, StackSpec]


def layer_sizes(options: Options, key: str) -> Tuple[Size, ...]:
    """Comma-separated widths of at least 1; ``N_out_<lab>`` kept as a name."""
    texts = get_str_list(options, key)
    names = [re.fullmatch(N_OUT_PREFIX + r"\w+", text) is not None for text in texts]
    if not any(names):
        return tuple(get_int_list(options, key, min=1))
    given = ",".join(text for text, name in zip(texts, names) if not name)
    numbers = iter(get_int_list(Section(section_name(options) or "", {key: given}), key, min=1)
                   if given else [])
    return tuple(text if name else next(numbers) for text, name in zip(texts, names))


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


def _text(value: Any) -> str:
    """A value as a cfg would write it (``0``, not ``0.0``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def spiking_spec(variant: str, options: Options) -> SpikingSpec:
    """The ``snn_*`` strings as one typed options object per layer; a value the options class
    refuses becomes a :class:`ConfigError` naming the cfg key."""
    sizes = layer_sizes(options, "snn_lay")
    family = neuron(variant).options
    key, value = LEGACY_RESET
    if key in options:
        get_str(options, key, choices=(value,))
    readings = per_layer(_read(options, family, "reading", "paper"), len(sizes), options,
                         "snn_reading")
    reading = "authors" if "authors" in readings else "paper"  # picks α and β's defaults
    values: Dict[str, Any] = {}
    for name in (name for name in family.names() if name in SNN_KEYS):
        value = readings if name == "reading" else _read(options, family, name, reading)
        values[name] = per_layer(value, len(sizes), options, SNN_KEYS[name][0]) \
            if SNN_KEYS[name][1] else [value] * len(sizes)
    try:
        layers = tuple(family(**{name: values[name][index] for name in values})
                       for index in range(len(sizes)))
    except OptionError as err:
        raise ConfigError(err.render(lambda name, value: f"{SNN_KEYS[name][0]} = {_text(value)}"),
                          section=section_name(options), key=SNN_KEYS[err.option][0]) from None
    return SpikingSpec(variant, sizes, layers)


def stack_spec(kind: str, options: Options) -> StackSpec:
    """``lstm_*``, ``gru_*`` or ``dnn_*`` (kind lstm, gru or dnn) options, typed."""
    p = kind
    sizes = layer_sizes(options, f"{p}_lay")
    if kind != "dnn" and get_bool(options, f"{p}_bidir", default=False):
        raise ConfigError(f"{p}_bidir = {options[f'{p}_bidir']}: only unidirectional "
                          f"models are supported (the paper targets streaming input)",
                          section=section_name(options), key=f"{p}_bidir")

    def layers(values: List[Any], key: str) -> Tuple[Any, ...]:
        return tuple(per_layer(values, len(sizes), options, key))

    acts = (ACTIVATIONS, "softmax") if kind == "dnn" else (RECURRENT_ACTIVATIONS, "tanh")
    return StackSpec(
        kind=kind, sizes=sizes,
        acts=layers(get_str_list(options, f"{p}_act", choices=acts[0], default=[acts[1]]),
                    f"{p}_act"),
        dropouts=layers(get_float_list(options, f"{p}_drop", min=0.0, max=MAX_DROPOUT,
                                       default=[0.0]), f"{p}_drop"),
        batchnorms=layers(get_bool_list(options, f"{p}_use_batchnorm", default=[kind != "dnn"]),
                          f"{p}_use_batchnorm"),
        layernorms=layers(get_bool_list(options, f"{p}_use_laynorm", default=[False]),
                          f"{p}_use_laynorm"),
        use_batchnorm_inp=get_bool(options, f"{p}_use_batchnorm_inp", default=False),
        use_layernorm_inp=get_bool(options, f"{p}_use_laynorm_inp", default=False),
        orthinit=kind != "dnn" and get_bool(options, f"{p}_orthinit", default=True),
    )


# arch_class -> how its options are read; neural_networks.py has one class of each name
ARCHITECTURES: Dict[str, Callable[[Options], ArchSpec]] = {
    "TraditionalSNN": lambda options: spiking_spec("traditional", options),
    "ImprovedSNNv1": lambda options: spiking_spec("v1", options),
    "ImprovedSNNv2": lambda options: spiking_spec("v2", options),
    "UniLSTM": lambda options: stack_spec("lstm", options),
    "UniGRU": lambda options: stack_spec("gru", options),
    "MLP": lambda options: stack_spec("dnn", options),
}


def check_arch_class(name: str, section: str) -> None:
    """``arch_class`` names one of :data:`ARCHITECTURES`; upstream's own classes are refused
    with what to use instead."""
    if name in ARCHITECTURES:
        return
    if name in UPSTREAM_CLASSES:
        raise ConfigError(f"arch_class = {name} is upstream's: {UPSTREAM_CLASSES[name]}",
                          section=section, key="arch_class")
    raise ConfigError(f"unknown architecture class {name!r} (known: {', '.join(ARCHITECTURES)})",
                      section=section, key="arch_class")
