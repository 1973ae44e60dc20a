"""Typed options of a spiking layer: one frozen dataclass per neuron family, defaults and checks.

Every option, its default, its range or choices and the checks across options are stated here
once. The layers (:mod:`pytorch_kaldi_snn.layers.spiking`) build an options object from their
keyword arguments; the cfg reader (:mod:`pytorch_kaldi_snn.config.architectures`) only
translates cfg strings into it, reading ranges and defaults from :meth:`NeuronOptions.bounds`,
:meth:`NeuronOptions.choices` and :meth:`NeuronOptions.default`. A bad value raises
:class:`OptionError`, which each caller words with its own names for the options.

Defaults: 6-bit outputs with threshold k = 4 (γ = 4b/64 = b/16, the paper's Table 1 setting),
straight-through surrogate, α = 1 (the membrane integrates the residual error without leak, as
in the authors' code; the traditional layer uses α = β = 0.5, see :class:`LIFOptions`), decays
fixed (the paper's parameter counts exclude them), batch norm on, no dropout, orthogonal
recurrent init (v2), EMA momentum 0.1, b_init = 1, fused time loops.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from pytorch_kaldi_snn.neurons.levels import MAX_BITS, MIN_BITS, top_level
from pytorch_kaldi_snn.neurons.surrogate import SURROGATE_NAMES

IMPLS = ("loop", "fused")  # the step-by-step reference, or the fused kernels (kernels.fused)
READINGS = ("paper", "authors")  # Eq. 22 as the paper states it, or the authors' code
MAX_DROPOUT = 0.99


class OptionError(ValueError):
    """A bad option value. ``template`` names options as ``{name}``; :meth:`render` fills each
    with the caller's wording of that option and its value."""

    def __init__(self, option: str, template: str, values: Mapping[str, Any]) -> None:
        self.option, self.template, self.values = option, template, dict(values)
        super().__init__(self.render(lambda name, value: f"{name} {value!r}"))

    def render(self, show: Callable[[str, Any], str]) -> str:
        """The message with every ``{name}`` replaced by ``show(name, value)``."""
        return self.template.format_map({name: show(name, value)
                                         for name, value in self.values.items()})


def _option(default: Any, lo: Optional[float] = None, hi: Optional[float] = None,
            choices: Optional[Sequence[str]] = None) -> Any:
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices})


@dataclass(frozen=True)
class NeuronOptions:
    """Options every spiking layer has (see the module docstring for the defaults' reasons)."""

    n_bits: int = _option(6, MIN_BITS, MAX_BITS)
    threshold: int = _option(4, 0)
    surrogate: str = _option("ste", choices=SURROGATE_NAMES)
    alpha: float = _option(1.0, 0.0, 1.0)
    learn_decay: bool = _option(False)
    dropout: float = _option(0.0, 0.0, MAX_DROPOUT)
    use_batchnorm: bool = _option(True)
    bias: bool = _option(True)
    ema_momentum: float = _option(0.1, 0.0, 1.0)
    b_init: float = _option(1.0, 1e-6)
    impl: str = _option("fused", choices=IMPLS)
    reading: str = _option("paper", choices=READINGS)

    # defaults that differ under reading ``authors`` (their code's values)
    AUTHORS_DEFAULTS = {"alpha": 1.0}

    def __post_init__(self) -> None:
        for spec in fields(self):
            self._check_field(spec.name, getattr(self, spec.name))
        if self.threshold > top_level(self.n_bits):
            raise OptionError("threshold", f"{{threshold}} is above 2^N - 1 = "
                              f"{top_level(self.n_bits)} for {{n_bits}}",
                              {"threshold": self.threshold, "n_bits": self.n_bits})
        if self.ema_momentum == 0.0:
            raise OptionError("ema_momentum", "{ema_momentum} would never update b; use a value "
                              "in (0, 1]", {"ema_momentum": self.ema_momentum})
        if self.reading == "authors" and self.impl != "loop":
            raise OptionError("reading", "{reading} runs on the step path only; set {impl} "
                              "(the fused kernels implement the paper reading)",
                              {"reading": self.reading, "impl": "loop"})

    def _check_field(self, name: str, value: Any) -> None:
        lo, hi = self.bounds(name)
        if lo is not None and value < lo:
            raise OptionError(name, f"{{{name}}} is below the minimum {lo}", {name: value})
        if hi is not None and value > hi:
            raise OptionError(name, f"{{{name}}} is above the maximum {hi}", {name: value})
        choices = self.choices(name)
        if choices is not None and value not in choices:
            raise OptionError(name, f"{{{name}}} is not one of {', '.join(choices)}",
                              {name: value})

    @classmethod
    def _spec(cls, name: str) -> Mapping[str, Any]:
        return next(spec.metadata for spec in fields(cls) if spec.name == name)

    @classmethod
    def bounds(cls, name: str) -> Tuple[Optional[float], Optional[float]]:
        """(minimum, maximum) of option ``name``; None where unbounded."""
        spec = cls._spec(name)
        return spec["lo"], spec["hi"]

    @classmethod
    def choices(cls, name: str) -> Optional[Sequence[str]]:
        """The valid values of a string option, or None."""
        return cls._spec(name)["choices"]

    @classmethod
    def default(cls, name: str, reading: str = "paper") -> Any:
        """Default of option ``name`` for layers of ``reading``."""
        if reading == "authors" and name in cls.AUTHORS_DEFAULTS:
            return cls.AUTHORS_DEFAULTS[name]
        return next(spec.default for spec in fields(cls) if spec.name == name)

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        """Every option of this family, in declaration order."""
        return tuple(spec.name for spec in fields(cls))

    def as_kwargs(self) -> Dict[str, Any]:
        """The options as keyword arguments of the layer class."""
        return {name: getattr(self, name) for name in self.names()}


@dataclass(frozen=True)
class LIFOptions(NeuronOptions):
    """Traditional layer: leaky membrane and current by default. I is signed here (unlike
    v1/v2, where I >= 0), and with α = 1 a stretch of negative current drives V far below zero,
    silencing the neuron for the rest of the sequence; α = β = 0.5 trains (docs/model.md). The
    authors' traditional layer has α = 1 and learns β from 1."""

    alpha: float = _option(0.5, 0.0, 1.0)
    beta: float = _option(0.5, 0.0, 1.0)

    AUTHORS_DEFAULTS = {"alpha": 1.0, "beta": 1.0}


@dataclass(frozen=True)
class GatedOptions(NeuronOptions):
    """v1/v2: ``forget_bias`` shifts the forget gate's pre-activation (0: F starts near 1/2)."""

    forget_bias: float = _option(0.0)


@dataclass(frozen=True)
class V2Options(GatedOptions):
    """v2: ``orthinit`` initialises [W_fr | W_cr] orthogonally (else Glorot)."""

    orthinit: bool = _option(True)
