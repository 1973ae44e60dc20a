"""report/study_layout.py: the study's folders are named in one place, for the study that writes
them and for ``report.energy --study-dir`` that reads them back."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytorch_kaldi_snn import study
from pytorch_kaldi_snn.report import energy
from pytorch_kaldi_snn.report.energy_model import LayerActivity, estimate
from pytorch_kaldi_snn.report.study_layout import (
    STUDIES, arch_of, console_log, finished_runs, seed_folder)


@pytest.mark.parametrize("name", STUDIES)
def test_every_point_the_study_names_reads_back_to_its_arch(name):
    points = study.study_points(name, 550)
    assert points and all(arch_of(point.name) == point.arch for point in points)


@pytest.mark.parametrize("folder", ["v2_h550", "lstm_N6_k4_h550", "v2_N6_k4", "v2_N6_k4_h550.bak",
                                    "V2_N6_k4_h550", "cfg", "check"])
def test_a_folder_the_study_did_not_name_has_no_arch(folder):
    assert arch_of(folder) is None


def test_seed_folders_and_console_logs_are_where_the_study_put_them(tmp_path: Path):
    assert seed_folder(tmp_path, "table1", "v2_N6_k4_h16", 2) == \
        tmp_path / "table1/v2_N6_k4_h16/seed2"
    assert console_log(tmp_path, "fig5a", "v2_N1_k1_h16", 0) == \
        tmp_path / "fig5a/v2_N1_k1_h16/seed0.console.log"


def _finish(run: Path, zeros_pct: float = 70.0) -> None:
    layers = [LayerActivity("layer 1", "snn_v2", 40, 550, 1.0, 0.3, False, False),
              LayerActivity("readout", "mlp", 550, 117, 0.3, 1.0, False, False)]
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"zero_outputs_pct": zeros_pct,
                                                  "energy": estimate(layers)}))


def test_finished_runs_are_the_seed_folders_with_results_of_study_named_points(tmp_path: Path):
    points = {p.arch: p.name for p in study.study_points("table1", 16)}
    for arch in ("v2", "lstm"):
        _finish(seed_folder(tmp_path, "table1", points[arch], 0))
    _finish(seed_folder(tmp_path, "table1", points["v1"], 1))  # another seed only
    seed_folder(tmp_path, "table1", points["traditional"], 0).mkdir(parents=True)  # unfinished
    _finish(tmp_path / "table1" / f"{points['v2']}.bak" / "seed0")  # a user's copy
    assert finished_runs(tmp_path, "table1", 0) == {
        "lstm": [tmp_path / "table1/lstm_h16/seed0"],
        "v2": [tmp_path / "table1/v2_N6_k4_h16/seed0"]}
    assert finished_runs(tmp_path, "fig5a", 0) == {}


def test_study_dir_rows_take_the_arch_from_the_folder_not_the_label(tmp_path: Path, capsys):
    """Two v2 points are labelled by their folders and both compared with the paper's v2 row;
    a copied folder the study did not name is not priced."""
    for bits, zeros in ((6, 75.0), (3, 65.0)):
        _finish(seed_folder(tmp_path, "table1", study.Point("v2", bits, 4, 550).name, 0), zeros)
    _finish(tmp_path / "table1" / "v2_N6_k4_h550.bak" / "seed0", 99.0)
    models = energy.trained_models(tmp_path)
    assert {label: (m.arch, m.zeros_pct) for label, m in models.items()} == {
        "v2 (v2_N3_k4_h550)": ("v2", 65.0), "v2 (v2_N6_k4_h550)": ("v2", 75.0)}
    rows = energy.study_table(models).splitlines()[4:]
    assert [row.split("|")[1].strip() for row in rows] == list(models)
    assert all(row.endswith("| 0.08 |") for row in rows)
