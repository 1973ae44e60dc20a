"""Alignment dirs (``exp/mono_ali_<set>``) and the frame labels PyTorch-Kaldi reads from them.

An alignment dir holds ``ali.<job>.gz`` (gzipped binary int-vector archives of
transition-ids), ``final.mdl``, ``tree`` and ``num_jobs``, as ``steps/align_si.sh`` leaves it.
PyTorch-Kaldi's ``lab_folder`` + ``lab_opts`` pipe the archives through Kaldi's
``ali-to-pdf`` (``lab_cd``, context-dependent state labels) or
``ali-to-phones --per-frame=true`` (``lab_mono``); :func:`read_lab_folder` gives the same
labels natively, through the decoding package's TransitionModel reader.
"""
from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from pytorch_kaldi_snn.config.registry import LAB_OPTS
from pytorch_kaldi_snn.decoding.transition_model import TransitionModel, read_transition_model
from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.io.tables import atomic_outputs, read_int_vectors, write_int_vectors


def write_ali_dir(ali_dir: Path, alignments: Mapping[str, np.ndarray], model_dir: Path) -> None:
    """Write ``ali.1.gz`` (one job) and ``num_jobs``, and copy ``final.mdl`` and ``tree`` from ``model_dir``."""
    ali_dir = Path(ali_dir)
    ali_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ali_dir) as scratch:
        ark = Path(scratch) / "ali.1.ark"
        write_int_vectors(ark, sorted(alignments.items()))
        with atomic_outputs(ali_dir / "ali.1.gz") as (temp,):
            with open(ark, "rb") as src, gzip.open(temp, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if Path(model_dir).resolve() != ali_dir.resolve():
        for name in ("final.mdl", "tree"):
            with atomic_outputs(ali_dir / name) as (temp,):
                shutil.copyfile(Path(model_dir) / name, temp)
    with atomic_outputs(ali_dir / "num_jobs") as (temp,):
        Path(temp).write_text("1\n", encoding="utf-8")


def read_alignments(ali_dir: Path) -> dict[str, np.ndarray]:
    """All ``ali.<job>.gz`` archives of ``ali_dir`` (jobs 1..num_jobs), keyed by utterance."""
    ali_dir = Path(ali_dir)
    num_jobs_file = ali_dir / "num_jobs"
    if not num_jobs_file.is_file():
        raise DataError("missing (not an alignment dir?)", file=str(num_jobs_file))
    text = num_jobs_file.read_text().strip()
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"expected a positive job count, got {text!r}", file=str(num_jobs_file))
    alignments: dict[str, np.ndarray] = {}
    for job in range(1, int(text) + 1):
        for utt, ali in read_int_vectors(ali_dir / f"ali.{job}.gz"):
            if utt in alignments:
                raise DataError("utterance aligned in two jobs", file=str(ali_dir), utt=utt)
            alignments[utt] = np.asarray(ali, dtype=np.int64)
    return alignments


def frame_labels(alignments: Mapping[str, np.ndarray], model: TransitionModel, kind: str) -> dict[str, np.ndarray]:
    """Per-frame ``"pdf"`` ids (ali-to-pdf) or ``"phone"`` ids (ali-to-phones --per-frame=true)."""
    convert = {"pdf": model.ali_to_pdf, "phone": model.ali_to_phones_per_frame}[kind]
    labels = {}
    for utt, ali in alignments.items():
        try:
            labels[utt] = convert(ali)
        except DataError as err:
            raise DataError(err.message, file=err.file, utt=utt) from None
    return labels


def read_lab_folder(lab_folder: Path, lab_opts: str) -> dict[str, np.ndarray]:
    """The labels PyTorch-Kaldi would get from ``lab_folder`` with ``lab_opts``, without Kaldi."""
    kind = LAB_OPTS.get(" ".join(lab_opts.split()))
    if kind is None:
        raise ConfigError(f"lab_opts must be one of {sorted(LAB_OPTS)}, got {lab_opts!r}", key="lab_opts")
    model = read_transition_model(Path(lab_folder) / "final.mdl")
    try:
        return frame_labels(read_alignments(lab_folder), model, kind)
    except DataError as err:
        raise err if err.file else err.with_file(str(Path(lab_folder) / "ali.*.gz")) from None
