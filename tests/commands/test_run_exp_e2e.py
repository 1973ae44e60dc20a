"""End to end on the tiny built-in corpus: train, forward, decode, score, report."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from experiment_cfgs import ROOT, TINY, synth_cfg
from pytorch_kaldi_snn.io import read_matrices
from pytorch_kaldi_snn.report import RESULT_KEYS
from pytorch_kaldi_snn.pipeline.runner import run_experiment

pytestmark = pytest.mark.slow

MULTITASK = """model = out_rnn=compute(snn_layers,fbank)
\tout_cd=compute(readout_cd,out_rnn)
\tout_mono=compute(readout_mono,out_rnn)
\tloss_cd=cost_nll(out_cd,lab_cd)
\tloss_mono=cost_nll(out_mono,lab_mono)
\tloss_mono_w=mult_constant(loss_mono,0.5)
\tloss_final=sum(loss_cd,loss_mono_w)
\terr_final=cost_err(out_cd,lab_cd)
"""
MONO_READOUT = """[architecture3]
arch_name = readout_mono
arch_class = MLP
arch_seq_model = False
dnn_lay = N_out_lab_mono
dnn_act = softmax
arch_lr = 0.001
arch_opt = adam

[model]
"""


def _sets(overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def test_run_exp_sh_end_to_end(tiny_corpus: Path, tmp_path: Path, builtin_env: dict) -> None:
    """The built-in path (no Kaldi on PATH) from cfg to results."""
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "exp"
    env = {k: v for k, v in builtin_env.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run([str(ROOT / "run_exp.sh"), str(cfg), *_sets(TINY),
                           "--set", f"exp.out_folder={out}"], capture_output=True, text=True,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert set(RESULT_KEYS) <= set(results)
    assert results["arch"] == "ImprovedSNNv2" and results["decoder"] == "builtin"
    assert results["epochs"] == 2 and len(results["history"]) == 2
    assert 0.0 <= results["per"] <= 100.0 and 0.0 <= results["frame_acc"] <= 100.0
    spiking = [k for k in results["zero_outputs_pct_per_layer"] if "snn_layers" in k]
    assert len(spiking) == 2 and results["zero_outputs_pct"] > 0.0
    assert 0.0 < results["mults_vs_gru"] and results["mults_vs_lstm"] < results["mults_vs_gru"]
    assert results["params"] > 0 and results["wall_s"] > 0
    energy = results["energy"]  # the estimate from the test set's counters (report/energy.py)
    kinds = [row["kind"] for row in energy["activity"]]
    assert kinds == ["snn_v2"] * len(spiking) + ["mlp"] * (len(kinds) - len(spiking))
    assert energy["total"][0]["fp32_pj"] < energy["total"][2]["fp32_pj"]  # below the GRU's
    assert "### Energy per frame" in (out / "results.md").read_text()
    for name in ("results.md", "learning_curves.png", "sparsity_per_layer.png", "log.log",
                 "forward_test.ark", "checkpoint.pt", "resolved.cfg"):
        assert (out / name).is_file(), name
    log = (out / "log.log").read_text()
    assert "features: built-in pipe" in log and "native `ali-to-pdf`" in log
    assert "decoding: builtin decoder" in log
    assert "threads: 1 thread (OMP_NUM_THREADS), OMP_WAIT_POLICY=PASSIVE (set by " \
           "the runner)" in log  # the entry point's bootstrap ran before torch was imported
    # the ark holds log-likelihoods of every test utterance, one row per frame
    scores = dict(read_matrices(out / "forward_test.ark"))
    test_utts = (tiny_corpus / "data/test/text").read_text().split("\n")
    assert len(scores) == len([u for u in test_utts if u.strip()])
    assert all(np.isfinite(m).all() for m in scores.values())
    # rerunning a finished experiment does nothing but report
    again = subprocess.run([str(ROOT / "run_exp.sh"), str(cfg), *_sets(TINY),
                            "--set", f"exp.out_folder={out}"], capture_output=True, text=True,
                           cwd=tmp_path, env=env)
    assert again.returncode == 0 and "the experiment is complete" in again.stdout


def test_monophone_multitask_model_language(tiny_corpus: Path, tmp_path: Path) -> None:
    """PyTorch-Kaldi's lab_mono multitask: sum(loss_cd, mult_constant(loss_mono, 0.5))."""
    def edit(text: str) -> str:
        head, _, _ = text.partition("[model]\n")
        tail = text.split("\n[forward]", 1)[1]
        return head + MONO_READOUT + MULTITASK + "\n[forward]" + tail
    cfg = synth_cfg(tmp_path, tiny_corpus, text_edit=edit)
    results = run_experiment(cfg, TINY + ["exp.n_epochs_tr=1", f"exp.out_folder={tmp_path / 'o'}",
                                          "forward.require_decoding=False"])
    assert results["epochs"] == 1 and results["per"] is None and results["decoder"] == "none"
    assert any("readout_mono" in k for k in results["mults_per_frame_per_layer"])
    assert not any("readout" in k for k in results["zero_outputs_pct_per_layer"])
