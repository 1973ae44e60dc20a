"""benchmarks/bench_scale.py: the generated corpus is a valid Kaldi ark the runner's streamed
source reads, and the benchmark runs end to end on a tiny set (figures are not checked: speed
lives in the benchmark's JSON, never in tests)."""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from pytorch_kaldi_snn.io import read_matrices
from repo_paths import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "benchmarks" / "bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_ark_is_read_back_by_kaldi_readers_and_the_streamed_source(tmp_path: Path) -> None:
    bench = _bench()
    corpus = bench.generate(tmp_path, 0.01)
    lengths = np.load(tmp_path / "lengths.npy")
    assert corpus.frames == int(lengths.sum()) == 3600
    matrices = dict(read_matrices(corpus.feats_scp))
    assert [len(matrices[u]) for u in bench.utt_ids(len(lengths))] == list(lengths)
    assert {m.shape[1] for m in matrices.values()} == {bench.DIMS}
    args = bench.parse(["--dir", str(tmp_path), "--hours", "0.01"])
    source = bench.data_source(corpus, bench.experiment(args, tmp_path / "out"), 2,
                               logging.getLogger("test"))
    chunk = source.read_chunk(source.utts)
    for utt, (first, n) in chunk.spans.items():
        np.testing.assert_array_equal(chunk.features["fmllr"][first:first + n].numpy(),
                                      matrices[utt])
    cd = np.load(tmp_path / "lab_cd.npy")
    assert np.array_equal(np.concatenate([source.labels["lab_cd"][u] for u in bench.utt_ids(len(lengths))]), cd)
    assert bench.generate(tmp_path, 0.01) == corpus  # reused, not rewritten


@pytest.mark.slow  # two child processes loading torch: about 20 s on 2 busy cores
def test_benchmark_runs_on_a_tiny_set(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    assert _bench().main(["--dir", str(tmp_path / "set"), "--hours", "0.01", "--batches", "1",
                          "--skip-contention", "--skip-distributed", "--skip-decoding",
                          "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["sections"]["data_loading"]["measured"]
    assert result["sections"]["training"]["measured"], result["sections"]["training"]
    assert result["sections"]["training"]["frames"] > 0
    assert set(result["goals"]) == {"training_peak_rss_bytes", "loading_vs_training"}
