"""Whole-cfg checks that turn silent model changes and late tracebacks into one-line errors.

Each function raises :class:`~pytorch_kaldi_snn.errors.ConfigError` naming the section and key
(``load_experiment`` adds the file). They run before any work starts.
"""
from __future__ import annotations

import math
import re
import stat
from pathlib import Path
from typing import Iterable, Sequence

from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.io.tables import NotUtf8, decode_utf8


def check_cfg_file(path: Path) -> None:
    """The cfg path names a readable regular file (not a directory, FIFO or device)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"cfg file {path} does not exist", file=str(path)) from None
    except OSError as err:
        raise ConfigError(f"cannot read cfg file ({err.strerror})", file=str(path)) from None
    if stat.S_ISDIR(mode):
        raise ConfigError("is a directory, not a cfg file", file=str(path))
    if not stat.S_ISREG(mode):
        raise ConfigError("is not a regular file (a FIFO, socket or device?), not a cfg file",
                          file=str(path))


def read_cfg_text(path: Path) -> str:
    """The cfg as UTF-8 text; another encoding names the first bad byte and its line."""
    try:
        return decode_utf8(path.read_bytes())
    except NotUtf8 as err:
        raise ConfigError(f"{err}; save the cfg as UTF-8", file=str(path)) from None


def check_unique(names: Sequence[str], sections: Sequence[str], key: str, what: str) -> None:
    """No two sections define the same ``key`` (e.g. two architectures with one arch_name)."""
    first = {}
    for name, section in zip(names, sections):
        if name in first:
            raise ConfigError(f"{what} {name!r} is already defined in [{first[name]}]",
                              section=section, key=key)
        first[name] = section


def check_defined_once(outputs: Iterable[str], section: str) -> None:
    """Each model-language output is assigned once (a second loss_final would replace the first)."""
    seen = set()
    for out in outputs:
        if out in seen:
            raise ConfigError(f"{out} is defined twice", section=section, key="model")
        seen.add(out)


def check_n_out_names(options: dict, section: str, labels: Iterable[str], prefix: str) -> None:
    """Every ``N_out_<lab_name>`` token names a label set of the training dataset."""
    known = sorted(labels)
    for key, value in options.items():
        for name in re.findall(prefix + r"(\w+)", value):
            if name not in known:
                raise ConfigError(f"{key} = {value}: {prefix}{name} names no label set "
                                  f"(defined: {', '.join(known)})", section=section, key=key)


def check_learning_rate(lr: float, section: str) -> None:
    """arch_lr is finite and positive (0 trains nothing, inf diverges at the first step)."""
    if not (math.isfinite(lr) and lr > 0.0):
        raise ConfigError(f"arch_lr = {lr} must be a finite number above 0", section=section,
                          key="arch_lr")
