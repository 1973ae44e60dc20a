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

from typing import Any, Dict, List, Mapping

from torch import Tensor, nn

from pytorch_kaldi_snn.config.options import (
    get_bool,
    get_bool_list,
    get_float,
    get_float_list,
    get_int_list,
    get_str,
    get_str_list,
    per_layer,
    section_name,
)
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.layers import baselines
from pytorch_kaldi_snn.layers.recurrence import RESET_MODES
from pytorch_kaldi_snn.layers.spiking import IMPLS, READINGS, spiking_stack
from pytorch_kaldi_snn.neurons.quantizer import MAX_BITS, MIN_BITS
from pytorch_kaldi_snn.neurons.surrogate import SURROGATE_NAMES

Options = Mapping[str, str]


def _layer_sizes(options: Options, key: str) -> List[int]:
    return get_int_list(options, key, min=1)


def _spiking_kwargs(options: Options, n_layers: int, gated: bool) -> Dict[str, Any]:
    """Typed, per-layer keyword arguments of :func:`spiking_stack` from ``snn_*`` options."""
    def layers(values: List[Any], key: str) -> List[Any]:
        return per_layer(values, n_layers, options, key)

    readings = layers(get_str_list(options, "snn_reading", choices=READINGS, default=["paper"]),
                      "snn_reading")
    authors = "authors" in readings
    n_bits = layers(get_int_list(options, "snn_n_bits", min=MIN_BITS, max=MAX_BITS, default=[6]),
                    "snn_n_bits")
    thresholds = layers(get_int_list(options, "snn_threshold", min=0, default=[4]), "snn_threshold")
    for bits, k in zip(n_bits, thresholds):
        if k > 2 ** bits - 1:
            raise ConfigError(f"snn_threshold = {k} is above 2^N - 1 = {2 ** bits - 1} for "
                              f"snn_n_bits = {bits}", section=section_name(options),
                              key="snn_threshold")
    momentum = get_float(options, "snn_ema_momentum", min=0.0, max=1.0, default=0.1)
    if momentum == 0.0:
        raise ConfigError("snn_ema_momentum = 0 would never update b; use a value in (0, 1]",
                          section=section_name(options), key="snn_ema_momentum")
    kwargs: Dict[str, Any] = dict(
        n_bits=n_bits,
        thresholds=thresholds,
        surrogates=layers(get_str_list(options, "snn_surrogate", choices=SURROGATE_NAMES,
                                       default=["ste"]), "snn_surrogate"),
        alphas=layers(get_float_list(options, "snn_alpha", min=0.0, max=1.0,
                                     default=[1.0] if gated or authors else [0.5]), "snn_alpha"),
        dropouts=layers(get_float_list(options, "snn_drop", min=0.0, max=0.99, default=[0.0]),
                        "snn_drop"),
        batchnorms=layers(get_bool_list(options, "snn_use_batchnorm", default=[True]),
                          "snn_use_batchnorm"),
        reset=get_str(options, "snn_reset", choices=RESET_MODES, default="output"),
        learn_decay=get_bool(options, "snn_learn_decay", default=False),
        ema_momentum=momentum,
        b_init=get_float(options, "snn_b_init", min=1e-6, default=1.0),
        impl=get_str(options, "snn_impl", choices=IMPLS, default="fused"),
        readings=readings,
    )
    if authors and kwargs["impl"] != "loop":
        raise ConfigError("snn_reading = authors runs on the step path only; set snn_impl = loop "
                          "(the fused kernels implement the paper reading)",
                          section=section_name(options), key="snn_reading")
    if gated:
        kwargs["forget_bias"] = get_float(options, "snn_forget_bias", default=0.0)
    return kwargs


class _SpikingArchitecture(nn.Module):
    """Shared adapter for the three spiking stacks (options ``snn_*``, see ``proto/*.proto``)."""

    variant = ""

    def __init__(self, options: Options, inp_dim: int) -> None:
        super().__init__()
        sizes = _layer_sizes(options, "snn_lay")
        kwargs = _spiking_kwargs(options, len(sizes), gated=self.variant != "traditional")
        if self.variant == "traditional":
            beta = [1.0] if "authors" in kwargs["readings"] else [0.5]  # theirs: learned, from 1
            kwargs["betas"] = per_layer(get_float_list(options, "snn_beta", min=0.0, max=1.0,
                                                       default=beta), len(sizes), options,
                                        "snn_beta")
        if self.variant == "v2":
            kwargs["orthinit"] = get_bool(options, "snn_orthinit", default=True)
        self.net = spiking_stack(self.variant, inp_dim, sizes, **kwargs)
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
