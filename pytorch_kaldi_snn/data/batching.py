"""Cut utterances into sequences, shuffle them with the cfg's seed and pad them into batches.

Training sequences are at most the curriculum's length for the epoch (long utterances are cut
into consecutive pieces, as PyTorch-Kaldi does); their order depends only on ``(seed, epoch)``,
so a resumed run sees exactly the batches an uninterrupted run sees. Evaluation keeps whole
utterances (split only beyond ``max_seq_length_valid``), sorted by length to limit padding.

The functions here plan and pad; they read frames through the small :class:`Frames` protocol,
so the same code batches one chunk of a streamed set (:class:`~pytorch_kaldi_snn.data.streamed.Chunk`)
and a set the tests hold in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor


IGNORE = -100  # label of padded frames (torch's default ignore_index)


class Piece(NamedTuple):
    utt: str
    start: int
    end: int


class Index(Protocol):
    """Utterance ids and their frame counts: all that planning batches needs."""

    utts: List[str]

    def num_frames(self, utt: str) -> int: ...


class Frames(Protocol):
    """Frames of some utterances: what padding a batch reads."""

    def feature_dims(self) -> Dict[str, int]: ...

    def label_names(self) -> List[str]: ...

    def feature_rows(self, name: str, piece: Piece) -> np.ndarray: ...

    def label_rows(self, name: str, piece: Piece) -> np.ndarray: ...

    def holds(self, utt: str) -> bool: ...


class Source(Index, Protocol):
    """A dataset read chunk by chunk: a streamed :class:`~.streamed.DataSource` (or a set in
    memory, one chunk, itself)."""

    @property
    def n_chunks(self) -> int: ...

    def read_chunk(self, utts: Sequence[str]) -> Frames: ...


@dataclass
class Batch:
    """Time-major tensors: features ``(T, B, F)``, labels ``(T, B)`` with IGNORE on padding."""

    pieces: List[Piece]
    features: Dict[str, Tensor]
    labels: Dict[str, Tensor]

    def to(self, device: torch.device) -> "Batch":
        """The batch on ``device``. To a GPU through pinned memory without waiting: the copy
        overlaps the work already queued (the caching host allocator keeps the pinned copy
        until the transfer is done); on the CPU nothing is copied."""
        def move(t: Tensor) -> Tensor:
            if device.type != "cuda" or t.device.type != "cpu":
                return t.to(device)
            return t.pin_memory().to(device, non_blocking=True)

        return Batch(self.pieces, {k: move(v) for k, v in self.features.items()},
                     {k: move(v) for k, v in self.labels.items()})


def cut(data: Index, max_len: int, utts: Optional[Sequence[str]] = None) -> List[Piece]:
    """Every utterance (of ``utts``, default all) as consecutive pieces of at most ``max_len``."""
    pieces = []
    for utt in data.utts if utts is None else utts:
        n = data.num_frames(utt)
        pieces.extend(Piece(utt, s, min(s + max_len, n)) for s in range(0, n, max_len))
    return pieces


def make_batch(data: Frames, pieces: List[Piece], length: Optional[int] = None) -> Batch:
    """Pad ``pieces`` to ``length`` frames, by default to the longest one (features keep the
    set's dtype: float32 as read, float64 in tests that compare runs to the last bits)."""
    if length is None:
        length = max(p.end - p.start for p in pieces)
    features = {}
    for name, dim in data.feature_dims().items():
        array = None
        for b, p in enumerate(pieces):
            rows = data.feature_rows(name, p)
            if array is None:
                array = np.zeros((length, len(pieces), dim), dtype=rows.dtype)
            array[: p.end - p.start, b] = rows
        features[name] = torch.from_numpy(array)
    labels = {}
    for name in data.label_names():
        array = np.full((length, len(pieces)), IGNORE, dtype=np.int64)
        for b, p in enumerate(pieces):
            array[: p.end - p.start, b] = data.label_rows(name, p)
        labels[name] = torch.from_numpy(array)
    return Batch(pieces, features, labels)


def shuffled(pieces: List[Piece], batch_size: int, key: Sequence[int]) -> List[List[Piece]]:
    """``pieces`` in the order of a generator seeded with ``key``, in groups of ``batch_size``."""
    order = np.random.default_rng(list(key)).permutation(len(pieces))
    mixed = [pieces[i] for i in order]
    return [mixed[i:i + batch_size] for i in range(0, len(mixed), batch_size)]


def eval_order(data: Index, max_len: int, batch_size: int,
               utts: Optional[Sequence[str]] = None) -> List[List[Piece]]:
    """Deterministic batches of whole utterances (pieces of ``max_len``), longest first."""
    pieces = sorted(cut(data, max_len, utts), key=lambda p: (p.start - p.end, p.utt, p.start))
    return [pieces[i:i + batch_size] for i in range(0, len(pieces), batch_size)]
