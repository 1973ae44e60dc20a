"""A grid over snn_n_bits: every point runs once, a rerun resumes, and the Fig. 5 plot is drawn."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiment_cfgs import TINY, synth_cfg
from pytorch_kaldi_snn.sweep import main

pytestmark = pytest.mark.slow


def test_sweep_runs_points_and_resumes(tiny_corpus: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "sweep"
    fixed = TINY + ["exp.n_epochs_tr=1", "forward.require_decoding=False",
                    "architecture1.snn_threshold=1"]
    args = [str(cfg), "--out", str(out), "--grid", "architecture1.snn_n_bits=1:3",
            *[arg for o in fixed for arg in ("--set", o)]]
    assert main(args) == 0
    rows = json.loads((out / "sweep.json").read_text())
    assert [r["point"] for r in rows] == [{"architecture1.snn_n_bits": "1"},
                                          {"architecture1.snn_n_bits": "3"}]
    assert (out / "accuracy_vs_precision.png").is_file()
    assert (out / "snn_n_bits=3" / "results.json").is_file()
    capsys.readouterr()
    assert main(args) == 0  # rerun: both points are complete and only reported
    assert json.loads((out / "sweep.json").read_text()) == rows


def test_sweep_validates_every_point_first(tiny_corpus: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "sweep"
    code = main([str(cfg), "--out", str(out), "--grid", "architecture1.snn_n_bits=2:0",
                 "--set", "architecture1.snn_threshold=1"])
    assert code == 2
    assert capsys.readouterr().err == (f"error: {cfg}: [architecture1] snn_n_bits: "
                                       f"snn_n_bits = 0 is below the minimum 1\n")
    assert not out.exists()
