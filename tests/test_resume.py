"""A run killed in the middle of training resumes and ends with the uninterrupted weights."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from experiment_cfgs import ROOT, TINY, synth_cfg
from pytorch_kaldi_snn.train.loop import CHECKPOINT, KILL_AFTER_BATCHES

pytestmark = pytest.mark.slow
SETTINGS = TINY + ["exp.n_epochs_tr=3", "forward.require_decoding=False"]


def _run(cfg: Path, out: Path, kill_after: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(KILL_AFTER_BATCHES, None)
    if kill_after:
        env[KILL_AFTER_BATCHES] = str(kill_after)
    args = [arg for o in SETTINGS + [f"exp.out_folder={out}"] for arg in ("--set", o)]
    return subprocess.run([str(ROOT / "run_exp.sh"), str(cfg), *args], capture_output=True,
                          text=True, cwd=out.parent, env=env)


def _weights(out: Path) -> dict:
    return torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)["model"]


def test_kill_mid_training_then_resume_gives_identical_weights(tiny_corpus: Path,
                                                               tmp_path: Path) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _run(cfg, straight).returncode == 0

    killed = _run(cfg, resumed, kill_after=8)  # epoch 1 has 6 batches: dies inside epoch 2
    assert killed.returncode == 137
    state = torch.load(resumed / CHECKPOINT, map_location="cpu", weights_only=False)
    assert len(state["history"]) == 1
    assert not (resumed / "results.json").exists()

    finished = _run(cfg, resumed)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "resuming after epoch 1" in finished.stdout
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra = json.loads((straight / "results.json").read_text())
    rb = json.loads((resumed / "results.json").read_text())
    for key in ("frame_acc", "zero_outputs_pct", "zero_outputs_pct_per_layer", "mults_per_frame"):
        assert ra[key] == rb[key], key
    assert [h["dev_err"] for h in ra["history"]] == [h["dev_err"] for h in rb["history"]]


def test_different_cfg_in_same_out_folder_is_refused(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "o"
    out.mkdir()
    (out / "resolved.cfg").write_text("[exp]\nsomething = else\n")
    done = _run(cfg, out)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {cfg}: [exp] out_folder: {out} holds a run of a "
                                  f"different cfg")
