"""Reading a cfg file's syntax and applying ``--set section.key=value`` overrides."""
from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Sequence

from pytorch_kaldi_snn.config import checks
from pytorch_kaldi_snn.errors import ConfigError


def read_cfg(path: Path, overrides: Sequence[str] = ()) -> configparser.ConfigParser:
    """Parse the cfg text (syntax only) and apply ``section.key=value`` overrides."""
    checks.check_cfg_file(path)
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(checks.read_cfg_text(path), source=str(path))
    except configparser.Error as err:
        message = " ".join(str(err).split())  # configparser errors span lines: keep one
        raise ConfigError(f"cannot parse cfg: {message}", file=str(path)) from None
    for override in overrides:
        _apply_override(parser, override, path)
    return parser


def _apply_override(parser: configparser.ConfigParser, override: str, path: Path) -> None:
    match = re.match(r"^([\w]+)\.(\w+)=(.*)$", override.strip(), flags=re.S)
    if not match:
        raise ConfigError(f"--set {override!r} is not of the form section.key=value",
                          file=str(path))
    section, key, value = match.groups()
    if not parser.has_section(section):
        raise ConfigError(f"--set {override!r}: no such section", file=str(path),
                          section=section)
    parser.set(section, key.lower(), value)
