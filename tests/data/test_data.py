"""Dataset loading and batching: frame-count checks, curriculum pieces, seeded order, padding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiment_cfgs import TINY, synth_cfg
from in_memory import LoadedSet, train_order
from pytorch_kaldi_snn.data.batching import IGNORE, cut, make_batch
from pytorch_kaldi_snn.io import read_matrices, write_mat_ark
from pytorch_kaldi_snn.run_exp import main


def _toy() -> LoadedSet:
    lengths = {"a": 7, "b": 3, "c": 5}
    feats = {u: np.arange(n * 2, dtype=np.float32).reshape(n, 2) for u, n in lengths.items()}
    labels = {u: np.arange(n) % 4 for u, n in lengths.items()}
    return LoadedSet("toy", sorted(lengths), {"fea": feats}, {"lab": labels})


def test_cut_respects_the_maximum_length() -> None:
    pieces = cut(_toy(), 3)
    assert [(p.utt, p.start, p.end) for p in pieces] == [
        ("a", 0, 3), ("a", 3, 6), ("a", 6, 7), ("b", 0, 3), ("c", 0, 3), ("c", 3, 5)]


def test_order_depends_only_on_seed_and_epoch() -> None:
    data = _toy()
    first = train_order(data, 2, 2, seed=5, epoch=1)
    assert first == train_order(data, 2, 2, seed=5, epoch=1)
    assert first != train_order(data, 2, 2, seed=5, epoch=2)
    assert sorted(p for batch in first for p in batch) == sorted(cut(data, 2))


def test_batch_is_time_major_and_padding_is_ignored() -> None:
    data = _toy()
    batch = make_batch(data, cut(data, 10)[:2])  # a (7 frames), b (3 frames)
    assert batch.features["fea"].shape == (7, 2, 2)
    labels = batch.labels["lab"]
    assert labels[:3, 1].tolist() == [0, 1, 2] and (labels[3:, 1] == IGNORE).all()
    assert np.array_equal(batch.features["fea"][:, 0].numpy(), data.features["fea"]["a"])


def test_frame_count_mismatch_names_the_utterance(tiny_corpus: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    feats = list(read_matrices(tiny_corpus / "data/train/feats.scp"))
    utt, first = feats[0]
    feats[0] = (utt, first[:-1])
    write_mat_ark(tmp_path / "short.ark", tmp_path / "short.scp", feats)
    cfg = synth_cfg(tmp_path, tiny_corpus, text_edit=lambda t: t.replace(
        f"{tiny_corpus}/data/train/feats.scp", str(tmp_path / "short.scp")))
    code = main([str(cfg), *[a for o in TINY + [f"exp.out_folder={tmp_path / 'o'}"]
                             for a in ("--set", o)]])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (f"error: utterance {utt}: dataset synth_tr: frame counts differ "
                   f"(fea fbank {len(first) - 1}, lab lab_cd {len(first)})\n")
