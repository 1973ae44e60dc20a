"""Scale benchmark: a LibriSpeech-100h-sized feature set on disk, peak memory and throughput.

Usage::

    python benchmarks/bench_scale.py --dir /data/scale --hours 1 --json scale.json
        [--batches 20] [--batch-size 16] [--max-len 200] [--probe-every 5] [--skip-contention]

``--dir`` caches a generated corpus (written once, reused when ``corpus.json`` there matches):
random float32 features at LibriSpeech train-clean-100's frame rate (``--hours`` x 360,000
frames; 100 h is about 36 M frames x 40 dims, 5.8 GB) as a Kaldi ark + scp, utterance lengths
drawn around train-clean-100's mean of 12.7 s, and one pdf label per frame as a Kaldi int-vector
ark. Each section runs in a child process of its own, so its peak RSS (``VmHWM``) is its own:

* ``data_loading``: frames/s of reading the set and cutting one epoch into padded batches;
* ``training``: frames/s of ``--batches`` training steps (forward, backward, Adam) of a 2 x 550
  v2 stack with a pdf readout, and the peak RSS of that process (data included);
* ``contention``: the training section alone, beside one ``nice -n 19`` CPU-bound process, and
  alone again; the ratio contended / mean alone;
* ``distributed``: single process vs 2 gloo processes (``measured: false`` until the DDP
  runner exists);
* ``decoding``: real-time factor of 1-best decoding on one core.

Each section is one function taking the adapter it measures (``BatchSource``, ``StepFactory``,
``Decoder``); the defaults use today's code. A section that cannot run records
``measured: false`` with the reason: no figure is ever made up. Goals (issue 14) are reported,
not asserted: peak RSS while training < 4 GB independent of corpus size; data-loading frames/s /
training frames/s >= 3; contended / alone training frames/s >= 0.4; decoding RTF <= 0.1 on one
core for 1-best on a word graph of realistic size.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional

ROOT = Path(__file__).resolve().parents[1]
FRAMES_PER_HOUR = 360_000  # 100 frames/s
MEAN_UTT_FRAMES, SD_UTT_FRAMES = 1270, 320  # train-clean-100: 28,539 utterances, 100.6 h
MIN_UTT_FRAMES, MAX_UTT_FRAMES = 150, 2450
DIMS, N_PDFS = 40, 2000
GOLDEN = ROOT / "tests" / "data" / "kaldi_golden_decode"
RSS_GOAL_BYTES = 4 * 2 ** 30


# -- the generated corpus ------------------------------------------------------------------------

class Corpus(NamedTuple):
    feats_scp: Path
    labels_ark: Path
    utterances: int
    frames: int


def utterance_lengths(hours: float, seed: int) -> List[int]:
    """Frame counts of the utterances of ``hours`` of speech (the last one cut to fit)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    left, lengths = int(hours * FRAMES_PER_HOUR), []
    while left > 0:
        n = int(np.clip(rng.normal(MEAN_UTT_FRAMES, SD_UTT_FRAMES), MIN_UTT_FRAMES, MAX_UTT_FRAMES))
        lengths.append(min(n, left))
        left -= lengths[-1]
    return lengths


def generate(folder: Path, hours: float, seed: int = 0) -> Corpus:
    """Write (or reuse) the corpus in ``folder``; ``corpus.json`` is written last, so a
    generation cut short is redone."""
    import numpy as np
    from pytorch_kaldi_snn.io import write_int_vectors, write_mat_ark
    from pytorch_kaldi_snn.io.atomic import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "corpus.json"
    wanted = {"hours": hours, "seed": seed, "dims": DIMS, "n_pdfs": N_PDFS}
    lengths = utterance_lengths(hours, seed)
    keys = [f"spk{i // 100:04d}-utt{i:06d}" for i in range(len(lengths))]
    corpus = Corpus(folder / "feats.scp", folder / "labels.ark", len(lengths), sum(lengths))
    if manifest.exists() and json.loads(manifest.read_text()).get("spec") == wanted:
        return corpus

    def features() -> Iterator:
        for i, (key, n) in enumerate(zip(keys, lengths)):
            yield key, np.random.default_rng([seed, i]).standard_normal((n, DIMS), np.float32)

    def labels() -> Iterator:
        for i, (key, n) in enumerate(zip(keys, lengths)):
            yield key, np.random.default_rng([seed, i, 1]).integers(0, N_PDFS, n)

    write_mat_ark(folder / "feats.ark", corpus.feats_scp, features())
    write_int_vectors(corpus.labels_ark, labels())
    record = {"spec": wanted, "utterances": corpus.utterances, "frames": corpus.frames}
    atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps(record) + "\n"))
    return corpus


