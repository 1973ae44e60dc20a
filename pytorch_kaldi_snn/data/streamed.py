"""Streamed datasets: features read one chunk at a time, as training and evaluation consume them.

A :class:`DataSource` keeps what is small in memory: the utterance ids, their frame counts, the
labels (``ali-to-pdf`` output as int32, 4 bytes a frame) and the scp lines. Features are read
only for the chunk in use, through the cfg's ``fea_opts`` pipe
(:func:`~pytorch_kaldi_snn.features.pipes.read_features`: Kaldi's binaries when present, the
built-in pipe otherwise) on a temporary sub-scp of the chunk's utterances; ``apply-cmvn`` with
per-speaker stats gives the same matrices on a sub-scp as on the whole scp. A chunk keeps the
pipe's output unspliced; the context window (``cw_left``/``cw_right``) is applied per batch, so
memory is the chunk's frames times the feature dimension, not 1 + left + right times that.

Chunks are PyTorch-Kaldi's ``[datasetN] n_chunks``; the plans are pure functions of
``(seed, epoch, chunk)``, so a resumed run reads exactly the batches of an uninterrupted one:

* training (:func:`train_plan`): with one chunk, the pieces of the whole set shuffled with
  ``(seed, epoch)``. With
  ``n`` chunks, the sorted utterance list is permuted with ``(seed, epoch)`` and split into
  ``n`` parts of near-equal counts (``numpy.array_split``); chunk ``c`` holds one part, and
  its pieces are shuffled with ``(seed, epoch, c)`` and batched; a chunk's last batch may be
  smaller. Chunks are trained in order 0..n-1.
* evaluation (:func:`eval_plan`): contiguous parts of the sorted utterance list, each batched
  as :func:`~pytorch_kaldi_snn.data.batching.eval_order` (whole utterances, longest first,
  within the chunk). With one chunk this is the batching of the whole set.

Iterating (:func:`plan_batches`, :func:`plan_pieces`): a
``torch.utils.data.DataLoader`` reads the chunks, in plan order; with ``workers = 0``
(``[exp] data_workers``, the default) in the calling process, with ``workers = w > 0`` in
``w`` background processes, each reading one chunk ahead, so the next chunk's pipe runs while
the current one trains. Padded batches are built from the chunk in the consuming process, one
at a time. The batches are the same for any ``workers``; memory is ``1 + w`` chunks plus one
batch. ``start_batch = k`` starts at the epoch's batch ``k`` without reading the chunks before
the one that holds it (resuming mid-epoch). Data-parallel ranks can take their share of
:func:`train_plan` (of each chunk's batches, or of the chunks) and pass it to
:func:`plan_batches`.

Errors: an utterance whose feature frames differ from its labels' (``frame counts differ``) is
a :class:`~pytorch_kaldi_snn.errors.DataError` naming it, raised when its chunk is read (with
several chunks, possibly after some training). An utterance the pipe gives no features for
(Kaldi's ``apply-cmvn`` skips one without speaker stats, with a warning) is logged and left
out of its batches, as loading the whole set leaves it out.
"""
from __future__ import annotations

import logging
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Callable, ContextManager, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple,
    Union,
)

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from pytorch_kaldi_snn.config.datasets import DatasetSpec, FeatureSpec
from pytorch_kaldi_snn.data.batching import (
    Batch, Frames, Piece, Source, cut, eval_order, make_batch, shuffled,
)
from pytorch_kaldi_snn.data.loading import check_lengths, common_utts, load_labels
from pytorch_kaldi_snn.errors import DataError, UserInputError
from pytorch_kaldi_snn.features.pipes import read_features
from pytorch_kaldi_snn.io import read_kaldi_map
from pytorch_kaldi_snn.io.chatter import captured_stderr

Log = logging.Logger
# The pipe's "features: ..." line is logged on a source's first read only.
_QUIET = logging.Logger(f"{__name__}.quiet", logging.CRITICAL)


