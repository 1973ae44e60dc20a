"""Mid-epoch checkpoints (train/progress.py): written every N batches or M minutes, resumed at
the batch after them, and a run killed inside an epoch ends bit for bit as an uninterrupted one."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from dying_run import DIED
from experiment_cfgs import ROOT, TINY, fake_corpus, synth_cfg
from pytorch_kaldi_snn import run_exp
from pytorch_kaldi_snn.config.experiment import load_experiment
from pytorch_kaldi_snn.config.resolved import same_results, training_differences
from pytorch_kaldi_snn.train import progress
from pytorch_kaldi_snn.train.loop import CHECKPOINT
from pytorch_kaldi_snn.train.progress import CheckpointTrigger
from repo_paths import SUPPORT

QUICK = TINY + ["forward.require_decoding=False"]
DYING_RUN = SUPPORT / "dying_run.py"


def _sets(out: Path, extra: List[str]) -> List[str]:
    return [a for o in QUICK + [f"exp.out_folder={out}"] + extra for a in ("--set", o)]


class _Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- the trigger ------------------------------------------------------------------------------

def test_batches_trigger_fires_at_multiples_within_the_epoch() -> None:
    trigger = CheckpointTrigger(every_batches=3, every_minutes=0)
    assert [b for b in range(1, 11) if trigger.due(b)] == [3, 6, 9]
    assert not any(CheckpointTrigger(0, 0).due(b) for b in range(1, 11))


def test_minutes_trigger_counts_from_the_last_checkpoint(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(progress, "now", clock)
    trigger = CheckpointTrigger(every_batches=0, every_minutes=1.5)
    clock.t += 89.9
    assert not trigger.due(1)
    clock.t += 0.1
    assert trigger.due(2)
    trigger.written()
    clock.t += 60
    assert not trigger.due(3)
    clock.t += 30
    assert trigger.due(4)


def test_minutes_trigger_writes_checkpoints_inside_a_real_epoch(tiny_corpus: Path, tmp_path: Path,
                                                                monkeypatch, capsys) -> None:
    """The clock advances 61 s each time the trigger reads it: with checkpoint_every_minutes = 1
    every batch of the epoch is followed by a checkpoint, without waiting a minute."""
    clock = _Clock()

    def ticking() -> float:
        clock.t += 61
        return clock.t
    monkeypatch.setattr(progress, "now", ticking)
    cfg, out = synth_cfg(tmp_path, tiny_corpus), tmp_path / "out"
    rc = run_exp.main([str(cfg), *_sets(out, ["exp.n_epochs_tr=1",
                                              "exp.checkpoint_every_minutes=1"])])
    assert (rc, capsys.readouterr().err) == (0, "")
    log = (out / "log.log").read_text()
    written = [int(b) for b in re.findall(r"checkpoint: epoch 1, batch (\d+) -> ", log)]
    assert written == list(range(1, len(written) + 1)) and len(written) >= 5
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    assert state["progress"] is None and len(state["history"]) == 1  # the epoch's end is last

    # another interval on the finished run: complete, nothing forwarded or decoded again
    rc = run_exp.main([str(cfg), *_sets(out, ["exp.n_epochs_tr=1",
                                              "exp.checkpoint_every_batches=4"])])
    assert (rc, capsys.readouterr().err) == (0, "")
    assert (out / "log.log").read_text().endswith("exists: the experiment is complete\n")


# -- cfg ----------------------------------------------------------------------------------------

def test_checkpoint_interval_is_not_training_relevant(tmp_path: Path) -> None:
    """A run may be resumed with another interval (or none): the keys decide neither the weights
    nor the results."""
    corpus = fake_corpus(tmp_path / "corpus")
    cfg = synth_cfg(tmp_path, corpus)
    plain = load_experiment(cfg).cfg_text
    assert "checkpoint_every_batches = 0" in plain and "checkpoint_every_minutes = 0.0" in plain
    often = load_experiment(cfg, ["exp.checkpoint_every_batches=5",
                                  "exp.checkpoint_every_minutes=30"]).cfg_text
    assert training_differences(plain, often) == []
    reseeded = load_experiment(cfg, ["exp.seed=7"]).cfg_text
    assert training_differences(plain, reseeded) == [("exp", "seed", "1234", "7")]
    assert same_results(plain, often)
    older = "\n".join(l for l in plain.splitlines() if not l.startswith("checkpoint_every_"))
    assert same_results(older, plain)  # a resolved.cfg written before the keys existed
    assert not same_results(plain, load_experiment(cfg, ["decoding.acwt=0.3"]).cfg_text)


# -- kill inside an epoch, resume, compare ------------------------------------------------------

def _dying(cfg: Path, out: Path, die_at: int, extra: List[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(DYING_RUN), str(die_at), str(cfg),
                           *_sets(out, ["exp.n_epochs_tr=3", *extra])],
                          capture_output=True, text=True, env=env, cwd=out.parent)


def _batches_run(done: subprocess.CompletedProcess) -> int:
    return int(re.search(r"training batches run: (\d+)", done.stdout).group(1))


def _progress(out: Path) -> Dict[str, int]:
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    return {"epochs_done": len(state["history"]), "epoch": state["progress"]["epoch"],
            "batch": state["progress"]["batch"]}


def _digest(value: object) -> object:
    """``value`` with every tensor replaced by the sha256 of its bytes (exact comparison)."""
    if isinstance(value, torch.Tensor):
        return hashlib.sha256(value.cpu().numpy().tobytes()).hexdigest()
    if isinstance(value, dict):
        return {k: _digest(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_digest(v) for v in value]
    return value


def _outcome(out: Path) -> Dict[str, object]:
    """Everything a finished run leaves that must not depend on interruptions."""
    results = json.loads((out / "results.json").read_text())
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    return {
        "weights": _digest(state["model"]),
        "optimizers": _digest(state["optimizers"]),
        "schedulers": state["schedulers"],
        "history": [{k: v for k, v in row.items() if k != "seconds"} for row in state["history"]],
        "results": {k: results[k] for k in ("frame_acc", "zero_outputs_pct",
                                            "zero_outputs_pct_per_layer", "mults_per_frame")},
        "forward": hashlib.sha256((out / "forward_test.ark").read_bytes()).hexdigest(),
    }


@pytest.mark.slow
def test_killed_inside_an_epoch_twice_resumes_bitwise(tiny_corpus: Path, tmp_path: Path) -> None:
    """TINY's epochs have 7, 4 and 4 batches. The run dies (os._exit in a training forward
    pass, no cleanup) inside batch 6 of epoch 1 with a checkpoint every 2 batches; resumed with
    a checkpoint every 3 batches it dies inside batch 4 of epoch 2; resumed with none it
    finishes. The weights, optimiser and scheduler states, history, results and forward ark
    equal an uninterrupted run's, and each resumed run trained only the batches after its
    checkpoint. Dropout is on (0.1), so the generator state must be restored too."""
    cfg = synth_cfg(tmp_path, tiny_corpus)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    whole = _dying(cfg, straight, 0, [])
    assert whole.returncode == 0, whole.stderr[-2000:]
    total = _batches_run(whole)

    first = _dying(cfg, killed, 6, ["exp.checkpoint_every_batches=2"])
    assert first.returncode == DIED, first.stderr[-2000:]
    assert _progress(killed) == {"epochs_done": 0, "epoch": 0, "batch": 4}

    second = _dying(cfg, killed, 3 + 4, ["exp.checkpoint_every_batches=3"])
    assert second.returncode == DIED, second.stderr[-2000:]
    assert "resuming epoch 1 at batch 5 (4 batches done)" in second.stdout
    assert _progress(killed) == {"epochs_done": 1, "epoch": 1, "batch": 3}

    last = _dying(cfg, killed, 0, [])
    assert last.returncode == 0, last.stderr[-2000:]
    assert "resuming epoch 2 at batch 4 (3 batches done)" in last.stdout
    assert _batches_run(last) == total - 4 - (3 + 3)
    assert _outcome(killed) == _outcome(straight)
