"""Load one cfg dataset into memory: feature streams (after ``fea_opts`` and the context window)
and frame labels (``lab_opts`` applied to the alignments in ``lab_folder``).

Training and evaluation stream their sets (:mod:`pytorch_kaldi_snn.data.streamed`, which reuses
the label reading and checks here); loading a whole set is for small inputs (``transcribe``)
and is the reference the streamed batches are tested against.

Labels come from Kaldi's ``ali-to-pdf`` / ``ali-to-phones --per-frame=true`` when those binaries
are on PATH (as PyTorch-Kaldi runs them), else from the native readers; the log says which.
"""
from __future__ import annotations

import logging
import shlex
import shutil
from pathlib import Path
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from pytorch_kaldi_snn.config.experiment import DatasetSpec, FeatureSpec, LabelSpec
from pytorch_kaldi_snn.data.batching import Piece
from pytorch_kaldi_snn.decoding.transition_model import read_transition_model
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.features.pipes import read_features
from pytorch_kaldi_snn.features.transforms import splice_feats
from pytorch_kaldi_snn.gmm.labels import read_lab_folder
from pytorch_kaldi_snn.io import read_int_vectors

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


def load_labels(spec: LabelSpec, log: Log, dtype: type = np.int64) -> Dict[str, np.ndarray]:
    binary = spec.opts.split()[0]
    alignments = sorted(spec.folder.glob("ali.*.gz"))
    if not alignments:
        raise DataError("no ali.*.gz alignments (align a new set with the recipe's GMM: "
                        "python -m pytorch_kaldi_snn.prepare_set)", file=str(spec.folder))
    if shutil.which(binary):
        log.info(f"labels {spec.name}: Kaldi `{spec.opts}` on {spec.folder}")
        labels = _kaldi_labels(spec, alignments)
    else:
        log.info(f"labels {spec.name}: native `{spec.opts}` on {spec.folder} (no Kaldi binaries)")
        labels = read_lab_folder(spec.folder, spec.opts)
    if not labels:
        raise DataError("the alignments hold no utterances", file=str(spec.folder))
    return {utt: np.asarray(lab, dtype=dtype) for utt, lab in labels.items()}


def _kaldi_labels(spec: LabelSpec, alignments: List[Path]) -> Dict[str, np.ndarray]:
    """``gunzip | ali-to-pdf`` (or ali-to-phones) under pipefail, so that either failing raises.

    The reader knows only the last good utterance; the failing one is the next in the
    alignment archives, which the native reader can list.
    """
    script = (f"gunzip -c -- {' '.join(shlex.quote(str(a)) for a in alignments)} | "
              f"{spec.opts} {shlex.quote(str(spec.folder / 'final.mdl'))} ark:- ark:-")
    labels: Dict[str, np.ndarray] = {}
    try:
        for utt, lab in read_int_vectors(f"ark:bash -o pipefail -c {shlex.quote(script)} |"):
            labels[utt] = lab
    except DataError:
        failing = _next_alignment(alignments, list(labels))
        where = "" if failing else f" after {len(labels)} utterances"
        raise DataError(f"`{spec.opts}` failed{where} (Kaldi's messages are in the log)",
                        file=str(spec.folder / "ali.*.gz"), utt=failing) from None
    return labels


def _next_alignment(alignments: List[Path], done: List[str]) -> Optional[str]:
    try:
        keys = [utt for path in alignments for utt, _ in read_int_vectors(path)]
    except DataError:
        keys = []
    return keys[len(done)] if len(keys) > len(done) else None


def label_sizes(spec: DatasetSpec) -> Dict[str, int]:
    """Output size per label set (``N_out_<lab_name>``): pdfs, or the largest phone id + 1."""
    sizes = {}
    for lab in spec.labels:
        model = read_transition_model(lab.folder / "final.mdl")
        sizes[lab.name] = max(model.topology.phones) + 1 if lab.is_phones else model.num_pdfs
    return sizes


def common_utts(name: str, tables: Mapping[str, Mapping[str, object]], log: Log) -> List[str]:
    """Utterances present everywhere; the ones missing somewhere are logged and skipped."""
    keys = [set(t) for t in tables.values()]
    common = set.intersection(*keys)
    dropped = set.union(*keys) - common
    if dropped:
        log.info(f"{name}: {len(dropped)} utterances lack features or labels and are skipped, "
            f"e.g. {sorted(dropped)[0]}")
    if not common:
        raise DataError(f"dataset {name}: no utterance has both features and labels")
    return sorted(common)


def check_lengths(name: str, utts: List[str],
                   tables: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    for utt in utts:
        lengths = {key: len(table[utt]) for key, table in tables.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k} {n}" for k, n in lengths.items())
            raise DataError(f"dataset {name}: frame counts differ ({shown})", utt=utt)


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
