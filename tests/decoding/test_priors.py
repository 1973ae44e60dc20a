"""PyTorch-Kaldi priors against analyze-counts' output for Kaldi's own alignment."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from pytorch_kaldi_snn.decoding import log_priors, pdf_counts, read_counts, read_transition_model, write_counts
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io import read_int_vectors
from repo_paths import KALDI_GOLDEN_DECODE as GOLDEN


def test_counts_equal_analyze_counts(tmp_path):
    tm = read_transition_model(GOLDEN / "model" / "final.mdl")
    alignments = [tm.ali_to_pdf(ali) for _, ali in read_int_vectors(GOLDEN / "align" / "ali.1.gz")]
    counts = pdf_counts(alignments, tm.num_pdfs)
    kaldi = read_counts(GOLDEN / "model" / "pdf_counts.txt")
    np.testing.assert_array_equal(counts, kaldi)  # max |diff| = 0
    assert counts.sum() == sum(len(a) for a in alignments) + 0.5 * tm.num_pdfs
    write_counts(tmp_path / "counts.txt", counts)
    assert (tmp_path / "counts.txt").read_bytes() == (GOLDEN / "model" / "pdf_counts.txt").read_bytes()


def test_hand_counts_and_log_priors():
    counts = pdf_counts([np.array([0, 0, 2]), np.array([2, 2])], 4)
    np.testing.assert_array_equal(counts, [2.5, 0.5, 3.5, 0.5])
    priors = log_priors(counts)
    np.testing.assert_allclose(priors, np.log(counts / 7.0))
    assert np.exp(priors).sum() == pytest.approx(1.0)


def test_binary_double_vector(tmp_path):
    values = [1.5, 2.5, 1e7 + 0.5]
    (tmp_path / "c.bin").write_bytes(b"\0BDV \x04" + struct.pack("<i", 3) + struct.pack("<3d", *values))
    np.testing.assert_array_equal(read_counts(tmp_path / "c.bin"), values)
    write_counts(tmp_path / "c.txt", values)  # large counts stay exact in text too
    np.testing.assert_array_equal(read_counts(tmp_path / "c.txt"), values)


def test_bad_input(tmp_path):
    with pytest.raises(DataError, match="pdf-id 5 outside 0..3"):
        pdf_counts([np.array([1, 5])], 4)
    with pytest.raises(DataError, match="positive"):
        log_priors(np.array([1.0, 0.0]))
    (tmp_path / "bad.txt").write_text(" [ 1 x 3 ]\n")
    with pytest.raises(DataError, match="bad.txt.*non-number"):
        read_counts(tmp_path / "bad.txt")
    (tmp_path / "empty.txt").write_text(" [ ]\n")
    with pytest.raises(DataError, match="empty counts"):
        read_counts(tmp_path / "empty.txt")
