"""Scale benchmark: a LibriSpeech-100h-sized feature set on disk, peak memory and throughput.

Usage::

    python benchmarks/bench_scale.py --dir /data/scale --hours 1 --json scale.json
        [--batches 20] [--batch-size 16] [--max-len 200] [--chunk-hours 1]
        [--loading-chunks 10] [--skip-contention] [--skip-distributed] [--skip-decoding]

``--dir`` caches a generated corpus (written once, reused when ``corpus.json`` there matches):
random float32 features at LibriSpeech train-clean-100's frame rate (``--hours`` x 360,000
frames; 100 h is about 36 M frames x 40 dims, 5.8 GB) as a binary Kaldi ark + scp (written in
blocks with numpy: slices of one random pool, so generation costs what the disk costs),
utterance lengths drawn around train-clean-100's mean of 12.7 s, and per frame one of
``N_PDFS`` pdf labels and one of ``N_PHONES`` phone labels (int32 ``.npy``, the arrays
``ali-to-pdf`` / ``ali-to-phones`` would give). The data path is the runner's: the cfg is
``cfg/Librispeech_snn_v2.cfg`` (2 x 550 v2, pdf and phone readouts, its optimisers), and
``[dataset1]`` is a :class:`~pytorch_kaldi_snn.data.streamed.DataSource` built from its parts
(:func:`open_source` less the alignment reading: the labels come from the ``.npy`` files, not
from ``ali.*.gz`` + ``final.mdl``), read through the cfg's pipe without ``apply-cmvn`` (no
speaker stats here) in ``n_chunks = ceil(hours / --chunk-hours)`` chunks, so that a chunk holds
about ``--chunk-hours`` whatever the corpus size. Each section runs in a child process of its
own, so its peak RSS (``VmHWM``) is its own; every child calls the runner's thread bootstrap
(:mod:`pytorch_kaldi_snn.threads`) before torch loads:

* ``data_loading``: frames/s of epoch 0's padded batches (:func:`plan_batches` of
  :func:`train_plan`) over the first ``--loading-chunks`` chunks (0: all), reading included;
* ``training``: frames/s of ``--batches`` steps of the runner's :class:`Trainer`
  (``train_step``: forward, backward, guards, the cfg's optimisers) after one warm-up step,
  on the streamed batches, with the 100h set open (its labels and index in memory), and the
  process's peak RSS;
* ``contention``: the training section alone, beside one ``nice -n 19`` CPU-bound process, and
  alone again; the ratio contended / mean alone;
* ``distributed``: the training slice under ``torchrun --standalone`` with 1 and with 2 gloo
  processes on CPU (``multi_gpu = True``; each process computes its share of each global
  batch); frames/s of the global batches;
* ``decoding``: real-time factor of 1-best decoding on one thread on a synthetic word graph
  (:func:`synthetic_word_graph`, cached in ``--dir/word_graph``) with :func:`measure_rtf`.

A section that cannot run records ``measured: false`` with the reason: no figure is ever made
up. Goals (issue 14) are reported, not asserted: peak RSS while training < 4 GB independent of
corpus size; data-loading frames/s / training frames/s >= 3; contended / alone training
frames/s >= 0.4; decoding RTF <= 0.1 on one core for 1-best on a word graph of realistic size.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, NamedTuple

if TYPE_CHECKING:  # imported in the children, after the thread bootstrap
    import numpy as np
    from pytorch_kaldi_snn.config.experiment import Experiment
    from pytorch_kaldi_snn.data.streamed import DataSource

ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / "cfg" / "Librispeech_snn_v2.cfg"
FRAMES_PER_HOUR = 360_000  # 100 frames/s
MEAN_UTT_FRAMES, SD_UTT_FRAMES = 1270, 320  # train-clean-100: 28,539 utterances, 100.6 h
MIN_UTT_FRAMES, MAX_UTT_FRAMES = 150, 2450
DIMS, N_PDFS, N_PHONES = 40, 2000, 347
POOL_FRAMES = 1 << 20  # random rows the utterances are sliced from
RSS_GOAL_BYTES = 4 * 2 ** 30
# The cfg's fea_opts without apply-cmvn (the generated set has no speaker stats).
FEA_OPTS = "add-deltas --delta-order=0 ark:- ark:- |"


# -- the generated corpus ------------------------------------------------------------------------

class Corpus(NamedTuple):
    folder: Path
    utterances: int
    frames: int

    @property
    def feats_scp(self) -> Path:
        return self.folder / "feats.scp"


def utterance_lengths(hours: float, seed: int) -> "np.ndarray":
    """Frame counts of the utterances of ``hours`` of speech (the last one cut to fit)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    total = int(hours * FRAMES_PER_HOUR)
    drawn = np.clip(rng.normal(MEAN_UTT_FRAMES, SD_UTT_FRAMES,
                               total // MIN_UTT_FRAMES + 1), MIN_UTT_FRAMES, MAX_UTT_FRAMES)
    ends = np.cumsum(drawn.astype(np.int64))
    count = int(np.searchsorted(ends, total)) + 1
    lengths = drawn[:count].astype(np.int64)
    lengths[-1] -= int(ends[count - 1]) - total
    return lengths


def utt_ids(count: int) -> List[str]:
    return [f"spk{i // 100:04d}-utt{i:06d}" for i in range(count)]


def _write_ark(folder: Path, lengths: "np.ndarray", seed: int) -> None:
    """``feats.ark`` (binary ``BFM`` records) and ``feats.scp`` with byte offsets, in 64 MB
    writes; each utterance is a slice of one random pool at a random row."""
    import numpy as np
    rng = np.random.default_rng([seed, 1])
    pool = rng.standard_normal((POOL_FRAMES + MAX_UTT_FRAMES, DIMS), np.float32)
    starts = rng.integers(0, POOL_FRAMES, len(lengths))
    ark, scp_lines, offset, block = folder / "feats.ark", [], 0, []
    with open(ark.with_suffix(".ark.tmp"), "wb") as out:
        for key, n, start in zip(utt_ids(len(lengths)), lengths, starts):
            head = key.encode() + b" \0BFM \4" + struct.pack("<i", int(n)) + b"\4" + \
                struct.pack("<i", DIMS)
            scp_lines.append(f"{key} {ark}:{offset + len(key) + 1}\n")
            block += [head, pool[start:start + n].tobytes()]
            offset += len(head) + int(n) * DIMS * 4
            if len(block) > 2000:
                out.write(b"".join(block))
                block = []
        out.write(b"".join(block))
    ark.with_suffix(".ark.tmp").replace(ark)
    (folder / "feats.scp").write_text("".join(scp_lines))


def generate(folder: Path, hours: float, seed: int = 0) -> Corpus:
    """Write (or reuse) the corpus in ``folder``; ``corpus.json`` is written last, so a
    generation cut short is redone."""
    import numpy as np
    from pytorch_kaldi_snn.io.atomic import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "corpus.json"
    wanted = {"hours": hours, "seed": seed, "dims": DIMS, "n_pdfs": N_PDFS,
              "n_phones": N_PHONES, "format": 2}
    lengths = utterance_lengths(hours, seed)
    corpus = Corpus(folder, len(lengths), int(lengths.sum()))
    if manifest.exists() and json.loads(manifest.read_text()).get("spec") == wanted:
        return corpus
    _write_ark(folder, lengths, seed)
    rng = np.random.default_rng([seed, 2])
    np.save(folder / "lengths.npy", lengths)
    np.save(folder / "lab_cd.npy", rng.integers(0, N_PDFS, corpus.frames, dtype=np.int32))
    np.save(folder / "lab_mono.npy", rng.integers(1, N_PHONES, corpus.frames, dtype=np.int32))
    record = {"spec": wanted, "utterances": corpus.utterances, "frames": corpus.frames}
    atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps(record) + "\n"))
    return corpus


