"""Typed getters for cfg options whose values are strings (configparser sections, PyTorch-Kaldi).

Every getter takes any ``Mapping[str, str]`` (a configparser ``SectionProxy`` or a plain dict),
converts one value and checks its range or choices. A bad or missing value raises
:class:`~pytorch_kaldi_snn.errors.ConfigError` naming the section, the key and the value, e.g.
``[architecture1] snn_n_bits: snn_n_bits = 0 is below the minimum 1``.

``default`` is :data:`REQUIRED` unless given; a missing key with a default returns the default
unchanged (it is not parsed or range-checked, so it may be ``None``); a section with a
``record_default(key, value)`` method is told which defaults it handed out.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, TypeVar

from pytorch_kaldi_snn.errors import ConfigError

T = TypeVar("T")


class _Required:
    """Marker type for "no default: the key must be present"."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def section_name(section: Mapping[str, str]) -> Optional[str]:
    """Name of a configparser section (``SectionProxy.name``), or None for a plain mapping."""
    name = getattr(section, "name", None)
    return name if isinstance(name, str) else None


def _default(section: Mapping[str, str], key: str, default: Any) -> Any:
    """Return ``default`` for a missing key, telling the section (if it records defaults:
    the cfg loader writes them into ``resolved.cfg``)."""
    record = getattr(section, "record_default", None)
    if record is not None:
        record(key, default)
    return default


def _error(section: Mapping[str, str], key: str, message: str) -> ConfigError:
    return ConfigError(message, section=section_name(section), key=key)


def _raw(section: Mapping[str, str], key: str) -> str:
    """The stripped string value of ``key``; raises if it is missing."""
    if key not in section:
        raise _error(section, key, f"missing option {key}")
    return str(section[key]).strip()


def _convert(section: Mapping[str, str], key: str, text: str, kind: str, fn: Callable[[str], T]) -> T:
    try:
        return fn(text)
    except ValueError:
        whole = _raw(section, key)
        message = (f"{key} = {text!r} is not {kind}" if whole == text
                   else f"{text!r} is not {kind} (in {key} = {whole})")
        raise _error(section, key, message) from None


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