@dataclass(frozen=True)
class Chunk:
    """The features (unspliced) and labels of some utterances, each stream one tensor.

    One tensor per stream, not one per utterance, so that a background worker hands a chunk
    over through one shared-memory segment per stream.
    """

    spans: Dict[str, Tuple[int, int]]  # utt -> (first row, frames)
    features: Dict[str, Tensor]  # fea_name -> (rows, F) float32, the fea_opts pipe's output
    contexts: Dict[str, Tuple[int, int]]  # fea_name -> (cw_left, cw_right)
    labels: Dict[str, Tensor]  # lab_name -> (rows,) int32

    def feature_dims(self) -> Dict[str, int]:
        return {name: rows.shape[1] * (1 + sum(self.contexts[name]))
                for name, rows in self.features.items()}

    def label_names(self) -> List[str]:
        return list(self.labels)

    def feature_rows(self, name: str, piece: Piece) -> np.ndarray:
        """The piece's frames with the context window (Kaldi's splice-feats, edges replicated)."""
        first, n = self.spans[piece.utt]
        raw = self.features[name].numpy()
        left, right = self.contexts[name]
        if not left and not right:
            return raw[first + piece.start:first + piece.end]
        frames = np.arange(piece.start, piece.end)[:, None] + np.arange(-left, right + 1)
        return raw[first + np.clip(frames, 0, n - 1)].reshape(len(frames), -1)

    def holds(self, utt: str) -> bool:
        return utt in self.spans

    def label_rows(self, name: str, piece: Piece) -> np.ndarray:
        first, _ = self.spans[piece.utt]
        return self.labels[name].numpy()[first + piece.start:first + piece.end]


