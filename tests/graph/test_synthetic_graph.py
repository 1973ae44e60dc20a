"""The synthetic word HCLG of the decoding benchmark, and the fast const reader on it."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from pytorch_kaldi_snn.decoding import (
    DecodeOptions, decode_ark, decode_utterance, latgen_command, load_graph, read_transition_model,
)
from pytorch_kaldi_snn.decoding.graph import read_fst_header
from pytorch_kaldi_snn.decoding.rtf import measure_rtf, plausible_loglikes, spoken_loglikes
from pytorch_kaldi_snn.graph.synthetic import random_lexicon, synthetic_word_graph
from pytorch_kaldi_snn.io import write_mat_ark
from pytorch_kaldi_snn.kaldi_ports import kaldifst


@pytest.fixture(scope="module")
def word_graph(tmp_path_factory):
    out = tmp_path_factory.mktemp("wg")
    (out / "lang_test").mkdir()
    (out / "lang_test" / "mine.txt").write_text("a user's file\n")  # checked below
    return synthetic_word_graph(out, num_words=150, num_sentences=400, seed=1)


def test_the_build_keeps_what_was_in_its_folder(word_graph):
    """Its lang dir is a temporary folder of its own: a lang_test already there is untouched."""
    out = word_graph.graph_dir.parent
    assert (out / "lang_test" / "mine.txt").read_text() == "a user's file\n"
    assert sorted(p.name for p in out.iterdir()) == ["final.mdl", "graph", "lang_test"]


def lexicon(graph) -> dict[int, list[int]]:
    lines = (graph.graph_dir / "lexicon.int").read_text().splitlines()
    return {int(f[0]): [int(p) for p in f[1:]] for f in (line.split() for line in lines)}


def test_lexicon_is_unique_and_prefix_free():
    prons = [tuple(p) for p in random_lexicon(500, list(range(2, 40)), np.random.default_rng(0))]
    assert len(set(prons)) == 500 and all(2 <= len(p) <= 7 for p in prons)
    prefixes = {p[:k] for p in prons for k in range(1, len(p))}
    assert not prefixes & set(prons)


def test_word_graph_size_and_files(word_graph):
    g = word_graph
    assert g.num_words == 150 and g.num_bigrams > 300
    hclg = load_graph(g.graph_dir / "HCLG.fst")
    assert (hclg.num_states, sum(hclg.num_arcs(s) for s in range(hclg.num_states))) == (g.num_states, g.num_arcs)
    assert g.num_arcs > 5 * g.num_words  # a word graph: many arcs per word
    words = (g.graph_dir / "words.txt").read_text().split()
    assert words[:4] == ["<eps>", "0", "w00000", "1"] and "#0" in words and "</s>" in words
    assert len(lexicon(g)) == 150


def test_spoken_words_decode_back(word_graph):
    """Clear acoustics of three lexicon words decode to those words: L, G and H fit together."""
    g = word_graph
    tm = read_transition_model(g.model)
    lex = lexicon(g)
    said = [7, 42, 99]
    phones = [p for w in said for p in lex[w]]
    loglikes = spoken_loglikes(tm, phones, np.random.default_rng(0), margin=40.0)
    hyp = decode_utterance(loglikes, load_graph(g.graph_dir / "HCLG.fst"), tm, DecodeOptions(), with_lattice=False)
    assert hyp is not None and hyp.words == said and hyp.num_frames == len(loglikes)
    assert list(tm.ali_to_phone_seq(hyp.alignment)) == phones


def test_measure_rtf_reports_what_it_timed(word_graph):
    result = measure_rtf(word_graph.graph_dir, word_graph.model, utterances=2, frames=100)
    assert (result.frames, result.utterances, result.save_lattices, result.kind) == (200, 2, False, "plausible")
    assert result.decode_s > 0 and result.rtf == pytest.approx(result.decode_s / 2.0)
    with pytest.raises(ValueError, match="plausible or random"):
        measure_rtf(word_graph.graph_dir, word_graph.model, kind="flat")


def test_const_reader_equals_openfst_on_a_word_graph(word_graph, kaldi_env, tmp_path):
    """The word HCLG as mkgraph.sh writes it (OpenFst's fstconvert --fst_type=const) reads as
    OpenFst's own reader reads the vector graph it was converted from."""
    const = tmp_path / "HCLG.const.fst"
    subprocess.run(["fstconvert", "--fst_type=const", str(word_graph.graph_dir / "HCLG.fst"), str(const)],
                   check=True, env=kaldi_env)
    assert read_fst_header(const.read_bytes(), str(const)).fst_type == "const"
    new, old = load_graph(const), kaldifst.StdVectorFst.read(str(word_graph.graph_dir / "HCLG.fst"))
    assert (new.num_states, new.start) == (old.num_states, old.start) == (word_graph.num_states, 0)
    for s in range(new.num_states):
        assert new.final(s).value == old.final(s).value
        assert [(a.ilabel, a.olabel, a.weight.value, a.nextstate) for a in kaldifst.ArcIterator(new, s)] == \
            [(a.ilabel, a.olabel, a.weight.value, a.nextstate) for a in kaldifst.ArcIterator(old, s)]


def test_builtin_one_best_equals_latgen_on_a_word_graph(word_graph, kaldi_env, tmp_path):
    """Kaldi's latgen-faster-mapped reads the synthetic graph and model and finds the same 1-best
    as the built-in decoder without lattices (plausible acoustics of random words)."""
    tm = read_transition_model(word_graph.model)
    rng = np.random.default_rng(3)
    lex = list(lexicon(word_graph).values())
    ark = tmp_path / "ll.ark"
    write_mat_ark(ark, None, [(f"u{i}", plausible_loglikes(tm, 150, rng, lex)) for i in range(3)])
    ours = decode_ark(ark, word_graph.graph_dir, word_graph.model, tmp_path / "ours", save_lattices=False)
    theirs = tmp_path / "kaldi.txt"
    args = latgen_command("latgen-faster-mapped", str(ark), word_graph.graph_dir, word_graph.model,
                          tmp_path, DecodeOptions(), save_lattices=False)
    subprocess.run(args[:-2] + [f"ark,t:{theirs}"], check=True, env=kaldi_env, capture_output=True)
    assert (ours / "best_words.txt").read_text() == theirs.read_text()
    assert len(theirs.read_text().splitlines()) == 3
