"""Large-graph decoding: graph load time (new reader vs the per-arc one) and 1-best real-time factor.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_decode.py --json bench_decode.json \\
        [--words 3000] [--sentences 20000] [--utterances 5] [--frames 500] [--lattice-frames 0]

Builds a synthetic word HCLG (:func:`pytorch_kaldi_snn.graph.synthetic.synthetic_word_graph`)
in a temporary dir, then measures on one core:

* ``load_vector_s``: :func:`load_graph` of the vector HCLG the builder writes;
* with OpenFst's ``fstconvert`` on PATH (Kaldi's tools/openfst/bin), the same graph as the
  *const* FST ``mkgraph.sh`` writes: ``load_const_s`` (:func:`load_graph`, numpy + kaldifst's
  C++ reader) against ``load_const_per_arc_s`` (the former per-arc reader, kept in this file), and their ratio
  ``const_load_speedup`` (same process, same file);
* ``rtf_1best`` / ``rtf_1best_random``: :func:`pytorch_kaldi_snn.decoding.rtf.measure_rtf`
  with ``save_lattices`` False on plausible / pure-noise log-likelihoods (goal <= 0.1 at 100
  frames/s), at DecodeOptions' defaults (beam 13, max_active 7000);
* ``rtf_lattice`` (``--lattice-frames`` > 0): one utterance of that length with lattices.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytorch_kaldi_snn.decoding.graph import const_arrays, load_graph  # noqa: E402
from pytorch_kaldi_snn.decoding.kaldi_bridge import kaldi_search_path  # noqa: E402
from pytorch_kaldi_snn.decoding.rtf import measure_rtf  # noqa: E402
from pytorch_kaldi_snn.graph.synthetic import synthetic_word_graph  # noqa: E402
from pytorch_kaldi_snn.io.fst_header import read_fst_header  # noqa: E402
from pytorch_kaldi_snn.kaldi_ports import kaldifst  # noqa: E402


def _timed(load, path: Path) -> float:
    start = time.perf_counter()
    load(path)
    return time.perf_counter() - start


def _const_copy(vector: Path, work: Path) -> Optional[Path]:
    """The graph as a const FST (``fstconvert --fst_type=const``), or None without OpenFst."""
    path = kaldi_search_path()
    kaldi_root = os.environ.get("KALDI_ROOT")
    if kaldi_root:
        path = os.pathsep.join([path, str(Path(kaldi_root) / "tools" / "openfst" / "bin")])
    fstconvert = shutil.which("fstconvert", path=path)
    if fstconvert is None:
        return None
    const = work / "HCLG.const.fst"
    subprocess.run([fstconvert, "--fst_type=const", str(vector), str(const)], check=True)
    return const


def load_const_per_arc(path: Path | str) -> "kaldifst.StdVectorFst":
    """The package's former const reader: one kaldifst call per state and per arc, kept here
    as the baseline that ``const_load_speedup`` measures :func:`load_graph` against."""
    path = Path(path)
    data = path.read_bytes()
    header = read_fst_header(data, str(path))
    states, arcs = const_arrays(data, header, str(path))
    fst = kaldifst.StdVectorFst()
    fst.reserve_states(header.num_states)
    for _ in range(header.num_states):
        fst.add_state()
    if header.start >= 0:
        fst.start = header.start
    for state, (final, pos, narcs, _, _) in enumerate(states.tolist()):
        if final != float("inf"):
            fst.set_final(state, final)
        for ilabel, olabel, weight, nextstate in arcs[pos : pos + narcs].tolist():
            fst.add_arc(state, kaldifst.StdArc(ilabel, olabel, weight, nextstate))
    return fst


def bench(words: int, sentences: int, utterances: int, frames: int, lattice_frames: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_decode.") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        graph = synthetic_word_graph(work, words, sentences)
        out: Dict[str, Any] = {"graph": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(graph).items()
                                         if k not in ("graph_dir", "model")},
                               "build_s": round(time.perf_counter() - start, 2)}
        hclg = graph.graph_dir / "HCLG.fst"
        out["load_vector_s"] = _timed(load_graph, hclg)
        const = _const_copy(hclg, work)
        if const is None:
            out["const_load"] = "not measured: fstconvert (OpenFst) not found"
        else:
            out["load_const_s"] = _timed(load_graph, const)
            out["load_const_per_arc_s"] = _timed(load_const_per_arc, const)
            out["const_load_speedup"] = out["load_const_per_arc_s"] / out["load_const_s"]
        runs: List[Dict[str, Any]] = []
        for kind in ("plausible", "random"):
            result = measure_rtf(graph.graph_dir, graph.model, utterances, frames, kind=kind)
            runs.append(asdict(result))
            out["rtf_1best" if kind == "plausible" else "rtf_1best_random"] = result.rtf
        if lattice_frames > 0:
            result = measure_rtf(graph.graph_dir, graph.model, 1, lattice_frames, save_lattices=True)
            runs.append(asdict(result))
            out["rtf_lattice"] = result.rtf
        out["runs"] = runs
        out["machine"] = {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                          "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--words", type=int, default=3000)
    parser.add_argument("--sentences", type=int, default=20000)
    parser.add_argument("--utterances", type=int, default=5)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--lattice-frames", type=int, default=0)
    args = parser.parse_args()
    out = bench(args.words, args.sentences, args.utterances, args.frames, args.lattice_frames)
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