# -- the runner's pieces on the generated set ----------------------------------------------------

def experiment(args: argparse.Namespace, out: Path, multi: bool = False) -> "Experiment":
    """``cfg/Librispeech_snn_v2.cfg`` on CPU with the benchmark's batches (its ``${KALDI_ROOT}``
    paths are never read: the train set is replaced by :func:`data_source`'s)."""
    from pytorch_kaldi_snn.config.experiment import load_experiment
    os.environ.setdefault("KALDI_ROOT", str(out))
    settings = ["exp.use_cuda=False", f"exp.out_folder={out}", f"exp.multi_gpu={multi}",
                f"batches.batch_size_train={args.batch_size}",
                f"batches.max_seq_length_train={args.max_len}", "exp.data_workers=0"]
    return load_experiment(CFG, settings)


def n_chunks(args: argparse.Namespace) -> int:
    return max(1, math.ceil(args.hours / args.chunk_hours))


def data_source(corpus: Corpus, exp: "Experiment", chunks: int,
                log: logging.Logger) -> "DataSource":
    """The train set as :func:`open_source` builds it, its labels taken from the ``.npy``
    files (views of one int32 array per label set) instead of ``ali.*.gz``."""
    import numpy as np
    from pytorch_kaldi_snn.data.streamed import DataSource
    from pytorch_kaldi_snn.io import read_kaldi_map

    spec = exp.train_set
    feature = dataclasses.replace(spec.features[0], scp=corpus.feats_scp, opts=FEA_OPTS)
    spec = dataclasses.replace(spec, features=(feature,), n_chunks=chunks)
    lengths = np.load(corpus.folder / "lengths.npy")
    utts = utt_ids(len(lengths))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    labels = {}
    for lab in spec.labels:
        frames = np.load(corpus.folder / f"{lab.name}.npy")
        labels[lab.name] = {u: frames[a:b] for u, a, b in zip(utts, bounds[:-1], bounds[1:])}
    scp = read_kaldi_map(corpus.feats_scp)
    return DataSource(spec, sorted(utts), dict(zip(utts, map(int, lengths))), labels,
                      {feature.name: scp}, {feature.name: feature}, log)