# -- adapters (today's code; the merger swaps in the streamed loader, DDP and the new decoder) ---

class Batch(NamedTuple):
    features: "object"  # (T, B, F) float tensor
    labels: "object"  # (T, B) int64 tensor, IGNORE on padding
    frames: int  # real (not padded) frames


BatchSource = Callable[[Corpus, int, int, int], Iterable[Batch]]  # corpus, max_len, batch, epoch
StepFactory = Callable[[int], Callable[[Batch], None]]  # n_pdfs -> one training step
Decoder = Callable[[], Dict[str, object]]  # -> {"seconds", "frames", "graph": {...}}


def eager_batches(corpus: Corpus, max_len: int, batch_size: int, epoch: int) -> Iterator[Batch]:
    """Today's path: the whole set in memory (``data/loading.py``'s tables), then
    ``data/batching.py``'s ``train_batches``."""
    from pytorch_kaldi_snn.data import LoadedSet, train_batches
    from pytorch_kaldi_snn.io import read_int_vectors, read_matrices

    feats = {u: m for u, m in read_matrices(corpus.feats_scp)}
    labels = {u: v.astype("int64") for u, v in read_int_vectors(corpus.labels_ark)}
    data = LoadedSet("scale", sorted(feats), {"fea": feats}, {"lab": labels})
    for batch in train_batches(data, max_len, batch_size, seed=0, epoch=epoch):
        lab = batch.labels["lab"]
        yield Batch(batch.features["fea"], lab, int((lab >= 0).sum()))


