"""Checkpoints and JSON files, written atomically: a crash (Ctrl-C, kill -9) leaves the old or the new file."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from pytorch_kaldi_snn.io.atomic import atomic_write


def save_torch(path: Path, state: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_torch(path: Path) -> Optional[Any]:
    """The saved state, or None when there is none yet."""
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def save_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def load_json(path: Path) -> Optional[Any]:
    return json.loads(path.read_text()) if path.exists() else None


# Sections whose options decide what a checkpoint's weights are; [exp] seed too (data order).
_TRAINING_SECTIONS = re.compile(r"^(architecture\d+|model|batches)$")


_SECTION_LINE = re.compile(r"^\[(\w+)\]$")
_OPTION_LINE = re.compile(r"^(\w+) = (.*)$")


def _options(cfg_text: str) -> Dict[Tuple[str, str], str]:
    """``(section, key) -> value`` of an ``Experiment.cfg_text``.

    That text writes ``key = value`` lines and leaves the continuation lines of multi-line
    values (``fea``, ``lab``, ``model``) unindented, so configparser cannot read it back;
    such lines (``name=value`` or operations, no spaced ``=``) extend the previous value.
    """
    options: Dict[Tuple[str, str], str] = {}
    section, key = "", None
    for line in cfg_text.splitlines():
        header, option = _SECTION_LINE.match(line), _OPTION_LINE.match(line)
        if header:
            section, key = header.group(1), None
        elif option:
            key = option.group(1)
            options[(section, key)] = option.group(2)
        elif key is not None:
            options[(section, key)] += "\n" + line
    return options


def _training_options(cfg_text: str) -> Dict[Tuple[str, str], str]:
    return {(s, k): v for (s, k), v in _options(cfg_text).items()
            if _TRAINING_SECTIONS.match(s) or (s, k) == ("exp", "seed")}


def training_cfg_difference(saved_cfg: str, cfg: str) -> Optional[str]:
    """``[section] key: checkpoint A, cfg B`` for the first training option that differs."""
    saved, current = _training_options(saved_cfg), _training_options(cfg)
    for section, key in sorted(set(saved) | set(current)):
        a, b = saved.get((section, key), "(unset)"), current.get((section, key), "(unset)")
        if a != b:
            return f"[{section}] {key}: checkpoint {a!r}, cfg {b!r}"
    return None