def n_out() -> Dict[str, int]:
    return {"lab_cd": N_PDFS, "lab_mono": N_PHONES}


# -- sections (each measured in its own child process) ------------------------------------------

def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def data_loading(corpus: Corpus, args: argparse.Namespace, log: logging.Logger) -> Dict:
    """Frames/s of epoch 0's padded batches over the first ``--loading-chunks`` chunks."""
    from pytorch_kaldi_snn.data.streamed import plan_batches, train_plan
    exp = experiment(args, args.dir / "out")
    start_open = time.perf_counter()
    source = data_source(corpus, exp, n_chunks(args), log)
    open_s = time.perf_counter() - start_open
    plans = train_plan(source, 0, exp.exp.seed, args.max_len, args.batch_size)
    if args.loading_chunks:
        plans = plans[:args.loading_chunks]
    start, start_cpu, frames, batches = time.perf_counter(), time.process_time(), 0, 0
    for batch in plan_batches(source, plans):
        frames += int((batch.labels["lab_cd"] >= 0).sum())
        batches += 1
    seconds = time.perf_counter() - start
    return {"measured": True, "chunks_read": len(plans), "n_chunks": source.n_chunks,
            "frames": frames, "batches": batches, "seconds": seconds,
            "cpu_seconds": time.process_time() - start_cpu, "open_s": open_s,
            "frames_per_s": frames / seconds, "peak_rss_bytes": peak_rss_bytes(),
            "loader": "data.streamed.plan_batches(train_plan), workers 0"}


