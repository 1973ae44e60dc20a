"""MBR decoding (scoring/mbr.py) against hand-worked lattices and Kaldi's lattice-mbr-decode."""
from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from pytorch_kaldi_snn.decoding import DecodeOptions, decode_ark
from pytorch_kaldi_snn.io.lattice import (
    CompactArc, CompactLattice, CompactWeight, best_path, read_lattices, write_lattices,
)
from pytorch_kaldi_snn.scoring import read_transcripts
from pytorch_kaldi_snn.config.scoring_opts import ScoringOptions, parse_scoring_opts
from pytorch_kaldi_snn.scoring.lm_sweep import builtin_hypotheses, kaldi_hypotheses, sweep
from pytorch_kaldi_snn.scoring.mbr import mbr_decode, mbr_words, scaled
from repo_paths import KALDI_GOLDEN_DECODE as GOLDEN  # lattices Kaldi wrote

WORDS = "<eps> 0\na 1\nb 2\nc 3\nd 4\n"


def _three_paths() -> CompactLattice:
    """Paths 'a b' (p = 0.4), 'a c' (0.3), 'd c' (0.3) as graph costs -log p, sharing no state.

    1-best: 'a b'. Expected edit distance of 'a b' = 0.3 * 1 + 0.3 * 2 = 0.9, of 'a c' =
    0.4 * 1 + 0.3 * 1 = 0.7 (the least): MBR answers 'a c' with Bayes risk 0.7."""
    w = CompactWeight
    arcs = []
    for k, (first, second, p) in enumerate([(1, 2, 0.4), (1, 3, 0.3), (4, 3, 0.3)]):
        mid = 2 + k
        arcs += [CompactArc(0, mid, first, w(-math.log(p), 0.0, (1,))),
                 CompactArc(mid, 1, second, w(0.0, 0.0, (2,)))]
    return CompactLattice(0, 5, tuple(arcs), {1: w(0.0, 0.0, ())})


def test_mbr_picks_the_least_expected_edit_distance_not_the_best_path():
    lat = _three_paths()
    assert best_path(lat, 1.0)[0] == [1, 2]
    words, risk = mbr_words(lat)
    assert words == [1, 3]
    assert risk == pytest.approx(0.7, abs=1e-6)


def test_acoustic_scale_reaches_the_posteriors():
    """Acoustic costs that favour 'a b' strongly make it the MBR answer too, and only at a large
    enough acoustic scale (a small LM weight)."""
    w = CompactWeight
    lat = _three_paths()
    arcs = tuple(CompactArc(a.src, a.dst, a.word, w(a.weight.graph, -10.0 if a.word == 2 else 0.0,
                                                     a.weight.tids)) for a in lat.arcs)
    lat = CompactLattice(lat.start, lat.num_states, arcs, lat.finals)
    assert mbr_decode(lat, 1.0) == [1, 2]  # p('a b') ~ 1
    assert mbr_decode(lat, 0.001) == [1, 3]  # acoustics scaled away: the graph's posteriors


def test_decode_mbr_option_parses_as_kaldi_writes_it():
    assert parse_scoring_opts("--min-lmwt 1 --max-lmwt 3 --decode-mbr true").decode_mbr is True
    assert parse_scoring_opts("--decode_mbr=false").decode_mbr is False
    assert ScoringOptions().decode_mbr is False  # the default stays the 1-best sweep
    opts = ScoringOptions(2, 4, (0.0, 0.5), True)
    assert parse_scoring_opts(opts.as_opts()) == opts
    with pytest.raises(Exception, match="--decode-mbr needs true or false, got 'yes'"):
        parse_scoring_opts("--decode-mbr yes")


def test_builtin_mbr_sweep_on_a_lattice_file(tmp_path):
    lat, words = tmp_path / "lat.1.gz", tmp_path / "words.txt"
    write_lattices(lat, [("u1", _three_paths())])
    words.write_text(WORDS)
    refs = {"u1": ["a", "c"]}
    one_best = sweep(refs, builtin_hypotheses(lat, words), ScoringOptions(1, 2), "kaldi")
    mbr = sweep(refs, builtin_hypotheses(lat, words, True), ScoringOptions(1, 2, decode_mbr=True),
                "kaldi")
    assert [r.counts.errors for r in one_best.rows] == [1, 1]
    assert [r.counts.errors for r in mbr.rows] == [0, 0]