@dataclass
class DataSource:
    """One cfg dataset, read lazily: see the module docstring. Built by :func:`open_source`."""

    spec: DatasetSpec
    utts: List[str]  # sorted ids present in every stream and label set
    frames: Dict[str, int]
    labels: Dict[str, Dict[str, np.ndarray]]  # lab_name -> utt -> (T,) int32
    scp_lines: Dict[str, Dict[str, str]]  # fea_name -> utt -> its feats.scp rxfilename
    streams: Dict[str, FeatureSpec]
    log: Log
    chatter: Optional[Callable[[str], None]] = None  # where Kaldi's stderr goes (None: stderr)
    _dims: Optional[Dict[str, int]] = field(default=None, repr=False)
    _announced: bool = field(default=False, repr=False)
    _dropped: Set[str] = field(default_factory=set, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n_chunks(self) -> int:
        return self.spec.n_chunks

    def num_frames(self, utt: str) -> int:
        return self.frames[utt]

    def feature_dims(self) -> Dict[str, int]:
        """Input size per stream (after the context window), from the first utterance."""
        if self._dims is None:
            self._dims = self.read_chunk(self.utts[:1]).feature_dims()
        return self._dims

    def read_chunk(self, utts: Sequence[str]) -> Chunk:
        """Features and labels of ``utts`` (checked against each other); an utterance the
        pipe gives no features for is left out, and logged."""
        spans: Dict[str, Tuple[int, int]] = {}
        rows = 0
        for utt in utts:
            spans[utt] = (rows, self.frames[utt])
            rows += self.frames[utt]
        features, present = {}, set(utts)
        for name in self.streams:
            array, seen = self._read_stream(name, utts, spans, rows)
            features[name] = torch.from_numpy(array)
            present &= seen
        self._announced = True
        self._note_dropped([u for u in utts if u not in present])
        labels = {name: torch.from_numpy(np.concatenate([table[u] for u in utts]))
                  for name, table in self.labels.items()}
        contexts = {name: (s.cw_left, s.cw_right) for name, s in self.streams.items()}
        return Chunk({u: spans[u] for u in utts if u in present}, features, contexts, labels)

    def _note_dropped(self, dropped: List[str]) -> None:
        """Kaldi's apply-cmvn skips (with a warning) an utterance without speaker stats; the
        built-in pipe refuses it. Logged once per utterance, as loading a whole set logs it."""
        new = [u for u in dropped if u not in self._dropped]
        if new:
            self._dropped.update(new)
            self.log.info(f"{self.name}: {len(new)} utterances lack features or labels and are "
                          f"skipped, e.g. {new[0]}")

    def _captured(self) -> ContextManager[None]:
        return nullcontext() if self.chatter is None else captured_stderr(self.chatter)

    def _read_stream(self, name: str, utts: Sequence[str], spans: Dict[str, Tuple[int, int]],
                     rows: int) -> Tuple[np.ndarray, Set[str]]:
        """The pipe's output for ``utts`` in one (rows, F) array, and the utterances it holds."""
        spec = self.streams[name]
        with tempfile.TemporaryDirectory(prefix="chunk.") as tmp, self._captured():
            sub_scp = Path(tmp) / "feats.scp"
            sub_scp.write_text("".join(f"{u} {self.scp_lines[name][u]}\n" for u in utts),
                               encoding="utf-8")
            log = _QUIET if self._announced else self.log
            try:
                return self._fill(name, read_features(str(sub_scp), spec.opts, log), spans, rows)
            except UserInputError as err:  # name the cfg's scp, not the temporary one
                def named(text: Optional[str]) -> Optional[str]:
                    return text.replace(str(sub_scp), str(spec.scp)) if text else text
                raise type(err)(named(err.message) or "", file=named(err.file),
                                section=err.section, key=err.key, utt=err.utt) from None

    def _fill(self, name: str, matrices: Iterator[Tuple[str, np.ndarray]],
              spans: Dict[str, Tuple[int, int]], rows: int) -> Tuple[np.ndarray, Set[str]]:
        array: Optional[np.ndarray] = None
        seen: Set[str] = set()
        for utt, feats in matrices:
            first, n = spans[utt]
            if len(feats) != n:
                raise self._length_error(name, utt, len(feats))
            if array is None:
                array = np.empty((rows, feats.shape[1]), dtype=np.float32)
            if feats.shape[1] != array.shape[1]:
                raise DataError(f"dataset {self.name}: fea {name} has {feats.shape[1]} columns, "
                                f"{array.shape[1]} in {next(iter(seen))}", utt=utt)
            array[first:first + n] = feats
            seen.add(utt)
        if array is None:
            raise DataError(f"dataset {self.name}: the fea_opts pipe gave no features",
                            file=str(self.streams[name].scp), utt=next(iter(spans)))
        return array, seen

    def _length_error(self, name: str, utt: str, frames: int) -> DataError:
        shown = ", ".join([f"fea {name} {frames}"] +
                          [f"lab {lab} {len(table[utt])}" for lab, table in self.labels.items()])
        return DataError(f"dataset {self.name}: frame counts differ ({shown})", utt=utt)


def open_source(spec: DatasetSpec, feature_names: List[str], label_names: List[str], log: Log,
                chatter: Optional[Callable[[str], None]] = None,
                num_frames: Optional[Mapping[str, int]] = None) -> DataSource:
    """Index ``spec``: scp lines and labels read, features left for the chunks. A set read
    without labels (``transcribe``'s) gives its frames per utterance in ``num_frames`` (its
    ``utt2num_frames``); the chunks check them against the features."""
    streams = {f.name: f for f in spec.features if f.name in feature_names}
    scp_lines = {}
    for name, stream in streams.items():
        scp_lines[name] = read_kaldi_map(stream.scp)
        if not scp_lines[name]:
            raise DataError("holds no utterances", file=str(stream.scp))
    labels = {lab.name: load_labels(lab, log, np.int32) for lab in spec.labels
              if lab.name in label_names}
    tables = {**{f"fea {k}": v for k, v in scp_lines.items()},
              **{f"lab {k}": v for k, v in labels.items()},
              **({} if labels or num_frames is None else {"utt2num_frames": num_frames})}
    utts = common_utts(spec.name, tables, log)
    check_lengths(spec.name, utts, {f"lab {k}": v for k, v in labels.items()})
    if spec.n_chunks > len(utts):
        raise DataError(f"dataset {spec.name}: n_chunks = {spec.n_chunks} is more than its "
                        f"{len(utts)} utterances", file=str(next(iter(streams.values())).scp))
    frames = ({u: len(next(iter(labels.values()))[u]) for u in utts} if labels else
              {u: int(num_frames[u]) for u in utts})
    log.info(f"{spec.name}: {len(utts)} utterances, {sum(frames.values())} frames, "
             f"read in {spec.n_chunks} chunk{'s' if spec.n_chunks > 1 else ''}")
    keep = set(utts)
    return DataSource(spec, utts, frames,
                      {k: {u: v for u, v in t.items() if u in keep} for k, t in labels.items()},
                      {k: {u: v for u, v in t.items() if u in keep} for k, t in scp_lines.items()},
                      streams, log, chatter)


# -------------------------------------------------------------------------------------------
# Plans: which utterances each chunk reads and its batches of pieces (no reading)


@dataclass(frozen=True)
class ChunkPlan:
    index: int
    utts: List[str]  # sorted
    batches: List[List[Piece]]


def train_plan(source: Source, epoch: int, seed: int, max_len: int,
               batch_size: int) -> List[ChunkPlan]:
    """The epoch's chunks and batches (module docstring), a function of (seed, epoch) only."""
    utts, n = source.utts, source.n_chunks
    if n == 1:
        parts = [list(utts)]
    else:
        order = np.random.default_rng([seed, epoch]).permutation(len(utts))
        parts = [[utts[i] for i in np.sort(part)] for part in np.array_split(order, n)]
    return [ChunkPlan(c, part, shuffled(cut(source, max_len, part), batch_size,
                                        (seed, epoch) if n == 1 else (seed, epoch, c)))
            for c, part in enumerate(parts)]


def eval_plan(source: Source, max_len: int, batch_size: int) -> List[ChunkPlan]:
    """Contiguous parts of the sorted utterances, whole utterances longest first in each."""
    parts = [[source.utts[i] for i in part]
             for part in np.array_split(np.arange(len(source.utts)), source.n_chunks)]
    return [ChunkPlan(c, part, eval_order(source, max_len, batch_size, part))
            for c, part in enumerate(parts)]


def share_plans(plans: Sequence[ChunkPlan], rank: int, size: int) -> List[ChunkPlan]:
    """Process ``rank``'s share of ``size``: every ``size``-th batch counted across the chunks,
    each chunk kept with only the utterances of its kept batches (so no process reads what it
    does not compute) and left out when none of its batches is kept."""
    shared, seen = [], 0
    for plan in plans:
        batches = [b for i, b in enumerate(plan.batches, seen) if i % size == rank]
        seen += len(plan.batches)
        if batches:
            utts = sorted({piece.utt for batch in batches for piece in batch})
            shared.append(ChunkPlan(plan.index, utts, batches))
    return shared


# -------------------------------------------------------------------------------------------
# Iterating


class _ChunkReader(Dataset):
    """Chunk ``i`` of the plans; a bad-input error is returned, so that the consumer raises it
    as it is (a DataLoader worker would wrap it in a traceback)."""

    def __init__(self, source: Source, plans: Sequence[ChunkPlan]) -> None:
        self.source, self.plans = source, plans

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int) -> Union[Frames, UserInputError]:
        try:
            return self.source.read_chunk(self.plans[i].utts)
        except UserInputError as err:
            return err