def v2_step_factory(n_pdfs: int) -> Callable[[Batch], None]:
    """Forward, backward and Adam step of a 2 x 550 v2 stack (fused kernels) + pdf readout.

    TODO(merger): the runner's ``Trainer`` with an ``AcousticModel`` from a generated cfg."""
    import torch
    from pytorch_kaldi_snn.layers import spiking_stack

    torch.manual_seed(0)
    stack = spiking_stack("v2", DIMS, [550, 550], n_bits=[6, 6], thresholds=[3, 3],
                          surrogates=["ste"] * 2, alphas=[1.0] * 2, dropouts=[0.0] * 2,
                          batchnorms=[True] * 2, impl="fused")
    readout = torch.nn.Linear(550, n_pdfs)
    params = list(stack.parameters()) + list(readout.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def step(batch: Batch) -> None:
        out = stack(batch.features)
        out = out[0] if isinstance(out, tuple) else out
        logits = readout(out).log_softmax(-1)
        loss = torch.nn.functional.nll_loss(logits.reshape(-1, n_pdfs), batch.labels.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def golden_graph_decoder() -> Dict[str, object]:
    """Today's built-in decoder (``decode_utterance``, 1-best, no lattice) on the golden test
    system's HCLG and log-likelihoods (``tests/data/kaldi_golden_decode``): a small graph.

    TODO(merger): the fast decoder on the generated word graph of realistic size."""
    from pytorch_kaldi_snn.decoding.decoder import decode_utterance
    from pytorch_kaldi_snn.decoding.graph import load_graph
    from pytorch_kaldi_snn.decoding.transition_model import read_transition_model
    from pytorch_kaldi_snn.io import read_matrices

    graph = load_graph(GOLDEN / "graph" / "HCLG.fst")
    tm = read_transition_model(GOLDEN / "model" / "final.mdl")
    utts = list(read_matrices(GOLDEN / "decode" / "loglikes.ark"))
    decode_utterance(utts[0][1], graph, tm, with_lattice=False)  # warm-up
    start = time.perf_counter()
    for _, loglikes in utts:
        decode_utterance(loglikes, graph, tm, with_lattice=False)
    seconds = time.perf_counter() - start
    arcs = sum(graph.num_arcs(s) for s in range(graph.num_states))
    return {"seconds": seconds, "frames": sum(len(m) for _, m in utts),
            "graph": {"source": str(GOLDEN.relative_to(ROOT) / "graph" / "HCLG.fst"),
                      "states": graph.num_states, "arcs": arcs, "realistic_size": False}}


# -- sections (each measured in its own child process) ------------------------------------------

def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def data_loading(source: BatchSource, corpus: Corpus, args: argparse.Namespace) -> Dict:
    """Frames/s of one epoch of batches from ``source``, reading included."""
    start, start_cpu, frames, batches = time.perf_counter(), time.process_time(), 0, 0
    for batch in source(corpus, args.max_len, args.batch_size, 0):
        frames += batch.frames
        batches += 1
    seconds = time.perf_counter() - start
    return {"measured": True, "frames": frames, "batches": batches, "seconds": seconds,
            "cpu_seconds": time.process_time() - start_cpu,
            "frames_per_s": frames / seconds, "peak_rss_bytes": peak_rss_bytes(),
            "loader": source.__name__}


def training(source: BatchSource, make_step: StepFactory, corpus: Corpus,
             args: argparse.Namespace) -> Dict:
    """Frames/s of ``args.batches`` training steps after one warm-up step, with the runner's
    thread choice (bootstrap, count, and its governor, probing every ``--probe-every``
    batches), and the process's peak RSS."""
    import logging
    from pytorch_kaldi_snn import threads
    from pytorch_kaldi_snn.train.thread_governor import ThreadGovernor
    chosen = threads.apply_threads()
    import torch
    governor = ThreadGovernor(torch.get_num_threads(), logging.getLogger(__name__),
                              probe_every=args.probe_every)
    step = make_step(N_PDFS)
    batches = iter(source(corpus, args.max_len, args.batch_size, 0))
    step(next(batches))
    seconds, cpu, frames, done, used = 0.0, 0.0, 0, 0, []
    for batch in batches:
        start, start_cpu = time.perf_counter(), time.process_time()
        with governor.timing(batch.frames):
            used.append(torch.get_num_threads())
            step(batch)
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        frames += batch.frames
        done += 1
        if done == args.batches:
            break
    return {"measured": True, "batches": done, "frames": frames, "seconds": seconds,
            "cpu_seconds": cpu, "frames_per_s": frames / seconds,
            "peak_rss_bytes": peak_rss_bytes(), "threads": chosen, "threads_per_batch": used,
            "loader": source.__name__, "step": make_step.__name__}


def decoding(decode: Decoder) -> Dict:
    """Real-time factor (decoding seconds / audio seconds at 100 frames/s) on one thread."""
    import torch
    torch.set_num_threads(1)
    result = decode()
    audio_s = result["frames"] / 100.0
    return {"measured": True, "rtf": result["seconds"] / audio_s, "audio_seconds": audio_s,
            **result, "decoder": decode.__name__}


def distributed(launch: Optional[Callable[[int], Dict]]) -> Dict:
    """Training frames/s with 1 and 2 gloo processes; ``launch(n_procs)`` runs the slice."""
    if launch is None:
        return {"measured": False, "reason": "no DDP runner in this tree yet "
                "(train/distributed.py, torchrun with gloo)"}
    one, two = launch(1), launch(2)
    return {"measured": True, "one": one, "two": two,
            "two_vs_one": two["frames_per_s"] / one["frames_per_s"]}


# -- the driver ----------------------------------------------------------------------------------

def run_section(args: argparse.Namespace, name: str, competitor: bool = False) -> Dict:
    """``name`` in a fresh child (its own peak RSS; the runner's thread bootstrap before torch),
    optionally beside one ``nice -n 19`` busy loop."""
    cmd = [sys.executable, __file__, "--section", name, "--dir", str(args.dir),
           "--hours", str(args.hours), "--batches", str(args.batches),
           "--batch-size", str(args.batch_size), "--max-len", str(args.max_len),
           "--probe-every", str(args.probe_every)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    busy = (subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
            if competitor else None)
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if done.returncode:
        return {"measured": False, "reason": f"exit {done.returncode}: "
                f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def contention(args: argparse.Namespace) -> Dict:
    """Training alone, beside a CPU-bound process, and alone again (load drift shows as the
    difference of the two alone runs)."""
    if args.skip_contention:
        return {"measured": False, "reason": "--skip-contention"}
    runs = [run_section(args, "training", competitor=c) for c in (False, True, False)]
    if not all(r["measured"] for r in runs):
        return {"measured": False, "reason": "a training run failed", "runs": runs}
    alone = (runs[0]["frames_per_s"] + runs[2]["frames_per_s"]) / 2
    return {"measured": True, "alone_frames_per_s": [runs[0]["frames_per_s"],
                                                     runs[2]["frames_per_s"]],
            "contended_frames_per_s": runs[1]["frames_per_s"],
            "contended_vs_alone": runs[1]["frames_per_s"] / alone,
            "competitor": "nice -n 19 python -c 'while True: pass'"}


def goals(sections: Dict[str, Dict]) -> Dict[str, Dict]:
    """The issue's targets, from measured figures only."""
    loading, train = sections["data_loading"], sections["training"]
    cont, dec = sections["contention"], sections["decoding"]
    out: Dict[str, Dict] = {}
    if train["measured"]:
        out["training_peak_rss_bytes"] = {"value": train["peak_rss_bytes"],
                                          "target": f"< {RSS_GOAL_BYTES}"}
    if loading["measured"] and train["measured"]:
        out["loading_vs_training"] = {"value": loading["frames_per_s"] / train["frames_per_s"],
                                      "target": ">= 3"}
    if cont["measured"]:
        out["contended_vs_alone"] = {"value": cont["contended_vs_alone"], "target": ">= 0.4"}
    if dec["measured"]:
        out["decoding_rtf"] = {"value": dec["rtf"], "target": "<= 0.1",
                               "on_realistic_graph": dec["graph"]["realistic_size"]}
    for goal in out.values():
        op, bound = goal["target"].split()
        value, bound = goal["value"], float(bound)
        goal["met"] = {"<": value < bound, ">=": value >= bound, "<=": value <= bound}[op]
    return out


def machine() -> Dict[str, object]:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
            "python": platform.python_version(), "commit": commit}


def child(args: argparse.Namespace) -> Dict:
    corpus = generate(args.dir, args.hours)
    if args.section == "data_loading":
        return data_loading(eager_batches, corpus, args)
    if args.section == "training":
        return training(eager_batches, v2_step_factory, corpus, args)
    return decoding(golden_graph_decoder)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="corpus cache folder")
    parser.add_argument("--hours", type=float, default=100.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--batches", type=int, default=20, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--probe-every", type=int, default=5,
                        help="thread governor's probe interval in the slice (the runner: 100)")
    parser.add_argument("--skip-contention", action="store_true")
    parser.add_argument("--section", choices=["data_loading", "training", "decoding"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.section:
        from pytorch_kaldi_snn import threads
        threads.bootstrap()  # before torch loads OpenMP, as the runner's entry point does
        print(json.dumps(child(args)))
        return 0
    start = time.perf_counter()
    corpus = generate(args.dir, args.hours)
    generated_s = time.perf_counter() - start
    sections = {name: run_section(args, name) for name in ("data_loading", "training")}
    sections["contention"] = contention(args)
    sections["distributed"] = distributed(None)
    sections["decoding"] = run_section(args, "decoding")
    result = {"corpus": {"hours": args.hours, "utterances": corpus.utterances,
                         "frames": corpus.frames, "dims": DIMS,
                         "feature_bytes": corpus.frames * DIMS * 4,
                         "generate_or_reuse_s": generated_s},
              "settings": {"batch_size": args.batch_size, "max_len": args.max_len,
                           "batches": args.batches},
              "machine": machine(), "sections": sections, "goals": goals(sections)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
