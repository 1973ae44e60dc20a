"""The commands the project runs: how a path becomes one of their arguments, and children that
end with the process that started them (Kaldi jobs and shell pipes through :func:`start`,
Python worker processes through :func:`worker_pool`).

A Kaldi job or shell pipe started with :func:`start` (or :func:`run`) runs under a small ``sh``
in a process group of its own. On Linux the kernel sends that ``sh`` SIGTERM when the thread
that started it ends (``prctl(PR_SET_PDEATHSIG)``), a runner killed with SIGKILL included, and
the ``sh`` then kills its whole group with SIGKILL: the command, every stage of its pipeline and
their children (latgen's ``gzip``). Before, a runner killed with SIGKILL left its Kaldi jobs
running. So start and wait for a child in the same thread. Elsewhere (macOS) there is no parent
death signal: the group is still ended on an exception in this process (:func:`end_group`),
not on SIGKILL.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Optional, Sequence, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]
# ``sh -c GUARD sh ARGV...``: the command runs in the background, so that the trap is taken at
# once (a shell runs a trap only after its foreground command ends) and ``wait`` gives its exit
# status; ``<&0`` keeps the caller's stdin, which a background command would lose to /dev/null.
_GUARD = 'trap "kill -KILL 0" TERM; "$@" <&0 & wait $!'
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_GRACE_S = 5.0  # from SIGTERM to SIGKILL for a group that outlives its guard


def _prctl() -> Optional[Callable[..., int]]:
    """libc's ``prctl``, looked up here and not in the forked child, where loading a library
    could deadlock on a lock another thread held at the fork."""
    if not sys.platform.startswith("linux"):
        return None  # PR_SET_PDEATHSIG is Linux's; elsewhere children are ended on exceptions only
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with(parent: int, sig: int) -> None:
    """In a child: ``sig`` when the thread of ``parent`` that started it ends, and exit at once
    if the parent died before the request was made (the kernel would not signal then)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)


def _guard_start(parent: int) -> None:
    """In the forked guard, before exec: a process group of its own (``setpgid`` here, since
    Popen's ``process_group`` needs Python 3.11) and SIGTERM, which its trap turns into the
    group's SIGKILL, at the parent's death."""
    os.setpgid(0, 0)
    _die_with(parent, signal.SIGTERM)


def start(argv: Sequence[str], **popen: Any) -> subprocess.Popen:
    """``subprocess.Popen(argv, **popen)`` for a child that must not outlive this process (see
    the module's doc); its process group id is the returned process's pid."""
    parent = os.getpid()
    return subprocess.Popen(["/bin/sh", "-c", _GUARD, "sh", *argv],
                            preexec_fn=lambda: _guard_start(parent), **popen)


def end_group(process: subprocess.Popen) -> None:
    """End the group of a child from :func:`start` if it still runs (SIGTERM: its guard kills
    the group; SIGKILL after a grace period) and wait until no process of it is left. (Linux
    reuses no pid while a group of that id has a process, so the group outlives a reaped guard
    safely.)"""
    if process.poll() is not None:
        return  # ended, and its command with it
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_S
    while _signal_group(process.pid, 0) and time.monotonic() < deadline:
        process.poll()  # reaps the guard; the processes of its group are reaped by init
        time.sleep(0.01)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to process group ``group``; whether any process of it was there."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def run(argv: Sequence[str], check: bool = False, capture_output: bool = False,
        **popen: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, ...)`` (without ``input`` and ``timeout``) of a child from
    :func:`start`; on any exception here (Ctrl-C, SIGTERM as Ctrl-C) its group is ended."""
    if capture_output:
        popen.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with start(argv, **popen) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            end_group(process)
            raise
    done = subprocess.CompletedProcess(list(argv), process.returncode, stdout, stderr)
    if check:
        done.check_returncode()
    return done


def path_argument(path: PathLike) -> str:
    """``path`` as an argument of a command, never an option: a relative path that starts with
    ``-`` gets ``./`` in front. Kaldi's option parser takes any ``--x`` before the first
    positional argument as an option (a ``lab_folder`` named ``--ali`` made ``ali-to-pdf``
    fail with its usage) and reads ``--config=`` anywhere on the command line; other programs
    take ``-x``. The path still names the same file."""
    text = os.fspath(path)
    return f"./{text}" if text.startswith("-") else text


def worker_pool(workers: int, initializer: Optional[Callable[..., None]] = None,
                initargs: Tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh interpreters (``spawn``: no fork of a process holding torch's
    threads) that end with this process: on Linux each asks the kernel for SIGKILL when the
    thread that started it ends (a SIGKILLed runner included), before ``initializer``. Create
    and use the pool in one thread. Without it, a worker in the middle of a task (a decoding
    job, a study's run) went on after its parent was killed."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_start,
                               initargs=(os.getpid(), initializer, initargs))


def _worker_start(parent: int, initializer: Optional[Callable[..., None]],
                  initargs: Tuple[Any, ...]) -> None:
    _die_with(parent, signal.SIGKILL)
    if initializer is not None:
        initializer(*initargs)
