"""Streamed data (data/streamed.py): the same batches as the set loaded whole, chunk plans that
depend only on (seed, epoch, chunk), cheap skipping, background workers, memory O(chunk)."""
from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Iterable, Iterator, List, Tuple

import numpy as np
import pytest
import torch

from experiment_cfgs import TINY, synth_cfg
from pytorch_kaldi_snn.config.datasets import DatasetSpec
from pytorch_kaldi_snn.config.experiment import load_experiment
from pytorch_kaldi_snn.config.resolved import training_differences
from in_memory import LoadedSet, eval_batches, load_dataset, train_order
from pytorch_kaldi_snn.data.batching import Batch, cut, make_batch
from pytorch_kaldi_snn.data.streamed import (
    DataSource, WORKER_NICENESS, eval_plan, open_source, plan_batches,
    share_plans, train_plan,
)
from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.io import (
    mat_ark_writer, read_int_vectors, read_matrices, write_int_vectors, write_mat_ark,
)
from repo_paths import ROOT

LOG = logging.getLogger("test_streamed")
SEED, MAX_LEN, BATCH = 7, 60, 3


@pytest.fixture(scope="module")
def spec(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSpec:
    """The tiny corpus's training set with a context window, so that splicing is exercised."""
    tmp = tmp_path_factory.mktemp("cfg")
    exp = load_experiment(synth_cfg(tmp, tiny_corpus), TINY + [f"exp.out_folder={tmp / 'o'}"])
    features = tuple(dataclasses.replace(f, cw_left=2, cw_right=3) for f in exp.train_set.features)
    return dataclasses.replace(exp.train_set, features=features)


def _names(spec: DatasetSpec) -> Tuple[List[str], List[str]]:
    return [f.name for f in spec.features], [lab.name for lab in spec.labels]


@pytest.fixture(scope="module")
def eager(spec: DatasetSpec) -> LoadedSet:
    return load_dataset(spec, *_names(spec), LOG)


def _source(spec: DatasetSpec, n_chunks: int) -> DataSource:
    return open_source(dataclasses.replace(spec, n_chunks=n_chunks), *_names(spec), LOG)


def _same(a: Iterable[Batch], b: Iterable[Batch]) -> int:
    """Assert two batch sequences are equal bit for bit; returns their length."""
    a, b = list(a), list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.pieces == y.pieces
        assert x.features.keys() == y.features.keys() and x.labels.keys() == y.labels.keys()
        assert all(torch.equal(x.features[k], y.features[k]) for k in x.features)
        assert all(torch.equal(x.labels[k], y.labels[k]) for k in x.labels)
    return len(a)


def epoch_batches(source: DataSource, epoch: int, *, seed: int, max_len: int, batch_size: int,
                  workers: int = 0, start_batch: int = 0) -> Iterator[Batch]:
    """Training batches of ``epoch`` (train_plan), from ``start_batch`` on, as the trainer reads them."""
    plans = train_plan(source, epoch, seed, max_len, batch_size)
    return plan_batches(source, plans, workers, start_batch)


def eval_stream(source: DataSource, max_len: int, batch_size: int,
                workers: int = 0) -> Iterator[Batch]:
    """Evaluation batches (eval_plan), as validation and the forward stage read them."""
    return plan_batches(source, eval_plan(source, max_len, batch_size), workers)


def _train(source: DataSource, epoch: int, **kw) -> Iterable[Batch]:
    return epoch_batches(source, epoch, seed=SEED, max_len=MAX_LEN, batch_size=BATCH, **kw)


def test_one_chunk_gives_the_batches_of_the_set_loaded_whole(spec, eager) -> None:
    lazy = _source(spec, 1)
    assert lazy.utts == eager.utts and lazy.feature_dims() == eager.feature_dims()
    for epoch in (0, 1):
        whole = (make_batch(eager, p) for p in train_order(eager, MAX_LEN, BATCH, SEED, epoch))
        assert _same(_train(lazy, epoch), whole) > 2
    assert _same(eval_stream(lazy, MAX_LEN, BATCH), eval_batches(eager, MAX_LEN, BATCH)) > 2


@pytest.mark.parametrize("workers", [0, 2])
def test_chunks_read_the_frames_of_the_set_loaded_whole(spec, eager, workers) -> None:
    """Four chunks: every batch equals the one padded from the whole set for the same pieces,
    with or without background workers; the chunks partition the set; each piece once."""
    lazy = _source(spec, 4)
    plans = train_plan(lazy, 1, SEED, MAX_LEN, BATCH)
    assert sorted(u for p in plans for u in p.utts) == eager.utts
    assert len(plans) == 4 and all(p.utts for p in plans)
    reference = [make_batch(eager, pieces) for p in plans for pieces in p.batches]
    _same(_train(lazy, 1, workers=workers), reference)
    assert sorted(piece for b in reference for piece in b.pieces) == sorted(cut(eager, MAX_LEN))
    evals = eval_plan(lazy, MAX_LEN, BATCH)  # contiguous parts, longest first within each
    assert [u for p in evals for u in p.utts] == eager.utts
    _same(eval_stream(lazy, MAX_LEN, BATCH, workers),
          [make_batch(eager, pieces) for p in evals for pieces in p.batches])


@pytest.mark.parametrize("size", [2, 3])
def test_shared_eval_plans_deal_the_batches_round_robin_and_read_only_their_utterances(
        spec, eager, size: int) -> None:
    """Each process's share (DDP evaluation) is every size-th batch counted across chunks; its
    chunks name only the utterances of its batches, and together the shares are the whole."""
    lazy = _source(spec, 3)
    plans = eval_plan(lazy, 10 ** 6, 2)  # whole utterances, as the dev set is evaluated
    every = [b for p in plans for b in p.batches]
    shares = [share_plans(plans, rank, size) for rank in range(size)]
    for rank, share in enumerate(shares):
        assert [b for p in share for b in p.batches] == every[rank::size]
        for plan in share:
            assert plan.batches and plan.utts == sorted({x.utt for b in plan.batches for x in b})
        reference = [make_batch(eager, pieces) for p in share for pieces in p.batches]
        _same(plan_batches(lazy, share), reference)
    assert sorted(u for share in shares for p in share for u in p.utts) == eager.utts  # once
    assert share_plans(plans, 0, 1) == plans


def test_kaldi_pipe_on_chunk_sub_scps_gives_the_frames_of_the_whole_scp(
        spec, kaldi_env, monkeypatch, caplog) -> None:
    """Kaldi's apply-cmvn (per-speaker stats) and add-deltas on each chunk's sub-scp: the same
    frames as the pipe on the whole scp."""
    for key in ("PATH", "LD_LIBRARY_PATH", "KALDI_ROOT"):
        if key in kaldi_env:
            monkeypatch.setenv(key, kaldi_env[key])
    with caplog.at_level(logging.INFO, logger=LOG.name):
        eager = load_dataset(spec, *_names(spec), LOG)
        lazy = _source(spec, 4)
        lazy.feature_dims()
    assert caplog.text.count("features: Kaldi binaries") == 2  # eager, then the source's first read
    reference = [make_batch(eager, pieces)
                 for p in train_plan(lazy, 0, SEED, MAX_LEN, BATCH) for pieces in p.batches]
    assert _same(_train(lazy, 0), reference) > 4


def test_plan_is_a_function_of_seed_epoch_and_chunk(spec) -> None:
    first, again = _source(spec, 4), _source(spec, 4)  # e.g. before and after a restart
    plan = train_plan(first, 2, SEED, MAX_LEN, BATCH)
    assert plan == train_plan(again, 2, SEED, MAX_LEN, BATCH)
    assert [p.utts for p in plan] != [p.utts for p in train_plan(first, 3, SEED, MAX_LEN, BATCH)]
    assert plan != train_plan(first, 2, SEED + 1, MAX_LEN, BATCH)


def test_a_resumed_epoch_sees_the_same_batches_and_skips_reading(spec) -> None:
    straight = list(_train(_source(spec, 4), 1))
    plans = train_plan(_source(spec, 4), 1, SEED, MAX_LEN, BATCH)
    skip = len(plans[0].batches) + len(plans[1].batches) + 1  # inside the third chunk
    resumed = _source(spec, 4)
    read: List[int] = []
    real_read = resumed.read_chunk
    resumed.read_chunk = lambda utts: read.append(len(utts)) or real_read(utts)  # type: ignore
    _same(_train(resumed, 1, start_batch=skip), straight[skip:])
    assert read == [len(plans[2].utts), len(plans[3].utts)]  # chunks 0 and 1 were not read
    assert list(_train(resumed, 1, start_batch=len(straight))) == []


@pytest.fixture(scope="module")
def copies(spec: DatasetSpec, tmp_path_factory: pytest.TempPathFactory) -> DatasetSpec:
    """The training set 16 times over (new ids), raw features (no pipe) and no context window:
    large enough that a chunk outweighs one utterance's reading and one batch."""
    tmp = tmp_path_factory.mktemp("copies")
    stream, lab = spec.features[0], spec.labels[0]
    feats = list(read_matrices(stream.scp))
    write_mat_ark(tmp / "feats.ark", tmp / "feats.scp",
                  [(f"{u}-{k:02d}", m) for k in range(16) for u, m in feats])
    ali = tmp / "ali"
    ali.mkdir()
    for name in ("final.mdl", "num_jobs"):
        shutil.copy(lab.folder / name, ali / name)
    alignments = list(read_int_vectors(lab.folder / "ali.1.gz"))
    write_int_vectors(tmp / "ali.ark", [(f"{u}-{k:02d}", a) for k in range(16) for u, a in alignments])
    (ali / "ali.1.gz").write_bytes(gzip.compress((tmp / "ali.ark").read_bytes()))
    return dataclasses.replace(
        spec, features=(dataclasses.replace(stream, scp=tmp / "feats.scp", opts="", cw_left=0,
                                            cw_right=0),),
        labels=(dataclasses.replace(lab, folder=ali),))


def _peak_bytes(source: DataSource) -> int:
    """Largest traced allocation total (numpy buffers included) over one epoch's batches."""
    source.feature_dims()  # the first utterance, read before measuring
    tracemalloc.start()
    try:
        for _ in epoch_batches(source, 0, seed=SEED, max_len=20, batch_size=2):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_one_chunk_not_the_set(copies: DatasetSpec) -> None:
    one = _source(copies, 1)
    features = sum(one.frames.values()) * one.feature_dims()[copies.features[0].name] * 4
    peak_one, peak_four = _peak_bytes(one), _peak_bytes(_source(copies, 4))
    print(f"\nfeatures of the set {features} B; peak over an epoch: 1 chunk {peak_one} B, "
          f"4 chunks {peak_four} B ({peak_four / peak_one:.2f} of 1 chunk's)")
    assert features <= peak_one < 1.5 * features
    assert peak_four < 0.4 * peak_one


def test_worker_errors_are_one_clear_line(spec, tmp_path) -> None:
    stream = spec.features[0]
    feats = list(read_matrices(stream.scp))
    utt, first = feats[3]
    feats[3] = (utt, first[:-1])
    write_mat_ark(tmp_path / "short.ark", tmp_path / "short.scp", feats)
    broken = dataclasses.replace(spec, features=(dataclasses.replace(stream, scp=tmp_path / "short.scp"),))
    source = _source(broken, 4)
    with pytest.raises(DataError) as info:
        list(_train(source, 0, workers=1))
    assert str(info.value).startswith(f"utterance {utt}: dataset {spec.name}: frame counts differ "
                                      f"(fea {stream.name} {len(first) - 1}, ")


def test_too_many_chunks_and_zero_chunks_are_refused(spec, tiny_corpus, tmp_path) -> None:
    with pytest.raises(DataError, match="n_chunks = 1000 is more than its 8 utterances"):
        _source(spec, 1000)
    cfg = synth_cfg(tmp_path, tiny_corpus)
    with pytest.raises(ConfigError, match=r"\[dataset1\] n_chunks: .*below the minimum 1"):
        load_experiment(cfg, ["dataset1.n_chunks=0"])
    assert load_experiment(cfg, ["dataset1.n_chunks=3"]).train_set.n_chunks == 3


def test_workers_are_not_training_settings_but_chunks_are(tiny_corpus, tmp_path) -> None:
    """A run resumed with other data_workers is the same training (the same batches); other
    n_chunks is not, and the resume is refused naming the key (config/resolved.py)."""
    cfg = synth_cfg(tmp_path, tiny_corpus)

    def text(*overrides: str) -> str:
        return load_experiment(cfg, list(overrides)).cfg_text

    assert "data_workers = 0" in text() and "n_chunks = 1" in text()
    assert training_differences(text(), text("exp.data_workers=2")) == []
    assert training_differences(text(), text("dataset1.n_chunks=2")) == [
        ("dataset1", "n_chunks", "1", "2")]


def test_forward_ark_appears_only_when_complete(tmp_path) -> None:
    ark = tmp_path / "forward_test.ark"
    with pytest.raises(RuntimeError):
        with mat_ark_writer(ark) as put:
            put("u1", np.ones((2, 3), np.float32))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with mat_ark_writer(ark) as put:
        put("u2", np.ones((2, 3), np.float32))
        put("u1", np.zeros((1, 3), np.float32))
    assert [(u, m.shape) for u, m in read_matrices(ark)] == [("u2", (2, 3)), ("u1", (1, 3))]


def test_data_workers_run_one_thread_at_lower_priority() -> None:
    """What a worker's init does, in a child process (niceness cannot be undone)."""
    code = ("import os, torch; from pytorch_kaldi_snn.data.streamed import background_worker; "
            "before = os.nice(0); torch.set_num_threads(2); background_worker(0); "
            "print(os.nice(0) - before, torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.split() == [str(WORKER_NICENESS), "1"]
