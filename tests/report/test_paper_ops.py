"""The authors' op counter reproduces Table 1's column; the corrected count changes the claims."""
import pytest

from pytorch_kaldi_snn.report.paper_ops import PAPER_TIMIT, table
from repo_paths import ROOT


def _rows():
    return {row["arch"]: row for row in table()}


def test_authors_counter_reproduces_the_published_ops_column():
    rows = _rows()
    for arch, paper in PAPER_TIMIT.items():
        assert rows[arch]["authors"] == pytest.approx(paper.ops_vs_lstm, abs=0.013), arch
    assert rows["v2"]["gru_saving_authors"] == pytest.approx(10.13, abs=0.1)


def test_corrected_count_v2_saves_about_8x_and_v1_is_not_costlier_than_traditional():
    rows = _rows()
    assert 7.5 < rows["v2"]["gru_saving_corrected"] < 9.0
    assert rows["v1"]["corrected"] < rows["traditional"]["corrected"]
    assert rows["v1"]["authors"] > rows["traditional"]["authors"]
    # LSTM/GRU and the traditional SNN are counted the same way by both
    for arch in ("gru", "traditional"):
        assert rows[arch]["corrected"] == pytest.approx(rows[arch]["authors"], rel=0.01)


def test_docs_show_the_table_the_command_prints():

    from pytorch_kaldi_snn.report.paper_ops import render
    docs = (ROOT / "docs" / "model.md").read_text()
    assert render() in docs
