"""Forward the test set through the trained model and write what the decoder reads.

For a hybrid HMM decoder the network's log-posteriors ``log p(s|x)`` become scaled
log-likelihoods ``log p(s|x) - log p(s)`` (PyTorch-Kaldi's ``normalize_posteriors``), with the
priors ``p(s)`` from the label counts of the training set (``lab_count_file = auto``, as
Kaldi's ``analyze-counts``) or from a counts file. The whole utterance is one sequence, so a
streaming model sees exactly what it would see online.

The test set is streamed chunk by chunk (``[datasetN] n_chunks``, :mod:`pytorch_kaldi_snn.data.streamed`)
and each utterance's matrix is written to the ark as its batch is computed, so memory holds one
chunk's features and one batch's outputs. The ark's order is the evaluation order (chunk by
chunk, longest utterance first); Kaldi's readers and the decoders do not need it sorted.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import Tensor

from pytorch_kaldi_snn.config.experiment import Experiment
from pytorch_kaldi_snn.data.batching import Batch
from pytorch_kaldi_snn.data.streamed import DataSource
from pytorch_kaldi_snn.decoding.priors import log_priors, pdf_counts, read_counts
from pytorch_kaldi_snn.io import mat_ark_writer
from pytorch_kaldi_snn.layers.cost import ModelReport
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel
from pytorch_kaldi_snn.train.loop import evaluate

ARK = "forward_test.ark"


@dataclass(frozen=True)
class ForwardResult:
    ark: Path
    loss: float
    frame_err: float
    report: ModelReport


def prior_offsets(exp: Experiment, train: DataSource, n_out: int) -> np.ndarray:
    """What to subtract from log-posteriors: log-priors, or zeros without normalisation."""
    if not exp.forward.normalize_posteriors:
        return np.zeros(n_out, dtype=np.float32)
    name = exp.forward.normalize_with_counts_from
    spec = next(lab for lab in exp.train_set.labels if lab.name == name)
    if spec.count_file not in ("auto", "none"):
        counts = read_counts(spec.count_file)
    else:
        counts = pdf_counts((train.labels[name][u] for u in train.utts), n_out)
    return log_priors(counts).astype(np.float32)


def batch_scores(batch: Batch, log_posteriors: Tensor, offset: Tensor) -> List[Tuple[str, np.ndarray]]:
    """``(utt, (T, N) log-posteriors minus offset)`` of every piece of a padded batch."""
    scores = (log_posteriors - offset).cpu().numpy()
    return [(piece.utt, scores[: piece.end - piece.start, b]) for b, piece in enumerate(batch.pieces)]


def forward_test(exp: Experiment, model: AcousticModel, test: DataSource, offsets: np.ndarray,
                 device: torch.device, out: Path) -> ForwardResult:
    """Write ``out/forward_test.ark`` and measure test frame error and activity counters."""
    offset = torch.as_tensor(offsets, device=device)
    with mat_ark_writer(out / ARK) as put:
        def collect(batch: Batch, values: Dict[str, Tensor]) -> None:
            for utt, scores in batch_scores(batch, values[exp.forward.forward_out], offset):
                put(utt, scores)

        result = evaluate(model, test, exp.batches, exp.exp.data_workers, device, "forward",
                          max_len=sys.maxsize, collect=collect)
    return ForwardResult(out / ARK, result.loss, result.err, result.report)
