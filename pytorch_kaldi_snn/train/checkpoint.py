"""Atomic files: a crash (Ctrl-C, kill -9) leaves either the old or the new file, never half."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, fsync it, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
