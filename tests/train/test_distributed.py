"""Data-parallel training (train/distributed.py): two gloo processes on CPU train the weights one
process trains with the same global batches.

Tolerance of the comparison, and why float64: the two runs do the same arithmetic in another
order (a batch's gradient summed from two half-batch gradients, the batch-norm statistics from
two half-batch sums in two passes instead of torch's kernel, the halves' mean losses weighted by
their frame counts), so their values differ in the last bits. In a quantised network that is
not a small difference for long: an output level flips wherever a membrane potential lies
within that last-bit difference of a level boundary, and the flip changes the rest of the
sequence. In float32 (relative 1e-7) flips happen within the second batch and the weights of
the two runs part by up to 4e-3 after these eight Adam steps (measured), as two runs on
different hardware would; in float64 (relative 1e-16) no potential comes that close on this
data and the runs agree to 7e-15 (measured, in b). Hence the model and the features are float64 here and the bound is 1e-9,
which any real error breaks by orders of magnitude: a missing gradient sum, b or batch-norm
statistics per process, an unweighted mean of the processes' losses, or shares that are not the
single-process batch move the weights by 1e-3 or more.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from experiment_cfgs import ROOT, TINY, fake_corpus, synth_cfg
from pytorch_kaldi_snn.config.experiment import Experiment, load_experiment
from pytorch_kaldi_snn.data.batching import Piece, make_batch
from in_memory import LoadedSet
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.neurons.ema import MembraneMaxTracker
from pytorch_kaldi_snn.neurons.symmetric import SymmetricQuantiser
from pytorch_kaldi_snn.pipeline.stages import make_trainer
from pytorch_kaldi_snn.train.distributed import World, rank_share, start_world
from pytorch_kaldi_snn.train.loop import CHECKPOINT
from pytorch_kaldi_snn.train.sync_batchnorm import SyncedBatchNorm1d

ATOL, RTOL = 1e-9, 1e-9
N_OUT = {"lab_cd": 12, "lab_mono": 6}
# 25 utterances of at most 50 frames: 25 pieces in both epochs, batches of 8, 8, 8 and 1 (the
# last one has fewer pieces than processes: both compute it whole).
SETTINGS = ["exp.n_epochs_tr=2", "batches.batch_size_train=8", "batches.max_seq_length_train=100",
            "batches.start_seq_len_train=50", "batches.batch_size_valid=2",
            "architecture1.snn_lay=16,16", "architecture1.snn_drop=0.0,0.0",
            "exp.use_cuda=False", "exp.multi_gpu=True", "exp.sync_batchnorm=True"]


def _synthetic(name: str, n_utts: int, seed: int) -> LoadedSet:
    rng = np.random.default_rng(seed)
    utts = [f"{name}_{i:03d}" for i in range(n_utts)]
    lengths = rng.integers(20, 51, n_utts)
    feats = {u: rng.normal(size=(n, 13)) for u, n in zip(utts, lengths)}  # float64
    labels = {lab: {u: rng.integers(0, size, n).astype(np.int64) for u, n in zip(utts, lengths)}
              for lab, size in N_OUT.items()}
    return LoadedSet(name, utts, {"fbank": feats}, labels)


def _experiment(tmp: Path, out: Path) -> Experiment:
    cfg = synth_cfg(tmp, fake_corpus(tmp / "corpus"), )
    return load_experiment(cfg, SETTINGS + [f"exp.out_folder={out}"])


def _train(exp: Experiment, world: World) -> None:
    train, dev = _synthetic("tr", 25, 1), _synthetic("dev", 7, 2)
    exp.exp.out_folder.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("test_distributed")
    trainer = make_trainer(exp, train, N_OUT, log, world)
    trainer.model.double()  # see the module docstring
    trainer.fit(train, dev)


def _check_synced_batchnorm(rank: int) -> None:
    """Each process normalises half of a batch: outputs and gradients are the whole batch's."""
    torch.manual_seed(0)
    x = torch.randn(40, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(40, 5, dtype=torch.float64)
    whole = torch.nn.BatchNorm1d(5).double()
    whole_out = whole(x)
    (whole_out * weight).sum().backward()
    part = slice(20 * rank, 20 * rank + 20)
    synced = SyncedBatchNorm1d(5).double()
    xs = x.detach()[part].clone().requires_grad_(True)
    out = synced(xs)
    (out * weight[part]).sum().backward()
    torch.testing.assert_close(out, whole_out.detach()[part])
    torch.testing.assert_close(xs.grad, x.grad[part])
    torch.testing.assert_close(synced.running_var, whole.running_var)
    torch.testing.assert_close(synced.running_mean, whole.running_mean)


def _check_ranges_over_ranks(rank: int) -> None:
    """The authors' per-step range and the EMA of b see the maximum of all processes' halves."""
    torch.manual_seed(1)
    v = torch.randn(6, 8) * 3
    whole, part = SymmetricQuantiser(4, 1).train(), SymmetricQuantiser(4, 1).train()
    whole(v)
    part(v[:, 4 * rank:4 * rank + 4])
    assert (float(part.tracked_min), float(part.tracked_max)) == (
        float(whole.tracked_min), float(whole.tracked_max))
    tracker = MembraneMaxTracker(momentum=0.5, b_init=10.0)
    tracker.update(v[:, 4 * rank:4 * rank + 4].max())
    assert float(tracker.b_biased) == pytest.approx(0.5 * float(v.max()))


def _check_world_hooks(world: World, rank: int) -> None:
    """Per-process batch norm (sync_batchnorm = False) ends an epoch with the processes' mean
    running statistics; a NaN found by one process stops (or skips) the batch in all."""
    norm = torch.nn.BatchNorm1d(3)
    norm.running_mean.fill_(2.0 * rank)
    norm.running_var.fill_(1.0 + rank)
    world.average_batchnorm_stats(norm)
    assert norm.running_mean.tolist() == [1.0] * 3 and norm.running_var.tolist() == [1.5] * 3
    found = world.first_bad("value loss_final" if rank == 1 else None)
    assert found == ("a value of another process" if rank == 0 else "value loss_final")
    assert world.sum([rank, 1.0]) == [1.0, 2.0]


def _worker(rank: int, tmp: str, out: str, port: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    exp = _experiment(Path(tmp) / f"rank{rank}", Path(out))
    world = start_world(exp.exp, exp.cfg_path)
    try:
        _check_synced_batchnorm(rank)
        _check_ranges_over_ranks(rank)
        _check_world_hooks(world, rank)
        _train(exp, world)
    finally:
        world.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _checkpoint(out: Path) -> Dict:
    return torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)


@pytest.mark.slow  # two spawned processes: about 40 s on 2 busy cores
def test_two_gloo_processes_train_the_single_process_weights(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    _train(_experiment(tmp_path / "cfg", single_out), World())
    mp.spawn(_worker, args=(str(tmp_path), str(ddp_out), _free_port()), nprocs=2)

    single, ddp = _checkpoint(single_out), _checkpoint(ddp_out)
    assert sorted(p.name for p in ddp_out.iterdir()) == [CHECKPOINT]  # rank 0 alone wrote it
    assert single["model"].keys() == ddp["model"].keys()
    for key, value in single["model"].items():
        torch.testing.assert_close(ddp["model"][key], value, atol=ATOL, rtol=RTOL,
                                   msg=lambda m, key=key: f"{key}: {m}")
    trackers = [k for k in single["model"] if k.endswith("tracker.b")]
    assert len(trackers) == 2 and all(float(single["model"][k]) != 1.0 for k in trackers)
    assert len(single["history"]) == len(ddp["history"]) == 2
    for a, b in zip(single["history"], ddp["history"]):
        for key in ("train_loss", "dev_loss", "dev_zero_pct"):
            assert a[key] == pytest.approx(b[key], rel=RTOL, abs=ATOL), key
        for key in ("train_err", "dev_err"):  # a float32 fraction per batch (frame_error)
            assert a[key] == pytest.approx(b[key], abs=1e-6), key


def _pieces(lengths: List[int]) -> List[Piece]:
    return [Piece(f"u{i}", 0, n) for i, n in enumerate(lengths)]


@pytest.mark.parametrize("lengths,size", [([30, 10, 20, 50, 40], 2), ([5, 7, 9], 3),
                                          ([30], 2), ([4, 8], 4)])
def test_shares_side_by_side_are_the_global_batch(lengths: List[int], size: int) -> None:
    pieces = _pieces(lengths)
    shares = [rank_share(pieces, rank, size) for rank in range(size)]
    assert sum(s.weight for s in shares) == pytest.approx(1.0)
    assert sum(s.frames for s in shares) == pytest.approx(sum(lengths))
    assert all(s.length == max(lengths) for s in shares)
    if len(pieces) < size:
        assert all(s.pieces == pieces for s in shares)
    else:
        assert [p for s in shares for p in s.pieces] == pieces
        assert all(s.pieces for s in shares)
    data = LoadedSet("d", [p.utt for p in pieces],
                     {"f": {p.utt: np.full((p.end, 2), i, np.float32) for i, p in enumerate(pieces)}},
                     {"l": {p.utt: np.zeros(p.end, np.int64) for p in pieces}})
    whole = make_batch(data, pieces)
    if len(pieces) >= size:
        parts = [make_batch(data, s.pieces, s.length).features["f"] for s in shares]
        assert torch.equal(torch.cat(parts, dim=1), whole.features["f"])


def test_one_process_world_without_torchrun(tmp_path: Path, monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    exp = _experiment(tmp_path, tmp_path / "out")
    with pytest.raises(ConfigError) as info:
        start_world(exp.exp, exp.cfg_path)
    assert str(info.value).endswith(
        "[exp] multi_gpu: multi_gpu = True: start the run with torchrun --standalone "
        "--nproc_per_node=N -m pytorch_kaldi_snn.run_exp CFG (data-parallel training; "
        "upstream's DataParallel is not offered: it splits the time-major batches of recurrent "
        "models along time)")
    single = load_experiment(exp.cfg_path, [o for o in SETTINGS if "multi_gpu" not in o]
                             + [f"exp.out_folder={tmp_path / 'out'}"])
    assert type(start_world(single.exp, single.cfg_path)) is World
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"\[exp\] multi_gpu: multi_gpu = False, but torchrun "
                                          r"started 2 processes; set multi_gpu = True"):
        start_world(single.exp, single.cfg_path)


@pytest.mark.slow  # torchrun with two processes through run_exp: about 40 s on 2 busy cores
def test_torchrun_run_exp_rank0_writes_and_reruns_complete(tiny_corpus: Path,
                                                          tmp_path: Path) -> None:
    cfg, out = synth_cfg(tmp_path, tiny_corpus), tmp_path / "out"
    settings = TINY + ["exp.multi_gpu=True", f"exp.out_folder={out}"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "pytorch_kaldi_snn.run_exp", str(cfg),
               *[arg for s in settings for arg in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    log = (out / "log.log").read_text()
    assert "distributed: rank 0 of 2 (local rank 0), backend gloo, device cpu" in log
    assert "distributed: 2 batch-norm layers synchronised over processes" in log
    assert log.count("epoch 2/2:") == 1  # one log, written by rank 0 alone
    results = json.loads((out / "results.json").read_text())
    assert len(results["history"]) == 2 and "epoch" not in first.stderr
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    assert [h["dev_err"] for h in state["history"]] == [h["dev_err"] for h in results["history"]]
    again = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "results.json exists: the experiment is complete" in again.stdout