def _kaldi_mbr(lat: Path, path: str, scale: float) -> dict:
    """Kaldi's lattice-mbr-decode: words and Bayes risk per utterance."""
    done = subprocess.run(
        ["lattice-mbr-decode", f"--acoustic-scale={scale}", f"ark:gunzip -cf {lat}|", "ark,t:-",
         "ark,t:/dev/stderr"], capture_output=True, text=True, check=True, env={"PATH": path})
    words = {line.split()[0]: [int(w) for w in line.split()[1:]]
             for line in done.stdout.splitlines()}
    risks = {line.split()[0]: float(line.split()[1]) for line in done.stderr.splitlines()
             if len(line.split()) == 2 and not line.startswith(("lattice-mbr-decode", "LOG"))}
    return {utt: (words[utt], risks[utt]) for utt in words}


def test_same_words_and_risk_as_kaldi_on_a_hand_lattice(tmp_path, kaldi_env):
    lat = tmp_path / "lat.1.gz"
    write_lattices(lat, [("u1", _three_paths())])
    (words, risk), = _kaldi_mbr(lat, kaldi_env["PATH"], 1.0).values()
    assert words == [1, 3] and risk == pytest.approx(0.7, abs=1e-4)


def test_same_words_and_risk_as_kaldi_on_kaldi_lattices(kaldi_env):
    """Kaldi's own (determinized) lattices of the golden decode: every utterance's MBR words
    equal, the Bayes risk equal to float precision."""
    lat = GOLDEN / "decode" / "lat.1.gz"
    theirs = _kaldi_mbr(lat, kaldi_env["PATH"], 0.5)
    ours = {utt: mbr_words(scaled(one, 0.5)) for utt, one in read_lattices(lat)}
    assert [u for u in theirs if theirs[u][0] != ours[u][0]] == []
    for utt, (_, risk) in theirs.items():
        assert ours[utt][1] == pytest.approx(risk, rel=1e-4, abs=1e-4), utt


def test_kaldi_and_builtin_mbr_sweeps_agree_and_differ_from_one_best(kaldi_env):
    """The sweep of scoring_opts '--min-lmwt 1 --max-lmwt 2 --decode-mbr true' on the golden
    lattices: the same table by Kaldi's binaries and by ours, and not the 1-best table (MBR
    changes the hypotheses of some utterances there)."""
    lat, words = GOLDEN / "decode" / "lat.1.gz", GOLDEN / "graph" / "words.txt"
    refs = read_transcripts(GOLDEN / "decode" / "ref.txt")
    opts = parse_scoring_opts("--min-lmwt 1 --max-lmwt 2 --decode-mbr true")
    ours = sweep(refs, builtin_hypotheses(lat, words, True), opts, "kaldi")
    theirs = sweep(refs, kaldi_hypotheses(lat, words, kaldi_env["PATH"], True), opts, "kaldi")
    assert ours.table() == theirs.table()
    assert [r.hypotheses for r in ours.rows] == [r.hypotheses for r in theirs.rows]
    one_best = sweep(refs, builtin_hypotheses(lat, words), opts, "kaldi")
    assert [r.hypotheses for r in one_best.rows] != [r.hypotheses for r in ours.rows]


@pytest.fixture(scope="module")
def our_lattices(tmp_path_factory) -> Path:
    """Lattices our built-in decoder writes for the golden loglikes: not determinized, with
    epsilon arcs (what Kaldi's MBR treats differently from word arcs)."""
    out = tmp_path_factory.mktemp("our_decode")
    opts = DecodeOptions(acoustic_scale=0.1, lattice_beam=3.0)
    return decode_ark(GOLDEN / "decode" / "loglikes.ark", GOLDEN / "graph",
                      GOLDEN / "model" / "final.mdl", out, opts) / "lat.1.gz"


def test_same_words_and_risk_as_kaldi_on_our_decoders_lattices(our_lattices, kaldi_env):
    lats = dict(read_lattices(our_lattices))
    assert sum(a.word == 0 for lat in lats.values() for a in lat.arcs) > 0
    for lmwt in (1, 10):
        theirs = _kaldi_mbr(our_lattices, kaldi_env["PATH"], 1.0 / lmwt)
        for utt, lat in lats.items():
            words, risk = mbr_words(scaled(lat, 1.0 / lmwt))
            assert words == theirs[utt][0], (utt, lmwt)
            assert risk == pytest.approx(theirs[utt][1], rel=1e-5, abs=1e-5), (utt, lmwt)
