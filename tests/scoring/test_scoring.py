"""PER/WER scoring: exact hand-made counts, Kaldi's compute-wer output, TIMIT folding."""
from __future__ import annotations


import pytest

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.scoring import (
    fold,
    run_sclite,
    sclite_available,
    sclite_edit_counts,
    score,
    score_files,
    timit_fold_map,
)
from repo_paths import KALDI_GOLDEN_DECODE
from skips import missing

DECODE = KALDI_GOLDEN_DECODE / "decode"


def test_hand_made_counts():
    refs = {"u1": "a b c d".split(), "u2": "x y".split(), "u3": "p q r".split()}
    hyps = {"u1": "a c d e".split(), "u2": "x z y".split()}  # u3 missing
    for mode in ("sclite", "kaldi"):
        counts = score(refs, hyps, mode=mode)
        # u1: del b, ins e; u2: ins z; u3: 3 deletions
        assert (counts.ins, counts.dels, counts.subs) == (2, 4, 0)
        assert counts.errors == 6 and counts.ref_words == 9
        assert counts.error_rate == pytest.approx(100 * 6 / 9)
        assert counts.missing == ("u3",) and counts.sentence_errors == 3


# (ref, hyp, sclite's (ins, del, sub)): counts printed by NIST sclite 2.4.10 (Debian sctk,
# ``sclite -i rm -o pra``) when these tests were written; sclite is not needed to run them.
SCLITE_CASES = [
    ("a a a b", "b c c", (0, 1, 3)),  # kaldialign sclite_mode says (2, 3, 0): same cost, other tie
    ("dh ah f ow n r ae ng t w ay s", "dh ah f l b l w ao l aw d", (0, 1, 8)),  # golden f2_u051
    ("eh v r ih w ah n eh n jh oy d dh ah sh ow", "eh ah uh l ah sh d l aw", (0, 7, 6)),  # kl2_u059
]


@pytest.mark.parametrize("ref, hyp, expected", SCLITE_CASES)
def test_sclite_alignment_matches_sclite(ref, hyp, expected):
    assert sclite_edit_counts(ref.split(), hyp.split()) == expected


def test_sclite_and_kaldi_split_differently():
    """Unit costs give the minimum edit distance; sclite's 3/3/4 costs prefer del + ins to 2 subs."""
    refs, hyps = {"u": "a b".split()}, {"u": "b c".split()}
    kaldi, sclite = score(refs, hyps, mode="kaldi"), score(refs, hyps, mode="sclite")
    assert (sclite.ins, sclite.dels, sclite.subs) == (1, 1, 0)  # cost 6 < 8
    assert kaldi.errors == 2


def test_real_sclite_agrees(tmp_path):
    """Runs where sclite is installed (CI's Kaldi install puts sctk on PATH): the real binary and
    our sclite mode agree."""
    if not sclite_available():
        missing("needs NIST sclite on PATH (the sctk package)")
    counts = run_sclite(DECODE / "ref.txt", DECODE / "hyp.txt", tmp_path)
    assert counts == score_files(DECODE / "ref.txt", DECODE / "hyp.txt", mode="sclite")


def test_compute_wer_reproduced():
    counts = score_files(DECODE / "ref.txt", DECODE / "hyp.txt", mode="kaldi")
    assert (counts.ins, counts.dels, counts.subs, counts.ref_words) == (6, 81, 45, 192)
    assert counts.kaldi_report() == (DECODE / "compute_wer.txt").read_text()
    sclite = score_files(DECODE / "ref.txt", DECODE / "hyp.txt")  # sclite 2.4.10 printed the same
    assert (sclite.ins, sclite.dels, sclite.subs) == (6, 81, 45)


def test_unknown_hyp_utterance(tmp_path):
    (tmp_path / "ref").write_text("u1 a b\n")
    (tmp_path / "hyp").write_text("u1 a b\nu9 c\n")
    with pytest.raises(DataError, match=r"hyp: utterance u9: .*not in the reference"):
        score_files(tmp_path / "ref", tmp_path / "hyp")
    with pytest.raises(ValueError, match="valid: sclite, kaldi"):
        score({}, {}, mode="nist")


def test_empty_hypothesis_line(tmp_path):
    (tmp_path / "ref").write_text("u1 a b\n")
    (tmp_path / "hyp").write_text("u1\n")
    counts = score_files(tmp_path / "ref", tmp_path / "hyp")
    assert (counts.dels, counts.missing) == (2, ())


def test_timit_folding():
    m61_39 = timit_fold_map(61)
    assert len(m61_39) == 61 and len({v for v in m61_39.values() if v}) == 39
    assert len({v for v in timit_fold_map(61, 48).values() if v}) == 48
    assert m61_39["q"] is None and m61_39["ax-h"] == "ah" and m61_39["zh"] == "sh" and m61_39["pcl"] == "sil"
    m48_39 = timit_fold_map(48)
    assert len(m48_39) == 48 and m48_39["vcl"] == "sil" and m48_39["ao"] == "aa"
    assert all(m61_39[p] == m48_39[timit_fold_map(61, 48)[p]] for p in m61_39 if p != "q")
    identity = timit_fold_map(39)
    assert all(k == v for k, v in identity.items()) and len(identity) == 39
    assert fold("h# sh q ix n h#".split(), m61_39) == "sil sh ih n sil".split()
    with pytest.raises(DataError, match="'xx' is not in the folding map"):
        fold(["aa", "xx"], identity, utt="u1")
    with pytest.raises(ValueError):
        timit_fold_map(39, 61)


def test_folding_in_scoring():
    refs, hyps = {"u": "h# ix q n h#".split()}, {"u": "pau ih n epi".split()}
    counts = score(refs, hyps, phone_map=timit_fold_map(61))
    assert counts.errors == 0 and counts.ref_words == 4
