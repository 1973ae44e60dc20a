"""Kaldi-style scoring: the LM-weight / insertion-penalty sweep over lattices, built-in and Kaldi."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytorch_kaldi_snn.io.lattice import CompactArc, CompactLattice, CompactWeight, write_lattices
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.config.scoring_opts import ScoringOptions, parse_scoring_opts
from pytorch_kaldi_snn.scoring.lm_sweep import builtin_hypotheses, kaldi_hypotheses, sweep

WORDS = "<eps> 0\na 1\nb 2\nc 3\n"


def _lattice() -> CompactLattice:
    """Two paths: 'a' (graph 0, acoustic 10) and 'b c' (graph 5, acoustic 0).

    Cost graph + WIP * words + acoustic / LMWT: 'a' wins for LMWT >= 3 (10/3 < 5), 'b c' for
    LMWT = 1; with WIP = 6 at LMWT 1, 'a' costs 16 and 'b c' 17."""
    w = CompactWeight
    arcs = (CompactArc(0, 1, 1, w(0.0, 10.0, (1,))), CompactArc(0, 2, 2, w(5.0, 0.0, (1,))),
            CompactArc(2, 1, 3, w(0.0, 0.0, (2,))))
    return CompactLattice(0, 3, arcs, {1: w(0.0, 0.0, ())})


@pytest.fixture
def lattices(tmp_path: Path) -> tuple:
    lat = tmp_path / "lat.1.gz"
    write_lattices(lat, [("u1", _lattice())])
    words = tmp_path / "words.txt"
    words.write_text(WORDS)
    return lat, words


def test_best_weight_is_not_the_decoding_default(lattices):
    refs = {"u1": ["b", "c"]}
    result = sweep(refs, builtin_hypotheses(*lattices), ScoringOptions(1, 10), "kaldi")
    rates = {row.lmwt: row.counts.error_rate for row in result.rows}
    assert rates[1] == 0.0 and rates[10] == 100.0  # acwt 0.1 = LMWT 10: the wrong path
    assert (result.best.lmwt, result.best.counts.error_rate) == (1, 0.0)
    assert len(result.table()) == 10


def test_word_insertion_penalty_changes_the_winner(lattices):
    hyps = builtin_hypotheses(*lattices)
    assert hyps(1, 0.0)["u1"] == ["b", "c"] and hyps(1, 6.0)["u1"] == ["a"]
    result = sweep({"u1": ["a"]}, hyps, parse_scoring_opts('"--min-lmwt 1 --max-lmwt 1 '
                                                           '--word-ins-penalty 0.0,6.0"'), "kaldi")
    assert [(r.lmwt, r.wip, r.counts.errors) for r in result.rows] == [(1, 0.0, 2), (1, 6.0, 0)]
    assert (result.best.lmwt, result.best.wip) == (1, 6.0)


def test_scoring_opts_parsing():
    assert parse_scoring_opts("--min-lmwt=4 --max_lmwt 23") == ScoringOptions(4, 23, (0.0,))
    assert parse_scoring_opts(ScoringOptions(2, 3, (0.5, 1.0)).as_opts()) == ScoringOptions(2, 3, (0.5, 1.0))
    with pytest.raises(ConfigError, match="need 1 <= --min-lmwt <= --max-lmwt"):
        parse_scoring_opts("--min-lmwt 5 --max-lmwt 2")


def test_kaldi_rescoring_gives_the_same_sweep_on_the_same_lattices(lattices, kaldi_env):
    refs = {"u1": ["b", "c"]}
    opts = ScoringOptions(1, 10, (0.0, 6.0))
    ours = sweep(refs, builtin_hypotheses(*lattices), opts, "kaldi")
    theirs = sweep(refs, kaldi_hypotheses(*lattices, path=kaldi_env["PATH"]), opts, "kaldi")
    assert ours.table() == theirs.table()


def test_several_lattice_archives_are_one_set(tmp_path, kaldi_env):
    """lat.1.gz ... lat.N.gz of N decoding jobs: both paths read them all. (Both paths of the
    lattice span two frames here: Kaldi's MBR asserts that every path into a state has the
    same length.)"""
    words = tmp_path / "words.txt"
    words.write_text(WORDS)
    lat = _lattice()
    first = lat.arcs[0]
    timed = CompactArc(first.src, first.dst, first.word,
                       CompactWeight(first.weight.graph, first.weight.acoustic, (1, 1)))
    lat = CompactLattice(lat.start, lat.num_states, (timed, *lat.arcs[1:]), lat.finals)
    paths = [tmp_path / "lat.1.gz", tmp_path / "lat.2.gz"]
    write_lattices(paths[0], [("u1", lat)])
    write_lattices(paths[1], [("u2", lat)])
    for mbr in (False, True):
        ours = builtin_hypotheses(paths, words, mbr)(1, 0.0)
        theirs = kaldi_hypotheses(paths, words, kaldi_env["PATH"], mbr)(1, 0.0)
        assert ours == theirs == {"u1": ["b", "c"], "u2": ["b", "c"]}
