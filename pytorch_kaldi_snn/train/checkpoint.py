"""Checkpoints and JSON files, written atomically: a crash (Ctrl-C, kill -9) leaves the old or the new file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

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
