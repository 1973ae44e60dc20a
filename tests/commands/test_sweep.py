"""A grid over snn_n_bits: every point runs once, a rerun resumes, and the Fig. 5 plot is drawn."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from experiment_cfgs import ROOT, TINY, synth_cfg
from readme_commands import as_run, readme_commands
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
    assert capsys.readouterr().err == ("sweep: grid point architecture1.snn_n_bits=0: "
                                       "[architecture1] snn_n_bits: "
                                       "snn_n_bits = 0 is below the minimum 1\n")
    assert not out.exists()


def test_a_point_the_cfg_does_not_admit_is_named_as_the_grid_point(
        tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The cfg (threshold 4) is valid; 1 bit is not, with that threshold: blame the point."""
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "sweep"
    assert main([str(cfg), "--out", str(out), "--grid", "architecture1.snn_n_bits=6:1"]) == 2
    assert capsys.readouterr().err == (
        "sweep: grid point architecture1.snn_n_bits=1: [architecture1] snn_threshold: "
        "snn_threshold = 4 is above 2^N - 1 = 1 for snn_n_bits = 1; --set "
        "architecture1.snn_threshold to a value every grid point admits, or drop this point "
        "from the grid\n")
    assert not out.exists()


def test_a_fault_of_the_cfg_itself_still_names_the_file(
        tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    assert main([str(cfg), "--out", str(tmp_path / "sweep"), "--grid",
                 "architecture1.snn_n_bits=3:6", "--set", "architecture1.snn_drop=x"]) == 2
    assert capsys.readouterr().err == (f"sweep: {cfg}: [architecture1] snn_drop: "
                                       "snn_drop = 'x' is not a number\n")


def _readme_sweep_command() -> str:
    commands = [c for c in readme_commands() if c.startswith("python -m pytorch_kaldi_snn.sweep ")]
    assert len(commands) == 1, commands
    return commands[0]


def test_the_readme_sweep_command_runs_as_written(tiny_corpus: Path, tmp_path: Path,
                                                  builtin_env: dict) -> None:
    """From a folder laid out as a user's checkout (cfg/ as shipped, recipes/synth built), the
    README's command with only scale settings appended runs every point and draws the plot."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg/synth_snn_v2.cfg").write_text((ROOT / "cfg/synth_snn_v2.cfg").read_text())
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes/synth").symlink_to(tiny_corpus)
    command = as_run(_readme_sweep_command())  # the README's, with the table's scale appended
    env = {**builtin_env, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "exp/sweep_bits"
    rows = json.loads((out / "sweep.json").read_text())
    assert [r["point"]["architecture1.snn_n_bits"] for r in rows] == ["1", "2", "3", "6"]
    assert (out / "accuracy_vs_precision.png").is_file()
