"""Load one cfg dataset into memory: feature streams (after ``fea_opts`` and the context window)
and frame labels (``lab_opts`` applied to the alignments in ``lab_folder``).

Every set is streamed (:mod:`pytorch_kaldi_snn.data.streamed`, which reads its labels and checks
its utterances here); the tests load a whole set into memory as the reference the streamed
batches are checked against (tests/support/in_memory.py).

Labels come from Kaldi's ``ali-to-pdf`` / ``ali-to-phones --per-frame=true`` when those binaries
are on PATH (as PyTorch-Kaldi runs them), else from the native readers; the log says which.
"""
from __future__ import annotations

import logging
import shlex
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

from pytorch_kaldi_snn.config.datasets import DatasetSpec, LabelSpec
from pytorch_kaldi_snn.decoding.transition_model import read_transition_model
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.gmm.labels import read_lab_folder
from pytorch_kaldi_snn.io import read_int_vectors
from pytorch_kaldi_snn.io.commands import path_argument

Log = logging.Logger


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
              f"{spec.opts} {shlex.quote(path_argument(spec.folder / 'final.mdl'))} ark:- ark:-")
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
