"""``study`` end to end at tiny scale (Table 1's columns, resume, a failed point that does not
stop the grid) and the grids of Fig. 5."""
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Tuple

import pytest
import torch
from torch import nn

from pytorch_kaldi_snn import study
from pytorch_kaldi_snn.config.experiment import load_experiment
from pytorch_kaldi_snn.study import ARCHS, main, study_points
from pytorch_kaldi_snn.threads import available_cpus, user_threads
from pytorch_kaldi_snn.train import guards

TINY = ["--seeds", "1", "--hidden", "16", "--epochs", "1",
        "--set", "batches.max_seq_length_train=100", "--set", "batches.start_seq_len_train=50",
        "--set", "batches.batch_size_train=8", "--set", "forward.require_decoding=False"]


def log_span(log: Path) -> Tuple[datetime, datetime]:
    """The first and last timestamps of a run's ``log.log``."""
    stamps = [datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
              for line in log.read_text().splitlines() if line[:4].isdigit()]
    return stamps[0], stamps[-1]


@pytest.mark.slow
def test_table1_runs_every_architecture_two_at_once_writes_the_table_and_resumes(
        tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "study"
    args = ["table1", "--corpus", str(tiny_corpus), "--out", str(out), *TINY]
    assert main([*args, "--jobs", "2"]) == 0
    threads = user_threads() or max(1, available_cpus() // 2)
    console = capsys.readouterr().out
    assert f"study: 2 runs at once, {threads} thread(s) each" in console
    started = [line.split()[1] for line in console.splitlines() if line.endswith(".console.log)")]
    assert started == ["lstm_h16", "gru_h16", "v2_N6_k4_h16", "v1_N6_k4_h16",
                       "traditional_N6_k4_h16"]  # the costliest first
    runs = {arch: out / "table1" / point.name / "seed0"
            for arch, point in zip(ARCHS, study_points("table1", 16))}
    for run in runs.values():  # each in its own process at its share of the cores
        assert f"threads: {threads} thread" in (run / "log.log").read_text()
        assert "done: " in run.with_name("seed0.console.log").read_text()
    (lstm_start, lstm_end), (gru_start, gru_end) = (log_span(runs[a] / "log.log")
                                                    for a in ("lstm", "gru"))
    assert lstm_start < gru_end and gru_start < lstm_end  # the first two ran at the same time
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
    assert "±" not in "\n".join(table) and by_arch["v2"]["frame_acc_std"] is None  # one seed
    assert (out / "table1" / "v2_N6_k4_h16" / "seed0" / "results.json").is_file()
    assert main(args) == 0  # rerun, in this process: every run is complete, nothing retrains
    rerun = capsys.readouterr()
    assert "epoch 1/1" not in rerun.out + rerun.err
    assert json.loads((out / "table1.json").read_text()) == rows


def test_the_corpus_recipe_is_logged_as_a_run_logs_it(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """The recipe's kaldilm lines (``[I] Reading \\data\\ section.``) were printed bare on the
    console; as in run_exp they go to OUT/log.log only, the recipe's own lines to both with
    the study's timestamp in place of the recipe's."""
    (tmp_path / "corpus" / "data").mkdir(parents=True)
    recipe = tmp_path / "recipe.sh"
    recipe.write_text('echo "2026-01-01 00:00:00 (run.sh:80) Stage 4: G.fst"\n'
                      'echo "[I] Reading \\\\data\\\\ section." >&2\n')
    cfg = study.corpus_cfg("v2", str(tmp_path / "corpus"), tmp_path / "cfg")
    exp = load_experiment(cfg, [f"exp.prepare=bash {recipe}",
                                f"exp.out_folder={tmp_path / 'check'}"])
    study.prepare_corpus(exp, tmp_path / "out")
    console = capsys.readouterr()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    assert console.err == "" and len(console.out.splitlines()) == 2
    assert re.fullmatch(stamp + r".* is missing: preparing the data with `bash .*recipe.sh` "
                        r"\(a few minutes\)", console.out.splitlines()[0])
    assert re.fullmatch(stamp + r"\(run.sh:80\) Stage 4: G.fst", console.out.splitlines()[1])
    logged = (tmp_path / "out" / "log.log").read_text().splitlines()
    assert logged[:2] == console.out.splitlines()
    assert len(logged) == 3
    assert re.fullmatch(stamp + r"kaldi: \[I\] Reading \\data\\ section\.", logged[2])


def test_fig5_grids_follow_the_paper() -> None:
    fig5a = study_points("fig5a", 550)
    assert [(p.n_bits, p.k) for p in fig5a] == [(1, 1), (2, 1), (3, 1), (4, 1), (6, 1)]
    assert {p.hidden for p in study_points("fig5b", 550)} == {550, 825, 1100, 1650}
    widest_first = sorted(study_points("fig5b", 550), key=study.training_cost, reverse=True)
    assert [p.hidden for p in widest_first] == [1650] * 3 + [1100] * 3 + [825] * 3 + [550] * 3


def test_bad_corpus_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["table1", "--corpus", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: --corpus ")


@pytest.mark.slow
def test_a_diverging_point_is_recorded_the_grid_goes_on_and_a_rerun_retries_only_it(
        tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """The 1-bit point "diverges" (its gradients read as NaN, as at N = 1 on the default corpus
    at 128 units); the four others finish, the JSON/table/plot name the failure, exit 1."""
    real = guards.after_backward

    def nan_at_one_bit(model: nn.Module) -> guards.Finite:
        if any(getattr(m, "n_bits", None) == 1 for m in model.modules()):
            return guards.Finite(("gradient of nets.snn_layers.net.0.w_rec",),
                                 torch.tensor([False]))
        return real(model)

    monkeypatch.setattr(guards, "after_backward", nan_at_one_bit)
    out = tmp_path / "study"
    args = ["fig5a", "--corpus", str(tiny_corpus), "--out", str(out), *TINY]
    assert main(args) == study.FAILED_EXIT
    captured = capsys.readouterr()
    assert "error: 1 of 5 points failed (v2_N1_k1_h16)" in captured.err
    rows = {row["n_bits"]: row for row in json.loads((out / "fig5a.json").read_text())}
    assert rows[1]["seeds"] == 0 and rows[1]["frame_acc"] is None
    assert rows[1]["failed"] == [
        "seed0: training diverged at epoch 1, batch 1: gradient of nets.snn_layers.net.0.w_rec "
        "is not finite (NaN/Inf); no checkpoint was written, no results written. Lower arch_lr, "
        "check the features, or set [exp] on_nonfinite = skip to skip such batches"]
    assert all(rows[n]["seeds"] == 1 and not rows[n]["failed"] for n in (2, 3, 4, 6))
    table = (out / "fig5a.md").read_text()
    assert "| 1 | b/2 | 16 | failed | failed | failed | 8.8 |" in table
    assert "- v2_N1_k1_h16 seed0: training diverged at epoch 1, batch 1" in table
    assert (out / "fig5a.png").stat().st_size > 0

    monkeypatch.setattr(guards, "after_backward", real)
    assert main(args) == 0  # the rerun trains the failed point only
    rerun = capsys.readouterr()
    assert (rerun.out + rerun.err).count("epoch 1/1:") == 1
    rows = {row["n_bits"]: row for row in json.loads((out / "fig5a.json").read_text())}
    assert all(row["seeds"] == 1 and not row["failed"] for row in rows.values())


def test_failed_points_summarise_the_finished_seeds_and_list_the_others() -> None:
    point = study.Point("v2", 1, 1, 8)
    done = {"frame_acc": 40.0, "zero_outputs_pct": 90.0, "mults_vs_lstm": 0.1, "params": 100,
            "per": 70.0}
    row = study.summarise(point, [done], ["seed1: training diverged at epoch 3, batch 1: x"])
    assert (row["seeds"], row["frame_acc"], row["accuracy"]) == (1, 40.0, 30.0)
    assert row["failed"] == ["seed1: training diverged at epoch 3, batch 1: x"]
    none = study.summarise(point, [], ["seed0: y"])
    assert none["frame_acc"] is None and none["metric"] == "PER"
    table = study.fig5_markdown([row, none])
    assert "| 1 | b/2 | 8 | failed | failed | failed | 8.8 |" in table
    assert table.endswith("failed runs:\n\n- v2_N1_k1_h8 seed1: training diverged at epoch 3, "
                          "batch 1: x\n- v2_N1_k1_h8 seed0: y\n")
    assert "failed runs" not in study.fig5_markdown([study.summarise(point, [done])])


def test_one_seed_reports_no_spread_and_two_seeds_do(tmp_path: Path) -> None:
    point = study.Point("v2", 3, 1, 8)
    runs = [{"frame_acc": acc, "zero_outputs_pct": 80.0, "mults_vs_lstm": 0.1, "params": 100,
             "per": per} for acc, per in ((40.0, 70.0), (44.0, 66.0))]
    one, two = study.summarise(point, runs[:1]), study.summarise(point, runs)
    assert (one["frame_acc_std"], one["error_rate_std"]) == (None, None)
    assert two["frame_acc_std"] == pytest.approx(2.828, abs=1e-3)
    table = study.fig5_markdown([one, two]).splitlines()
    assert table[2] == "| 3 | b/8 | 8 | 30.00 | 40.00 | 80.00 | 70.0 |"
    assert table[3] == "| 3 | b/8 | 8 | 32.00 ± 2.83 | 42.00 ± 2.83 | 80.00 ± 0.00 | 70.0 |"
    wide = study.summarise(study.Point("v2", 3, 1, 16), runs[:1])
    study.plot_fig5([one, two, wide], tmp_path / "fig5.png")  # one-seed points: no error bar
    assert (tmp_path / "fig5.png").stat().st_size > 0
