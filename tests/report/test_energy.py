"""The energy estimate (report/energy.py): counts by hand, activity from a model's counters,
the results file's section and the command line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from experiment_cfgs import ROOT
from pytorch_kaldi_snn.layers import spiking_stack
from pytorch_kaldi_snn.layers.baselines import MLP
from pytorch_kaldi_snn.layers.cost import reset_counters
from pytorch_kaldi_snn.report import energy
from pytorch_kaldi_snn.report import energy_model
from pytorch_kaldi_snn.report.energy_model import Constants, LayerActivity, Ops, estimate, model_ops
from pytorch_kaldi_snn.report.results import write_results


def test_binary_inputs_accumulate_and_multi_bit_inputs_multiply():
    lif = LayerActivity("l", "snn_traditional", 4, 3, 0.5, 0.25, True, True)
    # 1·s·m·n = 6 synaptic ops as accumulates, each a weight read; Eq. 10's n + 3n multiplies
    assert model_ops(lif) == Ops(acc=6, mac=0, mult=12, add=9, reads=6)
    fp32 = 6 * 0.9 + 12 * 3.7 + 9 * 0.9 + 6 * 5.0
    assert model_ops(lif).energy_pj(Constants(), "fp32") == pytest.approx(fp32)
    v2 = LayerActivity("l", "snn_v2", 4, 3, 0.5, 0.25, False, False)
    # 2·s·m·n = 12 input products and 2·r·n·n = 4.5 recurrent ones, all q·Δ multiplies
    assert model_ops(v2) == Ops(acc=0, mac=16.5, mult=15, add=9, reads=16.5)
    lstm = energy_model.reference_ops(v2, "lstm")
    assert lstm == Ops(mac=4 * 7 * 3, reads=4 * 7 * 3, mult=9, add=9)
    readout = LayerActivity("r", "mlp", 3, 5, 0.25, 1.0, True, False)
    assert model_ops(readout) == Ops(acc=3.75, reads=3.75)
    assert energy_model.reference_ops(readout, "gru") == Ops(mac=15, reads=15)


def _counted_model(n_bits: int) -> nn.Sequential:
    torch.manual_seed(0)
    stack = spiking_stack("traditional", 6, [5, 4], n_bits=[n_bits] * 2, thresholds=[1, 1],
                          betas=[0.5] * 2, batchnorms=[False] * 2)
    model = nn.Sequential(*stack, MLP(4, [3], acts=["softmax"], dropouts=[0.0],
                                      batchnorms=[False], layernorms=[False]))
    model.eval()
    reset_counters(model)
    with torch.no_grad():
        model(torch.randn(30, 2, 6) * 3)
    return model


def test_activity_reads_the_counters_and_knows_binary_inputs():
    model = _counted_model(1)
    rows = energy_model.activity(model)
    assert [r.kind for r in rows] == ["snn_traditional", "snn_traditional", "mlp"]
    assert [(r.binary_input, r.binary_output) for r in rows] == [
        (False, True), (True, True), (True, False)]
    assert rows[1].s == pytest.approx(rows[0].r) and 0.0 < rows[0].r < 1.0
    multi = energy_model.activity(_counted_model(3))
    assert not any(r.binary_input for r in multi)


def test_estimate_totals_are_the_sum_of_the_layers_and_constants_override():
    layers = energy_model.activity(_counted_model(1))
    section = estimate(layers)
    this, lstm, gru = section["total"]
    assert this["fp32_pj"] == pytest.approx(
        sum(layer["rows"][0]["fp32_pj"] for layer in section["per_layer"]), abs=0.5)
    assert this["mac"] == pytest.approx(6 * 5 * layers[0].s, abs=0.1)  # only the features multiply
    assert this["fp32_pj"] < gru["fp32_pj"] < lstm["fp32_pj"]
    dearer = estimate(layers, Constants(fp32_read=100.0))["total"]
    assert dearer[1]["fp32_pj"] - lstm["fp32_pj"] == pytest.approx(95.0 * lstm["reads"], rel=1e-3)


def test_study_table_prices_the_2x550_models_at_the_quoted_sparsity():
    table = energy.study_table(energy.quoted_models())
    lstm_ops = 4 * (40 + 550) * 550 + 4 * 1100 * 550 + 550 * 117
    lstm_pj = lstm_ops * (4.6 + 5.0) + 2 * 3 * 550 * (3.7 + 0.9)
    assert f"| lstm | 0.00 | {lstm_pj:.0f} |" in table
    v2 = estimate(energy.study_activity("v2"))["total"][0]
    r = 1 - 73.15 / 100
    assert v2["mac"] == pytest.approx(2 * 40 * 550 + 2 * r * 550 * 550 * 2 + 2 * r * 550 * 550
                                      + r * 550 * 117, rel=1e-4)
    assert "| v2 | 73.15 |" in table and table.rstrip().endswith("| 0.08 |")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytorch_kaldi_snn.report.energy", *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_command_recomputes_a_finished_run_with_other_constants(tmp_path: Path):
    section = energy_model.from_model(_counted_model(1))
    write_results(tmp_path, {"arch": "TraditionalSNN", "per": 20.0, "frame_acc": 50.0,
                             "zero_outputs_pct": 70.0, "zero_outputs_pct_per_layer": {},
                             "mults_per_frame": 10.0, "mults_vs_lstm": 0.1,
                             "mults_vs_gru": 0.2, "params": 10, "decoder": "builtin",
                             "epochs": 1, "wall_s": 1.0, "energy": section})
    assert "### Energy per frame" in (tmp_path / "results.md").read_text()
    plain = _run(str(tmp_path))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[0] == "### Energy per frame"
    lstm = section["total"][1]
    dear = _run(str(tmp_path), "--pj", "fp32_read=100")
    row = next(line for line in dear.stdout.splitlines() if line.startswith("| all | lstm |"))
    assert row.split("|")[8].strip() == f"{lstm['fp32_pj'] + 95 * lstm['reads']:.0f}"
    assert json.loads((tmp_path / "results.json").read_text())["energy"] == section


def test_command_refuses_bad_input_in_one_line(tmp_path: Path):
    bad = _run(str(tmp_path), "--pj", "fp64_mac=1")
    assert bad.returncode == 2
    assert bad.stderr == ("energy: --pj fp64_mac=1: unknown constant (known: fp32_mac, fp32_mult, "
                          "fp32_add, int8_mac, int8_mult, int8_add, fp32_read, int8_read)\n")
    missing = _run(str(tmp_path))
    assert missing.stderr == (f"energy: {tmp_path / 'results.json'}: missing: not a finished "
                              "experiment folder (run ./run_exp.sh first)\n")
    (tmp_path / "results.json").write_text('{"arch": "x"}')
    old = _run(str(tmp_path))
    assert old.returncode == 2 and old.stderr == (
        f"energy: {tmp_path / 'results.json'}: has no energy section (written before energy "
        "estimates, or edited); rerun the experiment\n")
    assert _run(str(tmp_path), "--pj", "int8_add=-1").stderr == (
        "energy: --pj int8_add=-1: an energy cannot be negative\n")


def _study_run(out: Path, point: str, zeros_pct: float, layers) -> None:
    run = out / "table1" / point / "seed0"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"zero_outputs_pct": zeros_pct,
                                                  "energy": estimate(layers)}))


def test_study_dir_prices_the_trained_runs_at_their_measured_activity(tmp_path: Path, capsys):
    measured = {"v2": [LayerActivity("layer 1", "snn_v2", 40, 550, 1.0, 0.3, False, False),
                       LayerActivity("layer 2", "snn_v2", 550, 550, 0.3, 0.2, False, False),
                       LayerActivity("readout", "mlp", 550, 117, 0.2, 1.0, False, False)],
                "v1": [LayerActivity("layer 1", "snn_v1", 40, 550, 1.0, 0.4, False, False),
                       LayerActivity("layer 2", "snn_v1", 550, 550, 0.4, 0.4, False, False),
                       LayerActivity("readout", "mlp", 550, 117, 0.4, 1.0, False, False)]}
    _study_run(tmp_path, "v2_N6_k4_h550", 75.0, measured["v2"])
    _study_run(tmp_path, "v1_N6_k4_h550", 60.0, measured["v1"])
    (tmp_path / "table1" / "traditional_N6_k4_h550" / "seed0").mkdir(parents=True)  # unfinished
    assert energy.main(["--study-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert list(rows) == ["lstm", "gru", "v1", "v2"]
    v2 = estimate(measured["v2"])
    lstm = v2["total"][1]
    assert rows["v2"] == (f"| v2 | 75.00 | {v2['total'][0]['fp32_pj']:.0f} "
                          f"| {v2['total'][0]['int8_pj']:.0f} "
                          f"| {v2['total'][0]['fp32_pj'] / lstm['fp32_pj']:.3f} "
                          f"| {v2['total'][0]['int8_pj'] / lstm['int8_pj']:.3f} "
                          f"| {v2['break_even_nonzero_pct']:.1f} | 0.08 |")
    # the quoted sparsities (--study) give other figures: these come from the runs
    assert rows["v2"] not in energy.study_table(energy.quoted_models())


def test_study_dir_without_finished_runs_is_one_line(tmp_path: Path, capsys):
    assert energy.main(["--study-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"energy: {tmp_path}: holds no finished spiking run of table1 (table1/<arch>_N*/seed0/"
        "results.json): not the --out of `python -m pytorch_kaldi_snn.study table1`?\n")
