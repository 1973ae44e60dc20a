"""Cut utterances into sequences, shuffle them with the cfg's seed and pad them into batches.

Training sequences are at most the curriculum's length for the epoch (long utterances are cut
into consecutive pieces, as PyTorch-Kaldi does); their order depends only on ``(seed, epoch)``,
so a resumed run sees exactly the batches an uninterrupted run sees. Evaluation keeps whole
utterances (split only beyond ``max_seq_length_valid``), sorted by length to limit padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

from pytorch_kaldi_snn.data.loading import LoadedSet

IGNORE = -100  # label of padded frames (torch's default ignore_index)


class Piece(NamedTuple):
    utt: str
    start: int
    end: int


@dataclass
class Batch:
    """Time-major tensors: features ``(T, B, F)``, labels ``(T, B)`` with IGNORE on padding."""

    pieces: List[Piece]
    features: Dict[str, Tensor]
    labels: Dict[str, Tensor]

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.pieces, {k: v.to(device) for k, v in self.features.items()},
                     {k: v.to(device) for k, v in self.labels.items()})


def cut(data: LoadedSet, max_len: int) -> List[Piece]:
    """Every utterance as consecutive pieces of at most ``max_len`` frames."""
    pieces = []
    for utt in data.utts:
        n = data.num_frames(utt)
        pieces.extend(Piece(utt, s, min(s + max_len, n)) for s in range(0, n, max_len))
    return pieces


def make_batch(data: LoadedSet, pieces: List[Piece], length: Optional[int] = None) -> Batch:
    """Pad ``pieces`` to ``length`` frames, by default to the longest one (features keep the
    set's dtype: float32 as loaded, float64 in tests that compare runs to the last bits)."""
    if length is None:
        length = max(p.end - p.start for p in pieces)
    features = {}
    for name, table in data.features.items():
        first = next(iter(table.values()))
        array = np.zeros((length, len(pieces), first.shape[1]), dtype=first.dtype)
        for b, p in enumerate(pieces):
            array[: p.end - p.start, b] = table[p.utt][p.start:p.end]
        features[name] = torch.from_numpy(array)
    labels = {}
    for name, table in data.labels.items():
        array = np.full((length, len(pieces)), IGNORE, dtype=np.int64)
        for b, p in enumerate(pieces):
            array[: p.end - p.start, b] = table[p.utt][p.start:p.end]
        labels[name] = torch.from_numpy(array)
    return Batch(pieces, features, labels)


def train_order(data: LoadedSet, max_len: int, batch_size: int, seed: int,
                epoch: int) -> List[List[Piece]]:
    """The epoch's batches of pieces, shuffled by a generator seeded with ``(seed, epoch)``."""
    pieces = cut(data, max_len)
    order = np.random.default_rng([seed, epoch]).permutation(len(pieces))
    shuffled = [pieces[i] for i in order]
    return [shuffled[i:i + batch_size] for i in range(0, len(shuffled), batch_size)]


def eval_batches(data: LoadedSet, max_len: int, batch_size: int) -> Iterator[Batch]:
    """Deterministic batches of whole utterances (pieces of ``max_len``), longest first."""
    pieces = sorted(cut(data, max_len), key=lambda p: (p.start - p.end, p.utt, p.start))
    for i in range(0, len(pieces), batch_size):
        yield make_batch(data, pieces[i:i + batch_size])
