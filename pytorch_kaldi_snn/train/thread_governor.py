"""Pick torch's CPU thread count during training from the measured frames/s of its batches.

Why: on an idle machine two threads train a v2 stack about 1.7x faster than one, but when
another CPU-bound process holds one of the two cores, two threads meet at OpenMP barriers
several times per time step and wait for the descheduled partner, and one thread is faster
(docs/performance.md, "Throughput under contention"). Neither count is right for both cases and
the load changes during a run, so the governor keeps the count that measures fastest: every
``probe_every`` batches it times ``probe_batches`` batches at each other candidate count and
moves to one that is at least ``margin`` faster than the current count's recent rate. The
thread count changes the order of parallel sums, so results can differ in the last bits between
two runs whose governors chose differently, as between two machines.

It runs only where the runner chose the count itself; a count the user set (``OMP_NUM_THREADS``,
also the way to bit-identical reruns) is kept as it is
(:func:`pytorch_kaldi_snn.threads.user_threads`).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List

import torch

from pytorch_kaldi_snn.threads import user_threads

PROBE_EVERY, PROBE_BATCHES, MARGIN = 100, 3, 1.1


class ThreadGovernor:
    """Counts frames and seconds per thread count; call :meth:`timing` around every batch."""

    def __init__(self, max_threads: int, log: logging.Logger, probe_every: int = PROBE_EVERY,
                 probe_batches: int = PROBE_BATCHES, margin: float = MARGIN,
                 clock: Callable[[], float] = time.perf_counter,
                 set_threads: Callable[[int], None] = torch.set_num_threads,
                 fixed: bool = False) -> None:
        options = {max_threads} if fixed else {max_threads, max(1, max_threads // 2), 1}
        self.candidates: List[int] = sorted(options, reverse=True)
        self.current = max_threads
        self.log, self.clock, self.set_threads = log, clock, set_threads
        self.probe_every, self.probe_batches, self.margin = probe_every, probe_batches, margin
        self.batches = 0
        self.rates: Dict[int, List[float]] = {n: [] for n in self.candidates}
        self.plan: List[int] = []  # thread counts of the probe batches still to run

    @contextmanager
    def timing(self, frames: int) -> Iterator[None]:
        """Time one batch of ``frames`` frames at the count this batch runs with."""
        count = self.plan[0] if self.plan else self.current
        self.set_threads(count)
        start = self.clock()
        yield
        seconds = self.clock() - start
        if seconds > 0:
            self.rates[count] = (self.rates[count] + [frames / seconds])[-self.probe_batches:]
        if self.plan:
            self.plan.pop(0)
            if not self.plan:
                self._choose()
        self.batches += 1
        if len(self.candidates) > 1 and self.batches % self.probe_every == 0:
            self.plan = [n for n in self.candidates if n != self.current
                         for _ in range(self.probe_batches)]

    def _rate(self, count: int) -> float:
        rates = sorted(self.rates[count])
        return rates[len(rates) // 2] if rates else 0.0

    def _choose(self) -> None:
        best = max(self.candidates, key=self._rate)
        if best != self.current and self._rate(best) >= self.margin * self._rate(self.current):
            self.log.info(f"threads: {best} instead of {self.current} ({self._rate(best):.0f} vs "
                          f"{self._rate(self.current):.0f} frames/s measured)")
            self.current = best
        self.set_threads(self.current)


def for_device(device: torch.device, log: logging.Logger) -> ThreadGovernor:
    """A governor over torch's current count on the CPU; a fixed one (a single candidate) on a
    GPU or when the user set ``OMP_NUM_THREADS``."""
    count = torch.get_num_threads()
    if device.type != "cpu" or user_threads() is not None:
        return ThreadGovernor(count, log, fixed=True)
    return ThreadGovernor(count, log)