def _check_range(section: Mapping[str, str], key: str, text: str, value: float,
                 lo: Optional[float], hi: Optional[float]) -> None:
    if lo is not None and value < lo:
        raise _error(section, key, f"{key} = {text} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise _error(section, key, f"{key} = {text} is above the maximum {hi}")


def _check_choice(section: Mapping[str, str], key: str, value: str,
                  choices: Optional[Sequence[str]]) -> None:
    if choices is not None and value not in choices:
        raise _error(section, key, f"{key} = {value!r} is not one of {', '.join(choices)}")


def _split(section: Mapping[str, str], key: str) -> List[str]:
    """Comma-separated items of ``key``; empty items (``550,,550``) are errors."""
    text = _raw(section, key)
    items = [item.strip() for item in text.split(",")]
    if any(item == "" for item in items):
        raise _error(section, key, f"{key} = {text!r} has an empty item")
    return items


def get_str(section: Mapping[str, str], key: str, *, choices: Optional[Sequence[str]] = None,
            default: Any = REQUIRED) -> str:
    """String option, optionally restricted to ``choices``."""
    if key not in section and default is not REQUIRED:
        return _default(section, key, default)
    value = _raw(section, key)
    _check_choice(section, key, value, choices)
    return value


def get_int(section: Mapping[str, str], key: str, *, min: Optional[int] = None,
            max: Optional[int] = None, default: Any = REQUIRED) -> int:
    """Integer option in ``[min, max]`` (either bound optional)."""
    if key not in section and default is not REQUIRED:
        return _default(section, key, default)
    text = _raw(section, key)
    value = _convert(section, key, text, "an integer", int)
    _check_range(section, key, text, value, min, max)
    return value


def get_float(section: Mapping[str, str], key: str, *, min: Optional[float] = None,
              max: Optional[float] = None, default: Any = REQUIRED) -> float:
    """Float option in ``[min, max]`` (either bound optional)."""
    if key not in section and default is not REQUIRED:
        return _default(section, key, default)
    text = _raw(section, key)
    value = _convert(section, key, text, "a number", float)
    if value != value:  # NaN passes every comparison, so reject it explicitly
        raise _error(section, key, f"{key} = {text} is not a number")
    _check_range(section, key, text, value, min, max)
    return value


def get_bool(section: Mapping[str, str], key: str, *, default: Any = REQUIRED) -> bool:
    """Boolean option: True/False/true/false/1/0/yes/no/on/off."""
    if key not in section and default is not REQUIRED:
        return _default(section, key, default)
    text = _raw(section, key)
    return _convert(section, key, text, "a boolean (True/False)", _parse_bool)


def get_int_list(section: Mapping[str, str], key: str, *, min: Optional[int] = None,
                 max: Optional[int] = None, default: Any = REQUIRED) -> List[int]:
    """Comma-separated integers, each in ``[min, max]``."""
    if key not in section and default is not REQUIRED:
        return _default(section, key, default)
    values = []
    for text in _split(section, key):
        value = _convert(section, key, text, "an integer", int)
        _check_range(section, key, text, value, min, max)
        values.append(value)
    return values


def get_float_list(section: Mapping[str, str], key: str, *, min: Optional[float] = None,
                   max: Optional[float] = None, default: Any = REQUIRED) -> List[float]:
    """Comma-separated floats, each in ``[min, max]``."""
    if key not in section and default is not REQUIRED:
        return _default(section, key, default)
    values = []
    for text in _split(section, key):
        value = _convert(section, key, text, "a number", float)
        if value != value:
            raise _error(section, key, f"{key} = {text} is not a number")
        _check_range(section, key, text, value, min, max)
        values.append(value)
    return values


def get_bool_list(section: Mapping[str, str], key: str, *, default: Any = REQUIRED) -> List[bool]:
    """Comma-separated booleans (PyTorch-Kaldi writes per-layer flags such as ``True,True``)."""
    if key not in section and default is not REQUIRED:
        return _default(section, key, default)
    return [_convert(section, key, text, "a boolean (True/False)", _parse_bool)
            for text in _split(section, key)]


def get_str_list(section: Mapping[str, str], key: str, *, choices: Optional[Sequence[str]] = None,
                 default: Any = REQUIRED) -> List[str]:
    """Comma-separated strings, each optionally restricted to ``choices``."""
    if key not in section and default is not REQUIRED:
        return _default(section, key, default)
    values = _split(section, key)
    for value in values:
        _check_choice(section, key, value, choices)
    return values


def per_layer(values: Sequence[T], n_layers: int, section: Mapping[str, str], key: str) -> List[T]:
    """One value per layer: a single value is broadcast, otherwise the length must be ``n_layers``."""
    if len(values) == 1:
        return [values[0]] * n_layers
    if len(values) != n_layers:
        shown = ",".join(str(v) for v in values)
        raise _error(section, key,
                     f"{key} = {shown} has {len(values)} values but there are {n_layers} layers")
    return list(values)


class Section(Mapping[str, str]):
    """Read-only cfg section: a name (for error messages) and string options."""

    def __init__(self, name: str, items: Mapping[str, str],
                 defaults: Optional[Dict[str, object]] = None) -> None:
        self.name = name
        self._items = dict(items)
        self.defaults = {} if defaults is None else defaults  # shared with resolved.Recorder

    def record_default(self, key: str, value: object) -> None:
        """Called by the option getters for a missing key (written into resolved.cfg)."""
        self.defaults.setdefault(key, value)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def replaced(self, values: Mapping[str, str]) -> "Section":
        """A copy with some values replaced (used to substitute ``N_out_<lab>``)."""
        return Section(self.name, {**self._items, **values}, self.defaults)