def train_slice(corpus: Corpus, args: argparse.Namespace, log: logging.Logger,
                multi: bool = False) -> Dict:
    """One warm-up step, then ``--batches`` timed steps of the runner's Trainer."""
    from pytorch_kaldi_snn.data.streamed import plan_pieces, train_plan
    from pytorch_kaldi_snn.pipeline.stages import make_trainer
    from pytorch_kaldi_snn.train.distributed import start_world
    import torch

    out = args.dir / f"out_{os.getpid()}"
    exp = experiment(args, out, multi)
    world = start_world(exp.exp, exp.cfg_path)
    source = data_source(corpus, exp, n_chunks(args), log)
    trainer = make_trainer(exp, source, n_out(), log, world)
    trainer.model.train()
    torch.manual_seed(exp.exp.seed)
    plans = train_plan(source, 0, exp.exp.seed, args.max_len, args.batch_size)
    batches = world.batches(plan_pieces(source, plans, exp.exp.data_workers))
    seconds, cpu, frames, done = 0.0, 0.0, 0, -1
    for index, (batch, share) in enumerate(batches):
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.train_step(batch.to(trainer.device), share.weight, 0, index)
        if done >= 0:  # the first step warms up
            seconds += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            frames += int((batch.labels["lab_cd"] >= 0).sum())
        done += 1
        if done == args.batches:
            break
    global_frames = int(world.sum([float(frames)])[0])
    result = {"measured": True, "batches": done, "frames": global_frames, "seconds": seconds,
              "cpu_seconds": cpu, "frames_per_s": global_frames / seconds,
              "peak_rss_bytes": peak_rss_bytes(), "n_chunks": source.n_chunks,
              "threads": torch.get_num_threads(), "world": world.describe(),
              "step": "train.loop.Trainer.train_step, cfg/Librispeech_snn_v2.cfg"}
    world.close()
    return result


def decoding(args: argparse.Namespace) -> Dict:
    """Real-time factor (decoding seconds / audio seconds at 100 frames/s) on one thread."""
    import torch
    from pytorch_kaldi_snn.decoding.rtf import measure_rtf
    from pytorch_kaldi_snn.graph.synthetic import synthetic_word_graph
    torch.set_num_threads(1)
    folder = args.dir / "word_graph"
    sizes = folder / "sizes.json"
    start = time.perf_counter()
    if not sizes.exists():
        graph = synthetic_word_graph(folder, args.words, args.sentences)
        record = {k: v for k, v in dataclasses.asdict(graph).items()
                  if k not in ("graph_dir", "model")}
        sizes.write_text(json.dumps(record) + "\n")
    build_s = time.perf_counter() - start
    result = measure_rtf(folder / "graph", folder / "final.mdl", args.decode_utterances,
                         args.decode_frames, save_lattices=False)
    return {"measured": True, "rtf": result.rtf, "build_or_reuse_s": build_s,
            "graph": json.loads(sizes.read_text()), "run": dataclasses.asdict(result),
            "decoder": "decoding.rtf.measure_rtf, 1-best, plausible log-likelihoods"}


# -- the driver ----------------------------------------------------------------------------------

def child_args(args: argparse.Namespace) -> List[str]:
    return ["--dir", str(args.dir), "--hours", str(args.hours), "--batches", str(args.batches),
            "--batch-size", str(args.batch_size), "--max-len", str(args.max_len),
            "--chunk-hours", str(args.chunk_hours), "--loading-chunks", str(args.loading_chunks),
            "--words", str(args.words), "--sentences", str(args.sentences),
            "--decode-utterances", str(args.decode_utterances),
            "--decode-frames", str(args.decode_frames)]


