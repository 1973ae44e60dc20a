"""Run a grid of experiments (what the study and the sweep share): each run is one
``run_experiment`` of a cfg with its overrides, announced as it is submitted, in this process
(``jobs`` 1) or ``jobs`` processes sharing the cores, the costliest first; the outcomes come back
in the order given."""
from __future__ import annotations

import os
from concurrent.futures import Executor, Future
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from pytorch_kaldi_snn.errors import UserInputError
from pytorch_kaldi_snn.io.commands import worker_pool
from pytorch_kaldi_snn.pipeline.runner import run_experiment
from pytorch_kaldi_snn.threads import available_cpus, user_threads

Outcome = Tuple[Optional[Dict], Optional[str]]  # a run's results, or its one-line error


@dataclass(frozen=True)
class GridRun:
    """One run of a grid: the line announcing it, its cfg and overrides, the file its output
    goes to (None: this console), and its cost (the costliest are submitted first)."""

    announce: str
    cfg: Path
    overrides: Tuple[str, ...]
    console: Optional[Path] = None
    cost: float = 0.0


def run_point(cfg: Path, overrides: Sequence[str], console: Optional[Path],
              keep_going: bool) -> Outcome:
    """Run one experiment (``console``: where its output goes). ``keep_going``: a one-line
    error of this run (divergence, bad data) is its outcome, so that the grid goes on."""
    with ExitStack() as stack:
        if console is not None:
            console.parent.mkdir(parents=True, exist_ok=True)
            stream = stack.enter_context(open(console, "a", buffering=1))
            stack.enter_context(redirect_stdout(stream))
            stack.enter_context(redirect_stderr(stream))
        try:
            return run_experiment(cfg, overrides), None
        except UserInputError as err:
            if not keep_going:
                raise
            return None, " ".join(str(err).split())


def _worker_threads(threads: int) -> None:
    """A run process's thread count (``OMP_NUM_THREADS``, which the runner honours)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


class InProcess(Executor):
    """One run at a time in this process, its output on this console (``jobs`` 1)."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:  # type: ignore[override]
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def run_executor(jobs: int, command: str) -> Executor:
    """``jobs`` 1: this process; more: that many processes sharing the cores (unless the
    user fixed ``OMP_NUM_THREADS``, which every process then uses)."""
    if jobs == 1:
        return InProcess()
    threads = user_threads() or max(1, available_cpus() // jobs)
    print(f"{command}: {jobs} runs at once, {threads} thread(s) each", flush=True)
    return worker_pool(jobs, _worker_threads, (threads,))


def run_grid(runs: Sequence[GridRun], jobs: int, command: str, keep_going: bool,
             on_done: Optional[Callable[[int, Future], None]] = None) -> List[Outcome]:
    """Every run (``jobs`` at a time, the costliest first); ``on_done(index, future)`` as each
    ends. An unexpected error (or, without ``keep_going``, any) starts no further run."""
    with run_executor(jobs, command) as pool:
        futures: Dict[int, Future] = {}
        for index in sorted(range(len(runs)), key=lambda i: runs[i].cost, reverse=True):
            run = runs[index]
            print(run.announce, flush=True)
            futures[index] = pool.submit(run_point, run.cfg, run.overrides, run.console,
                                         keep_going)
            if on_done is not None:
                futures[index].add_done_callback(partial(on_done, index))
        try:
            return [futures[index].result() for index in range(len(runs))]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
