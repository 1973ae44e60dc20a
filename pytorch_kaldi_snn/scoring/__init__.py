"""PER/WER scoring: sclite-exact and Kaldi compute-wer alignments, optional real sclite, TIMIT folding."""
from pytorch_kaldi_snn.scoring.per import (
    MODES,
    ErrorCounts,
    fold,
    kaldi_edit_counts,
    read_transcripts,
    run_sclite,
    sclite_available,
    sclite_edit_counts,
    score,
    score_files,
    timit_fold_map,
)

__all__ = [
    "MODES",
    "ErrorCounts",
    "fold",
    "kaldi_edit_counts",
    "read_transcripts",
    "run_sclite",
    "sclite_available",
    "sclite_edit_counts",
    "score",
    "score_files",
    "timit_fold_map",
]
