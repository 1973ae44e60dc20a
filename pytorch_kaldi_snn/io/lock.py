"""One run per out_folder: an exclusive lock held for the whole run.

The lock is an ``fcntl.flock`` on ``<out_folder>/.lock``, so the kernel drops it when its
holder dies (kill -9 included): a stale lock of a dead process is simply taken over. The file
says who holds it (pid, host, start time), which the refused second run prints.

A flock belongs to the open file, which ``fork`` shares: a forked child (a DataLoader data
worker) would keep the lock of a killed run until it noticed its parent had died, seconds later
under load, and a resume started at once was refused. A forked child therefore closes its copies
of the lock files at once; the parent's lock is untouched (it holds its own descriptor).
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Set

LOCK_NAME = ".lock"
_HELD: Set[int] = set()  # descriptors of the locks this process holds


def _close_inherited_locks() -> None:
    """In a forked child: the locks are the parent's, not the child's to keep alive."""
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class FolderInUse(Exception):
    """Another live process holds the lock; ``holder`` is what its lock file says."""

    def __init__(self, folder: Path, holder: str) -> None:
        self.folder, self.holder = folder, holder
        super().__init__(f"{folder} is in use by another run ({holder or 'holder unknown'})")


def _describe_self() -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return f"pid {os.getpid()} on {socket.gethostname()} since {started}"


@contextmanager
def folder_lock(folder: Path, log: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """Hold the lock of ``folder`` (created if missing) or raise :class:`FolderInUse`."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    _HELD.add(fd)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(folder, os.pread(fd, 4096, 0).decode(errors="replace").strip()) from None
        previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        if previous and log is not None:
            log(f"took over the lock of {folder} left by a run that ended without releasing "
                f"it ({previous})")
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_describe_self() + "\n").encode(), 0)
        try:
            yield
        finally:
            if fd in _HELD:  # not in a forked child, whose copy is closed
                os.ftruncate(fd, 0)  # an empty file: released cleanly
    finally:
        if fd in _HELD:
            _HELD.discard(fd)
            os.close(fd)  # closing drops the flock
