"""``study table1`` end to end at tiny scale: five architectures, Table 1's columns, resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytorch_kaldi_snn.study import ARCHS, main, study_points

pytestmark = pytest.mark.slow

TINY = ["--seeds", "1", "--hidden", "16", "--epochs", "1",
        "--set", "batches.max_seq_length_train=100", "--set", "batches.start_seq_len_train=50",
        "--set", "batches.batch_size_train=8", "--set", "forward.require_decoding=False"]


def test_table1_runs_every_architecture_writes_the_table_and_resumes(
        tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "study"
    args = ["table1", "--corpus", str(tiny_corpus), "--out", str(out), *TINY]
    assert main(args) == 0
    rows = json.loads((out / "table1.json").read_text())
    assert [row["arch"] for row in rows] == list(ARCHS)
    by_arch = {row["arch"]: row for row in rows}
    assert by_arch["lstm"]["mults_vs_lstm"] == pytest.approx(1.0)
    for arch in ("traditional", "v1", "v2"):
        assert by_arch[arch]["zero_outputs_pct"] > 0.0
        assert by_arch[arch]["mults_vs_lstm"] < 1.0
    table = (out / "table1.md").read_text().splitlines()
    assert table[2].startswith("| lstm | full | - | - |")
    assert table[-1].startswith("| v2 | 6-bit | b/16")
    assert (out / "table1" / "v2_N6_k4_h16" / "seed0" / "results.json").is_file()
    capsys.readouterr()
    assert main(args) == 0  # rerun: every run is complete, nothing retrains
    rerun = capsys.readouterr()
    assert "epoch 1/1" not in rerun.out + rerun.err
    assert json.loads((out / "table1.json").read_text()) == rows


def test_fig5_grids_follow_the_paper() -> None:
    fig5a = study_points("fig5a", 550)
    assert [(p.n_bits, p.k) for p in fig5a] == [(1, 1), (2, 1), (3, 1), (4, 1), (6, 1)]
    assert {p.hidden for p in study_points("fig5b", 550)} == {550, 825, 1100, 1650}


def test_bad_corpus_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["table1", "--corpus", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: --corpus ")
