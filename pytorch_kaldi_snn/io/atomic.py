"""Atomic file writes: write next to the target, then rename over it.

A reader (or a run killed half-way) never sees a partial file, and nothing already written is
lost when a write fails.
"""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Union

PathLike = Union[str, Path]
# Temporaries are ".<target name>.<8 random characters>" (tempfile.mkstemp's suffix).
_TEMP_PREFIX = "."
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}$")


def _umask() -> int:
    # os.umask can only be read by setting it; put it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_outputs(*paths: PathLike) -> Iterator[list[str]]:
    """Yield temporary paths in each target's folder; move them over the targets on success.

    On an exception the temporaries are removed and the targets are left untouched. The files
    get the permissions a plain ``open(path, "w")`` would give (mkstemp alone creates 0600).
    """
    temps: list[str] = []
    mode = 0o666 & ~_umask()
    try:
        for path in paths:
            fd, temp = tempfile.mkstemp(dir=Path(path).parent, prefix=f"{_TEMP_PREFIX}{Path(path).name}.")
            os.close(fd)
            temps.append(temp)
        yield temps
        for temp, path in zip(temps, paths):
            os.chmod(temp, mode)
            with open(temp, "rb") as handle:  # on disk before the rename, so a crash keeps old or new
                os.fsync(handle.fileno())
            os.replace(temp, path)
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.remove(temp)


def atomic_write(path: PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)``, then rename it over ``path`` (parent folders created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(path) as (temp,):
        write(Path(temp))


def remove_stale_temps(folder: PathLike) -> list[Path]:
    """Remove the temporaries that writes killed half-way (kill -9) left under ``folder``.

    Only call this while no other process writes there (the out_folder lock is held).
    """
    stale = [p for p in Path(folder).rglob(f"{_TEMP_PREFIX}*")
             if p.is_file() and _TEMP_NAME.match(p.name)]
    for path in stale:
        path.unlink()
    return stale
