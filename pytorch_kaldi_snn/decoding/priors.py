"""PyTorch-Kaldi priors: pdf counts as Kaldi's ``analyze-counts`` writes them, and log-priors.

PyTorch-Kaldi divides network posteriors by priors computed from the training alignment::

    analyze-counts --binary=false --counts-dim=N "ark:ali-to-pdf final.mdl ark:ali.gz ark:- |" counts
    log_prior = log(counts / sum(counts))

``analyze-counts`` adds 0.5 to every count (so no pdf has prior 0) and writes a Kaldi
text vector `` [ c0 c1 ... ]``. This module does the same in numpy.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

import numpy as np

from pytorch_kaldi_snn.decoding.kaldi_stream import KaldiStream
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io import atomic_outputs

COUNT_FLOOR = 0.5  # what analyze-counts adds to every count


def pdf_counts(pdf_alignments: Iterable[np.ndarray], num_pdfs: int) -> np.ndarray:
    """Frame counts per pdf over all alignments, plus 0.5 each (``analyze-counts``).

    ``pdf_alignments`` are per-frame pdf-ids (``ali-to-pdf`` output, e.g.
    ``tm.ali_to_pdf(ali)``). DataError for a pdf-id outside ``0..num_pdfs-1``.
    """
    counts = np.zeros(num_pdfs, dtype=np.float64)
    for ali in pdf_alignments:
        ali = np.asarray(ali, dtype=np.int64)
        bad = ali[(ali < 0) | (ali >= num_pdfs)]
        if bad.size:
            raise DataError(f"pdf-id {int(bad[0])} outside 0..{num_pdfs - 1}")
        counts += np.bincount(ali, minlength=num_pdfs)
    return counts + COUNT_FLOOR


def log_priors(counts: np.ndarray) -> np.ndarray:
    """``log(counts / sum(counts))``, the log-prior PyTorch-Kaldi subtracts from log-posteriors."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts <= 0).any():
        raise DataError("pdf counts must be a non-empty vector of positive numbers")
    return np.log(counts / counts.sum())


def write_counts(path: Union[str, os.PathLike], counts: np.ndarray) -> None:
    """Write counts as a Kaldi text vector `` [ c0 c1 ... ]`` (``analyze-counts --binary=false``).

    Values use up to 10 significant digits, which equals Kaldi's 6-digit output for counts
    below 1e5 and is lossless for larger ones.
    """
    text = " [ " + "".join(f"{c:.10g} " for c in np.asarray(counts, dtype=np.float64)) + "]\n"
    with atomic_outputs(path) as (temp,):
        Path(temp).write_text(text, encoding="ascii")


def read_counts(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read a Kaldi vector of counts (text `` [ ... ]`` or binary ``FV``/``DV``) as float64."""
    ks = KaldiStream.open(Path(path))
    counts = ks.read_float_vector().astype(np.float64)
    if counts.size == 0:
        raise DataError("empty counts vector", file=str(path))
    return counts