def _as_is(item: object) -> object:
    return item


WORKER_NICENESS = 5  # added to a data worker's niceness: the training process has priority


def background_worker(_: int = 0) -> None:
    """How a data worker starts (the DataLoader's ``worker_init_fn``): one torch thread and a
    lower priority. Reading chunks needs neither OpenMP threads (which would compete with the
    training process's for the cores) nor the training process's priority (loading runs far
    ahead of training; docs/performance.md, "Throughput under contention")."""
    torch.set_num_threads(1)
    os.nice(WORKER_NICENESS)


def plan_pieces(source: Source, plans: Sequence[ChunkPlan], workers: int = 0,
                start_batch: int = 0) -> Iterator[Tuple[Frames, List[Piece]]]:
    """Each batch of ``plans`` as (its chunk, its pieces), in order, from batch ``start_batch``
    on (earlier chunks are not read); pieces the pipe gave no features for are left out."""
    first = 0
    while first < len(plans) and start_batch >= len(plans[first].batches):
        start_batch -= len(plans[first].batches)
        first += 1
    kept = list(plans[first:])
    # Its own generator: a DataLoader iterator draws its base seed from the generator it is
    # given, or else from torch's global one, which dropout (and a resumed epoch) depends on.
    loader = DataLoader(_ChunkReader(source, kept), batch_size=None, num_workers=workers,
                        collate_fn=_as_is, prefetch_factor=1 if workers else None,
                        generator=torch.Generator().manual_seed(0),
                        worker_init_fn=background_worker if workers else None)
    chunks = iter(loader)
    for i, plan in enumerate(kept):
        chunk = next(chunks)
        if isinstance(chunk, UserInputError):
            raise chunk
        for pieces in plan.batches[start_batch if i == 0 else 0:]:
            kept_pieces = [p for p in pieces if chunk.holds(p.utt)]
            if kept_pieces:
                yield chunk, kept_pieces
        del chunk  # before the next chunk is read: one chunk alive without workers


def plan_batches(source: Source, plans: Sequence[ChunkPlan], workers: int = 0,
                 start_batch: int = 0) -> Iterator[Batch]:
    """Padded batches of :func:`plan_pieces`."""
    for chunk, pieces in plan_pieces(source, plans, workers, start_batch):
        batch = make_batch(chunk, pieces)
        del chunk  # not held while the next chunk is read
        yield batch
