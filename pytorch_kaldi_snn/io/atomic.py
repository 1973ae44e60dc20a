"""Atomic file writes: write next to the target, then rename over it.

A reader (or a run killed half-way) never sees a partial file, and nothing already written is
lost when a write fails.
"""
from __future__ import annotations

import errno
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

from pytorch_kaldi_snn.errors import OutputError

PathLike = Union[str, Path]
# Temporaries are ".<target name>.<8 random characters>.pks-partial": the suffix is this
# project's alone, so that cleaning up after a kill -9 never matches a file of someone else's.
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".pks-partial"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.pks-partial$")
# Failures that only writing gives: whatever file the block was writing, it was a target's temporary.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


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
    A failed write (disk full, quota, a read-only or unwritable folder) raises
    :class:`~pytorch_kaldi_snn.errors.OutputError` naming the target, not its temporary.
    """
    temps: list[str] = []
    mode = 0o666 & ~_umask()
    try:
        for path in paths:
            try:
                fd, temp = tempfile.mkstemp(dir=Path(path).parent, prefix=f"{_TEMP_PREFIX}{Path(path).name}.",
                                            suffix=_TEMP_SUFFIX)
            except OSError as err:
                raise _not_written(err, path) from None
            os.close(fd)
            temps.append(temp)
        try:
            yield temps
            for temp, path in zip(temps, paths):
                os.chmod(temp, mode)
                with open(temp, "rb") as handle:  # on disk before the rename, so a crash keeps old or new
                    os.fsync(handle.fileno())
                os.replace(temp, path)
        except OSError as err:
            target = _target_of(err, temps, paths)
            if target is None:
                raise  # a file the block reads: its own error names it
            raise _not_written(err, target) from None
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.remove(temp)


def _target_of(err: OSError, temps: Sequence[str], paths: Sequence[PathLike]) -> Optional[PathLike]:
    """The target whose write failed with ``err``, or None when ``err`` is not about writing one."""
    if err.filename in temps:
        return paths[temps.index(err.filename)]
    # write() errors name no file; with several targets the first (an ark before its scp) is named
    return paths[0] if err.filename is None and err.errno in _WRITE_ERRNOS else None


def _not_written(err: OSError, target: PathLike) -> OutputError:
    return OutputError(f"cannot write: {err.strerror or err}; nothing was replaced (free space or fix the "
                       "folder, then rerun)", file=os.fspath(target))


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
