"""A run killed in the middle of training resumes and ends with the uninterrupted weights."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List, Sequence

import pytest
import torch

from experiment_cfgs import ROOT, TINY, synth_cfg
from pytorch_kaldi_snn.train.loop import CHECKPOINT

pytestmark = pytest.mark.slow
SETTINGS = TINY + ["exp.n_epochs_tr=3", "forward.require_decoding=False"]
# Streamed in chunks (data/streamed.py), the next one read by a background worker.
CHUNKED = [f"dataset{i}.n_chunks=2" for i in (1, 2, 3)] + ["exp.data_workers=1"]


def _command(cfg: Path, out: Path, extra: Sequence[str] = ()) -> list:
    args = [arg for o in [*SETTINGS, *extra, f"exp.out_folder={out}"] for arg in ("--set", o)]
    return [str(ROOT / "run_exp.sh"), str(cfg), *args]


def _run(cfg: Path, out: Path, extra: Sequence[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(_command(cfg, out, extra), capture_output=True, text=True,
                          cwd=out.parent, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _kill_when_logged(cfg: Path, out: Path, line: str, extra: Sequence[str] = ()) -> int:
    """Start a run and SIGKILL it as soon as its log shows ``line``; returns the exit status."""
    proc = subprocess.Popen(_command(cfg, out, extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=out.parent,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = out / "log.log"
    while proc.poll() is None:
        if log.exists() and line in log.read_text():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    return proc.wait()


def _weights(out: Path) -> dict:
    return torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)["model"]


@pytest.mark.parametrize("extra", [[], CHUNKED], ids=["one_chunk", "two_chunks_one_worker"])
def test_kill_mid_training_then_resume_gives_identical_weights(tiny_corpus: Path, tmp_path: Path,
                                                               extra: List[str]) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _run(cfg, straight, extra).returncode == 0
    assert ("read in 2 chunks" in (straight / "log.log").read_text()) == bool(extra)

    # Killed from outside right after epoch 1 is logged: inside epoch 2 (of 3, 6 batches each).
    assert _kill_when_logged(cfg, resumed, "epoch 1/3:", extra) == -signal.SIGKILL
    state = torch.load(resumed / CHECKPOINT, map_location="cpu", weights_only=False)
    done = len(state["history"])
    assert done in (1, 2)  # the kill lands before epoch 3 starts logging
    assert not (resumed / "results.json").exists()

    finished = _run(cfg, resumed, extra)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"resuming after epoch {done}" in finished.stdout
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
