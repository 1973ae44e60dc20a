"""Training frames/s of a v2 stack and ``nn.GRU`` alone and beside a competing CPU-bound process.

Usage::

    python benchmarks/bench_contention.py --json contention.json [--rounds 5]
        [--threads 2 1] [--policies unset PASSIVE bootstrap] [--competitors busy1 busy1_nice0 omp2]

One child process per (wait policy, competitor), because the OpenMP runtime reads
``OMP_WAIT_POLICY`` once, when ``import torch`` loads it. The child builds a 2 x 550 v2 stack
(``impl="fused"``, batch norm) and a 2 x 550 ``nn.GRU`` and times forward + backward passes on
one fixed batch (``--batch`` x ``--frames``, 40 inputs). The competitor is started once and
paused (SIGSTOP) or resumed (SIGCONT) between passes, so that "alone" and "contended" passes
alternate within every round and a shared machine's background load falls on both alike; the
medians of ``--rounds`` rounds after a warm-up round are reported. Competitors:

* ``busy1`` / ``busy2``: one / two ``nice -n 19 python -c 'while True: pass'`` (the issue's
  compiler at nice 19);
* ``busy1_nice0``: one such loop at our own priority (a fair-share competitor);
* ``omp2``: ``nice -n 19`` python running 512³ products on 2 torch threads with the default
  (spinning) wait policy: a multi-threaded competitor.

``policy`` ``unset`` leaves the wait policy to libgomp (it spins for a while at every barrier);
``PASSIVE`` makes waiting threads sleep at once; ``bootstrap`` is what the runner's entry point
does (:mod:`pytorch_kaldi_snn.threads`: passive waiting and the thread count from the CPUs this
process may use) and times only that thread count. Ratios: contended / alone frames/s per thread
count and model, and ``*_best_vs_best``, the best contended setting / the best setting alone
(the issue's target for training is >= 0.4).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
BUSY = "while True: pass"
OMP_COMPETITOR = ("import torch; torch.set_num_threads(2); a = torch.randn(512, 512)\n"
                  "while True: a @ a")
COMPETITORS = {
    "busy1": [["nice", "-n", "19", sys.executable, "-c", BUSY]],
    "busy2": [["nice", "-n", "19", sys.executable, "-c", BUSY]] * 2,
    "busy1_nice0": [[sys.executable, "-c", BUSY]],
    "omp2": [["nice", "-n", "19", sys.executable, "-c", OMP_COMPETITOR]],
}


def start_competitors(kind: str) -> List[subprocess.Popen]:
    """The competitor processes, started and then stopped (SIGSTOP) until a contended round.

    Their environment has no wait policy of ours: they stand for someone else's job."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    procs = [subprocess.Popen(cmd, env=env) for cmd in COMPETITORS[kind]]
    time.sleep(3.0 if kind == "omp2" else 0.3)  # let torch import before pausing it
    for proc in procs:
        proc.send_signal(signal.SIGSTOP)
    return procs


def set_running(procs: List[subprocess.Popen], running: bool) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGCONT if running else signal.SIGSTOP)
    time.sleep(0.2)


def build_models(frames: int, batch: int):
    import torch
    from torch import nn
    from pytorch_kaldi_snn.layers import spiking_stack
    torch.manual_seed(0)
    x = torch.randn(frames, batch, 40)
    models = {
        "v2": spiking_stack("v2", 40, [550, 550], n_bits=[6, 6], thresholds=[3, 3],
                            surrogates=["ste"] * 2, alphas=[1.0] * 2, dropouts=[0.0] * 2,
                            batchnorms=[True] * 2, impl="fused"),
        "gru": nn.GRU(40, 550, num_layers=2),
    }

    def step(model: nn.Module) -> None:
        model.zero_grad(set_to_none=True)
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
    return {name: (lambda m=m: step(m)) for name, m in models.items()}


def worker(args: argparse.Namespace) -> Dict[str, object]:
    """In the child: median seconds per training pass of each model, for every thread count,
    alone and contended, in interleaved rounds (background load falls on both alike)."""
    if args.policy == "bootstrap":
        from pytorch_kaldi_snn import threads
        threads.bootstrap()
    import torch
    chosen = None
    if args.policy == "bootstrap":
        chosen = threads.apply_threads()
    counts = [torch.get_num_threads()] if chosen else args.threads
    steps = build_models(args.frames, args.batch)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` ends the competitor
    procs = start_competitors(args.competitor)
    times: Dict[str, List[float]] = {}
    try:
        for round_ in range(args.rounds + 1):
            for state in ("alone", "contended"):
                set_running(procs, state == "contended")
                for count in counts:
                    torch.set_num_threads(count)
                    for name, step in steps.items():
                        start = time.perf_counter()
                        step()
                        if round_:  # round 0 warms up
                            key = f"{state}/{count}/{name}"
                            times.setdefault(key, []).append(time.perf_counter() - start)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    frames = args.frames * args.batch
    return {"frames_per_s": {k: frames / statistics.median(v) for k, v in times.items()},
            "chosen": chosen, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}


def measure(args: argparse.Namespace, policy: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if policy == "PASSIVE":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    load = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--worker", "--policy", policy, "--competitor",
           args.competitor, "--rounds", str(args.rounds), "--batch", str(args.batch),
           "--frames", str(args.frames), "--threads", *map(str, args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(policy=policy, competitor=args.competitor, load_before=load,
                  load_after=os.getloadavg()[0])
    return result


def ratios(run: dict) -> Dict[str, float]:
    """Contended / alone frames/s per thread count and model, and the issue's ratio: the best
    contended setting / the best setting alone."""
    fps = run["frames_per_s"]
    out = {}
    for key, value in fps.items():
        state, count, name = key.split("/")
        if state == "contended":
            out[f"{name}_threads{count}"] = value / fps[f"alone/{count}/{name}"]
    for name in ("v2", "gru"):
        best = {s: max(v for k, v in fps.items() if k.startswith(s) and k.endswith("/" + name))
                for s in ("alone", "contended")}
        out[f"{name}_best_vs_best"] = best["contended"] / best["alone"]
    return out


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write every measurement and the ratios here")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--policies", nargs="+", default=["unset", "PASSIVE", "bootstrap"],
                        choices=["unset", "PASSIVE", "bootstrap"])
    parser.add_argument("--competitors", nargs="+", default=["busy1", "busy1_nice0", "omp2"],
                        choices=list(COMPETITORS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--policy", default="unset", help=argparse.SUPPRESS)
    parser.add_argument("--competitor", default="busy1", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    runs = []
    for policy in args.policies:
        for competitor in args.competitors:
            args.competitor = competitor
            run = measure(args, policy)
            run["ratios"] = ratios(run)
            runs.append(run)
            fps = " ".join(f"{k} {v:.0f}" for k, v in sorted(run["frames_per_s"].items()))
            shown = " ".join(f"{k} {v:.2f}" for k, v in run["ratios"].items())
            print(f"{policy} {competitor} (load {run['load_before']:.1f}-{run['load_after']:.1f})"
                  f"\n  frames/s: {fps}\n  ratios: {shown}", flush=True)
    result = {"runs": runs, "cpus": len(os.sched_getaffinity(0)), "batch": args.batch,
              "frames": args.frames, "rounds": args.rounds}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
