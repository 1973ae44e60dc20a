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
# Temporaries are ".<target name>.<8 random characters>.pks-partial": the suffix is this
# project's alone, so that cleaning up after a kill -9 never matches a file of someone else's.
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".pks-partial"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.pks-partial$")


class WriteFailed(OSError):
    """Writing ``filename`` failed (disk full, quota, I/O error); the old file, if any, is kept.

    Raised instead of the OSError of the temporary, whose name means nothing to the user.
    """

    def __str__(self) -> str:
        return (f"{self.filename}: could not be written ({self.strerror}); the file as it was "
                "before is kept")


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
            fd, temp = tempfile.mkstemp(dir=Path(path).parent, prefix=f"{_TEMP_PREFIX}{Path(path).name}.",
                                        suffix=_TEMP_SUFFIX)
            os.close(fd)
            temps.append(temp)
        try:
            yield temps
            for temp, path in zip(temps, paths):
                os.chmod(temp, mode)
                with open(temp, "rb") as handle:  # on disk before the rename: a crash keeps old or new
                    os.fsync(handle.fileno())
                os.replace(temp, path)
        except OSError as err:
            target = _target_of(err, temps, paths)
            if target is None:
                raise
            raise WriteFailed(err.errno, err.strerror, target) from None
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.remove(temp)


def _target_of(err: OSError, temps: list[str], paths: tuple[PathLike, ...]) -> str | None:
    """The target whose write failed: the one of the temporary the error names, or the only
    target when the error names no file (a failed write through a handle); None when the
    error is about another file (an input read while writing)."""
    if err.filename in temps:
        return str(paths[temps.index(err.filename)])
    if err.filename is None and len(paths) == 1:
        return str(paths[0])
    return None


def atomic_write(path: PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)``, then rename it over ``path`` (parent folders created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(path) as (temp,):
        write(Path(temp))


def remove_stale_temps(folder: PathLike) -> list[Path]:
    """Remove the temporaries that writes killed half-way (kill -9) left under ``folder``.

    Only call this on a folder of the project's own (io/ownership.py) while no other process
    writes there (the out_folder lock is held). Symbolic links are neither followed nor removed.
    """
    stale = []
    for root, _, files in os.walk(folder):  # os.walk does not follow links to folders
        stale += [Path(root, name) for name in files if _TEMP_NAME.match(name)
                  and not os.path.islink(os.path.join(root, name))]
    for path in stale:
        path.unlink()
    return stale
