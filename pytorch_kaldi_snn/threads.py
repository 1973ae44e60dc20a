"""CPU threading of a run: OpenMP's wait policy and torch's thread count, set at the entry point.

Why: torch's CPU wheel runs its operators on GNU OpenMP (libgomp). By default a libgomp thread
that reaches a barrier spins for a while before it sleeps, and a spiking or GRU training pass has
several small parallel regions per time step. When another process shares the cores, a
descheduled thread holds up every barrier while its partner burns the CPU it needs, so throughput
falls far below a fair share (docs/performance.md, "Throughput under contention"). Passive
waiting gives the core back at once and costs little on an idle machine.

libgomp reads ``OMP_WAIT_POLICY`` once, when ``import torch`` loads it, so :func:`bootstrap`
must run before torch is imported: the runner's ``__main__`` calls it first. A value the user
set (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``OMP_NUM_THREADS``) is never replaced. This module
imports nothing heavy; :func:`apply_threads` imports torch only when called.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Dict, Mapping, MutableMapping, Optional

WAIT_POLICY = "PASSIVE"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
DECISION: Dict[str, str] = {}  # what bootstrap() decided in this process, for the run's log


def bootstrap(environ: Optional[MutableMapping[str, str]] = None) -> Dict[str, str]:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a wait policy or a spin count.

    Returns what was decided, as text for the run's log (``wait_policy``, ``source``); the
    source says ``ignored`` when torch was already imported, since libgomp then ignores it.
    """
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env:
        chosen = {"wait_policy": env.get("OMP_WAIT_POLICY", "unset"), "source": "set by the user"}
    else:
        env["OMP_WAIT_POLICY"] = WAIT_POLICY
        late = "torch" in sys.modules and environ is None
        chosen = {"wait_policy": WAIT_POLICY,
                  "source": "ignored: torch was imported first" if late else "set by the runner"}
    if environ is None:
        DECISION.update(chosen)
    return chosen


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return max(1, cpus or 1)
    if quota != "max":
        cpus = min(cpus or 1, math.ceil(int(quota) / int(period)))
    return max(1, cpus or 1)


def user_threads(environ: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """The thread count the user set with ``OMP_NUM_THREADS`` (a positive integer), else None."""
    value = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def apply_threads(environ: Optional[Mapping[str, str]] = None) -> str:
    """Set torch's intra-op threads: ``OMP_NUM_THREADS`` if the user set it, else the available
    CPUs (torch's own default counts physical cores, which can exceed the affinity mask or the
    container's quota). Returns a line for the log naming the count and where it came from."""
    import torch

    env = os.environ if environ is None else environ
    policy = env.get("OMP_WAIT_POLICY", "unset")
    if DECISION:
        policy += f" ({DECISION['source']})"
    user = user_threads(env)
    if user is not None:
        torch.set_num_threads(user)
        source = "OMP_NUM_THREADS"
    else:
        torch.set_num_threads(available_cpus())
        source = f"the CPUs available to this process, load average {os.getloadavg()[0]:.1f}"
    spin = f", GOMP_SPINCOUNT={env['GOMP_SPINCOUNT']}" if "GOMP_SPINCOUNT" in env else ""
    count = torch.get_num_threads()
    return f"{count} thread{'s' * (count != 1)} ({source}), OMP_WAIT_POLICY={policy}{spin}"