def _child_env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _result(done: subprocess.CompletedProcess) -> Dict:
    if done.returncode:
        return {"measured": False, "reason": f"exit {done.returncode}: "
                f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_section(args: argparse.Namespace, name: str, competitor: bool = False) -> Dict:
    """``name`` in a fresh child (its own peak RSS), optionally beside one ``nice -n 19`` busy
    loop."""
    cmd = [sys.executable, __file__, "--section", name] + child_args(args)
    busy = (subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
            if competitor else None)
    try:
        done = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return _result(done)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args: argparse.Namespace, procs: int) -> Dict:
    """The training slice under torchrun with ``procs`` gloo processes; rank 0's figures."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc_per_node", str(procs), "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), __file__, "--section", "distributed_rank"]
    return _result(subprocess.run(cmd + child_args(args), env=_child_env(),
                                  capture_output=True, text=True))


def distributed(args: argparse.Namespace) -> Dict:
    """Global training frames/s with 1 and 2 gloo processes (torchrun, CPU)."""
    if args.skip_distributed:
        return {"measured": False, "reason": "--skip-distributed"}
    one, two = launch(args, 1), launch(args, 2)
    if not (one["measured"] and two["measured"]):
        return {"measured": False, "reason": "a torchrun run failed", "one": one, "two": two}
    return {"measured": True, "one": one, "two": two,
            "two_vs_one": two["frames_per_s"] / one["frames_per_s"]}


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
                               "graph": dec["graph"]}
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
    log = logging.getLogger("bench_scale")
    if args.section == "decoding":
        return decoding(args)
    corpus = generate(args.dir, args.hours)
    if args.section == "data_loading":
        return data_loading(corpus, args, log)
    return train_slice(corpus, args, log, multi=args.section == "distributed_rank")


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="corpus cache folder")
    parser.add_argument("--hours", type=float, default=100.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--batches", type=int, default=20, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--chunk-hours", type=float, default=1.0,
                        help="hours per chunk: n_chunks = ceil(hours / chunk-hours)")
    parser.add_argument("--loading-chunks", type=int, default=10,
                        help="chunks the data_loading section reads (0: the whole epoch)")
    parser.add_argument("--words", type=int, default=3000, help="word graph: vocabulary")
    parser.add_argument("--sentences", type=int, default=20000, help="word graph: LM text")
    parser.add_argument("--decode-utterances", type=int, default=3)
    parser.add_argument("--decode-frames", type=int, default=500)
    parser.add_argument("--skip-contention", action="store_true")
    parser.add_argument("--skip-distributed", action="store_true")
    parser.add_argument("--skip-decoding", action="store_true")
    parser.add_argument("--section", help=argparse.SUPPRESS,
                        choices=["data_loading", "training", "distributed_rank", "decoding"])
    return parser.parse_args(argv)


def main(argv: List[str]) -> int:
    args = parse(argv)
    if args.section:
        from pytorch_kaldi_snn import threads
        threads.bootstrap()  # before torch loads OpenMP, as the runner's entry point does
        result = child(args)
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps(result))
        return 0
    start = time.perf_counter()
    corpus = generate(args.dir, args.hours)
    generated_s = time.perf_counter() - start
    sections = {name: run_section(args, name) for name in ("data_loading", "training")}
    sections["contention"] = contention(args)
    sections["distributed"] = distributed(args)
    sections["decoding"] = ({"measured": False, "reason": "--skip-decoding"}
                            if args.skip_decoding else run_section(args, "decoding"))
    result = {"corpus": {"hours": args.hours, "utterances": corpus.utterances,
                         "frames": corpus.frames, "dims": DIMS,
                         "feature_bytes": corpus.frames * DIMS * 4,
                         "generate_or_reuse_s": generated_s},
              "settings": {"batch_size": args.batch_size, "max_len": args.max_len,
                           "batches": args.batches, "n_chunks": n_chunks(args),
                           "chunk_hours": args.chunk_hours,
                           "loading_chunks": args.loading_chunks, "cfg": str(CFG.name)},
              "machine": machine(), "sections": sections, "goals": goals(sections)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
