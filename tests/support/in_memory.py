"""A dataset held whole in memory, for the tests: the reference the streamed loader
(pytorch_kaldi_snn/data/streamed.py) is checked against, and small synthetic sets to train on.
The package streams every set; this is its former eager loader."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Sequence

import numpy as np

from pytorch_kaldi_snn.config.datasets import DatasetSpec, FeatureSpec
from pytorch_kaldi_snn.data.batching import (
    Batch, Index, Piece, cut, eval_order, make_batch, shuffled,
)
from pytorch_kaldi_snn.data.loading import check_lengths, common_utts, load_labels
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.features.pipes import read_features
from pytorch_kaldi_snn.features.transforms import splice_feats

Log = logging.Logger


@dataclass(frozen=True)
class LoadedSet:
    """A dataset in memory; every stream and label set has the same frames per utterance."""

    name: str
    utts: List[str]  # sorted utterance ids present in every stream and label set
    features: Mapping[str, Mapping[str, np.ndarray]]  # fea_name -> utt -> (T, F) float32
    labels: Mapping[str, Mapping[str, np.ndarray]]  # lab_name -> utt -> (T,) int64

    def num_frames(self, utt: str) -> int:
        return len(next(iter(self.features.values()))[utt])

    def feature_dims(self) -> Dict[str, int]:
        return {name: next(iter(m.values())).shape[1] for name, m in self.features.items()}

    def label_names(self) -> List[str]:
        return list(self.labels)

    def feature_rows(self, name: str, piece: Piece) -> np.ndarray:
        return self.features[name][piece.utt][piece.start:piece.end]

    def label_rows(self, name: str, piece: Piece) -> np.ndarray:
        return self.labels[name][piece.utt][piece.start:piece.end]

    def holds(self, utt: str) -> bool:
        return utt in next(iter(self.features.values()))

    # As a source of chunks (data/streamed.py): one chunk, the set itself.
    n_chunks = 1

    def read_chunk(self, utts: Sequence[str]) -> "LoadedSet":
        return self


def _load_features(spec: FeatureSpec, log: Log) -> Dict[str, np.ndarray]:
    feats = dict(read_features(str(spec.scp), spec.opts, log))
    if not feats:
        raise DataError("holds no utterances", file=str(spec.scp))
    if spec.cw_left or spec.cw_right:
        feats = {u: splice_feats(m, spec.cw_left, spec.cw_right) for u, m in feats.items()}
    return {u: np.asarray(m, dtype=np.float32) for u, m in feats.items()}


def load_dataset(spec: DatasetSpec, feature_names: List[str], label_names: List[str],
                 log: Log) -> LoadedSet:
    """Features named ``feature_names`` and labels named ``label_names`` of one dataset."""
    features = {f.name: _load_features(f, log) for f in spec.features if f.name in feature_names}
    labels = {lab.name: load_labels(lab, log) for lab in spec.labels if lab.name in label_names}
    tables = {**{f"fea {k}": v for k, v in features.items()},
              **{f"lab {k}": v for k, v in labels.items()}}
    utts = common_utts(spec.name, tables, log)
    check_lengths(spec.name, utts, tables)
    frames = sum(len(features[feature_names[0]][u]) for u in utts)
    log.info(f"{spec.name}: {len(utts)} utterances, {frames} frames")
    return LoadedSet(spec.name, utts, features, labels)


def train_order(data: Index, max_len: int, batch_size: int, seed: int,
                epoch: int) -> List[List[Piece]]:
    """The epoch's batches of pieces of the whole set, shuffled with ``(seed, epoch)``."""
    return shuffled(cut(data, max_len), batch_size, (seed, epoch))


def eval_batches(data: LoadedSet, max_len: int, batch_size: int) -> Iterator[Batch]:
    """:func:`eval_order` of a set in memory, padded."""
    for pieces in eval_order(data, max_len, batch_size):
        yield make_batch(data, pieces)
