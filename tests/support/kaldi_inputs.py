"""Inputs shared by the tests that run real Kaldi binaries on what we write."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pytorch_kaldi_snn.gmm.labels import read_lab_folder
from pytorch_kaldi_snn.io.tables import write_mat_ark


def alignment_loglikes(corpus: Path, out: Path) -> Path:
    """Test-set pdf log-likelihoods that favour each frame's aligned pdf, plus Gaussian noise
    (GMM-like magnitudes, so that the default acoustic scale and beams keep decoding quick):
    a decode that is neither empty nor perfect, the same for every decoder."""
    rng = np.random.default_rng(0)
    pdfs = read_lab_folder(corpus / "exp/mono_ali_test", "ali-to-pdf")
    num_pdfs = int((corpus / "exp/mono/graph/num_pdfs").read_text())
    items = []
    for utt in sorted(pdfs):
        scores = rng.normal(0.0, 10.0, size=(len(pdfs[utt]), num_pdfs)).astype(np.float32)
        scores[np.arange(len(pdfs[utt])), pdfs[utt]] += 20.0
        items.append((utt, scores))
    write_mat_ark(out, None, items)
    return out
