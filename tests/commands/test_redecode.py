"""A finished run re-decodes and re-scores when only decoding keys change; training keys are
still refused."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from experiment_cfgs import ROOT, TINY, synth_cfg
from pytorch_kaldi_snn.train.loop import CHECKPOINT

pytestmark = pytest.mark.slow


def _run(cfg: Path, out: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    sets = TINY + ["exp.n_epochs_tr=1", f"exp.out_folder={out}", *extra]
    args = [arg for o in sets for arg in ("--set", o)]
    return subprocess.run([str(ROOT / "run_exp.sh"), str(cfg), *args], capture_output=True,
                          text=True, cwd=out.parent, env={**env, "OMP_NUM_THREADS": "1"})


def test_changing_acwt_on_a_finished_run_re_decodes_without_training(tiny_corpus, tmp_path,
                                                                      builtin_env):
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "exp"
    first = _run(cfg, out, builtin_env)
    assert first.returncode == 0, first.stderr[-2000:]
    checkpoint = (out / CHECKPOINT).stat().st_mtime_ns
    said = re.search(r"The log says which path ran at every step \(([^)]*)\)",
                     " ".join((ROOT / "README.md").read_text().split()))
    quoted = re.findall(r"`([^`]+)`", said.group(1))
    assert len(quoted) == 3 and all(line in (out / "log.log").read_text() for line in quoted)
    decoded = json.loads((out / "decode.json").read_text())
    assert decoded["metric"] == "PER" and len(decoded["sweep"]) == 10
    assert decoded["error_rate"] == min(row["error_rate"] for row in decoded["sweep"])
    # score.txt scores hyp.txt (the 1-best at acwt), score_best.txt hyp_best.txt (the figure)
    assert (out / "decode_test/score.txt").read_text().startswith(
        f"%WER {decoded['one_best_error_rate']:.2f} [")
    assert (out / "decode_test/score_best.txt").read_text().startswith(
        f"%WER {decoded['error_rate']:.2f} [ {decoded['ins'] + decoded['del'] + decoded['sub']} / ")

    again = _run(cfg, out, builtin_env, "decoding.acwt=0.05")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "epoch 1/1" not in again.stdout  # no training
    assert (out / CHECKPOINT).stat().st_mtime_ns == checkpoint
    redone = json.loads((out / "decode.json").read_text())
    assert redone["one_best_acwt"] == 0.05 and decoded["one_best_acwt"] == 0.2
    assert "acwt = 0.05" in (out / "resolved.cfg").read_text()
    results = json.loads((out / "results.json").read_text())
    assert results["per"] == round(redone["error_rate"], 2)
    before = json.loads((out / "results.superseded.json").read_text())  # nothing is lost
    assert before["decoding"]["one_best_acwt"] == 0.2

    # 1-best only, in 2 jobs: no lattices, so no sweep, and the results say what was scored
    fast = _run(cfg, out, builtin_env, "decoding.acwt=0.05", "decoding.save_lattices=False", "decoding.nj=2")
    assert fast.returncode == 0, fast.stderr[-2000:]
    one_best = json.loads((out / "decode.json").read_text())
    assert one_best["sweep"] == [] and one_best["best_lmwt"] is None
    assert one_best["error_rate"] == one_best["one_best_error_rate"] == redone["one_best_error_rate"]
    assert one_best["scored_on"] == "1-best at acwt 0.05 (save_lattices = False: no LM-weight sweep)"
    assert "no lattices, so no LM-weight sweep" in (out / "log.log").read_text()
    assert not list((out / "decode_test").glob("lat.*.gz"))
    assert not (out / "decode_test/score_best.txt").exists()  # no sweep: no best to score
    assert not (out / "decode_test/hyp_best.txt").exists()
    assert (out / "decode_test" / "num_jobs").read_text() == "2\n"

    refused = _run(cfg, out, builtin_env, "decoding.acwt=0.05", "architecture1.arch_lr=0.01")
    assert refused.returncode == 2
    assert "([architecture1] arch_lr differ)" in refused.stderr
