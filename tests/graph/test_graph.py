"""Lang dir, phone bigram LM, G and HCLG (pytorch_kaldi_snn.graph) on the tiny corpus."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from repo_paths import KALDI_GOLDEN_DECODE as GOLDEN
from synth_recipe import tiny_recipe

from pytorch_kaldi_snn.decoding.transition_model import read_transition_model
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.graph.lang import PhoneSet
from pytorch_kaldi_snn.io.tables import read_symbol_table
from pytorch_kaldi_snn.graph.lm import bigram_arpa
from pytorch_kaldi_snn.graph.mkgraph import main as mkgraph_main
from pytorch_kaldi_snn.kaldi_ports import kaldifst


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_recipe(tmp_path_factory)


def _arcs(fst: kaldifst.StdVectorFst) -> list[tuple[int, int, int, int, float]]:
    """``(src, dst, ilabel, olabel, weight)`` of every arc, from the text form."""
    arcs = []
    for line in fst.to_str().splitlines():
        f = line.split()
        if len(f) >= 4:
            arcs.append((int(f[0]), int(f[1]), int(f[2]), int(f[3]), float(f[4]) if len(f) > 4 else 0.0))
    return arcs


def test_lang_tables(recipe: Path) -> None:
    lang = recipe / "data" / "lang"
    phones = read_symbol_table(lang / "phones.txt")
    words = read_symbol_table(lang / "words.txt")
    assert phones["<eps>"] == 0 and phones["sil"] == 1 and phones["#0"] == 40 and len(phones) == 42
    assert phones["#1"] == 41 and "#1" not in words  # phone-level only, as prepare_lang.sh
    assert sorted(phones.values()) == list(range(42))
    assert {w: words[w] for w in phones if w != "#1"} == {p: i for p, i in phones.items()
                                                          if p != "#1"}  # same ids
    assert words["<s>"] == 41 and words["</s>"] == 42
    corpus_phones = [line.split()[0] for line in (recipe / "data" / "phones.txt").read_text().splitlines()]
    assert set(corpus_phones) == set(phones) - {"<eps>", "#0", "#1"}
    # 39 phones with sil = 1 give exactly prepare_lang.sh's topology of the golden system.
    assert (lang / "topo").read_text() == (GOLDEN / "lang" / "topo").read_text()
    assert (lang / "phones" / "disambig.int").read_text() == "40\n41\n"
    assert (lang / "phones" / "silence.csl").read_text() == "1\n"


def _read_arpa(path: Path) -> tuple[dict, dict, dict]:
    uni, bow, bi = {}, {}, {}
    section = None
    for line in path.read_text().splitlines():
        if line.startswith("\\"):
            section = line
            continue
        fields = line.split()
        if section == "\\1-grams:" and fields:
            uni[fields[1]] = 10 ** float(fields[0])
            if len(fields) == 3:
                bow[fields[1]] = 10 ** float(fields[2])
        elif section == "\\2-grams:" and fields:
            bi[(fields[1], fields[2])] = 10 ** float(fields[0])
    return uni, bow, bi


def test_bigram_distributions_sum_to_one(recipe: Path) -> None:
    uni, bow, bi = _read_arpa(recipe / "data" / "lang_test_bg" / "phone_bigram.arpa")
    vocab = [w for w in uni if w != "<s>"]
    assert len(vocab) == 40  # 39 phones and </s>
    assert math.isclose(sum(uni[w] for w in vocab), 1.0, rel_tol=1e-5)
    for h in [w for w in uni if w != "</s>"]:
        total = sum(bi.get((h, w), bow.get(h, 1.0) * uni[w]) for w in vocab)
        assert math.isclose(total, 1.0, rel_tol=1e-4), h


def test_bigram_counts_only_training_transcripts() -> None:
    arpa = bigram_arpa([["sil", "aa", "sil"], ["sil", "b", "sil"]], ["sil", "aa", "b", "z"])
    assert "\tsil aa\n" in arpa and "\tz" in arpa and "z sil" not in arpa
    with pytest.raises(DataError, match="outside the phone set"):
        bigram_arpa([["sil", "xx"]], ["sil", "aa"])


def test_phone_set_needs_silence() -> None:
    with pytest.raises(DataError, match="sil"):
        PhoneSet.from_inventory(["aa", "b"])


def test_g_reaches_every_phone(recipe: Path) -> None:
    g = kaldifst.StdVectorFst.read(str(recipe / "data" / "lang_test_bg" / "G.fst"))
    arcs = _arcs(g)
    assert all(i == o for _, _, i, o, _ in arcs if i != 40)  # an acceptor but for #0:<eps> backoff arcs
    assert {i for _, _, i, _, _ in arcs} == set(range(1, 41))  # every phone, and #0
    # The unigram (backoff) state: its arcs and final weight are a distribution.
    out = defaultdict(float)
    for src, _, i, _, w in arcs:
        if i != 40:
            out[src] += math.exp(-w)
    finals = {}
    for line in g.to_str().splitlines():
        f = line.split()
        if len(f) in (1, 2):
            finals[int(f[0])] = math.exp(-float(f[1])) if len(f) == 2 else 1.0
    unigram_state = max(out, key=lambda s: sum(1 for a in arcs if a[0] == s))
    assert math.isclose(out[unigram_state] + finals.get(unigram_state, 0.0), 1.0, rel_tol=1e-4)


def test_hclg_is_well_formed(recipe: Path) -> None:
    graph_dir = recipe / "exp" / "mono" / "graph"
    tm = read_transition_model(recipe / "exp" / "mono" / "final.mdl")
    hclg = kaldifst.StdVectorFst.read(str(graph_dir / "HCLG.fst"))
    arcs = _arcs(hclg)
    ilabels = {i for _, _, i, _, _ in arcs} - {0}
    disambig = {int(x) for x in (graph_dir / "disambig_tid.int").read_text().split()}
    assert ilabels <= set(range(1, tm.num_tids + 1))
    assert not ilabels & disambig
    assert ilabels == set(range(1, tm.num_tids + 1))  # every transition of every phone occurs
    assert set(tm.tid2phone[sorted(ilabels)]) == set(range(1, 40))
    assert {o for *_, o, _ in arcs} - {0} == set(range(1, 40))  # every phone can be output
    assert (graph_dir / "num_pdfs").read_text() == "117\n"
    for name in ("words.txt", "phones.txt", "phones/align_lexicon.int", "phones/silence.csl", "phones/disambig.int"):
        assert (graph_dir / name).is_file(), name
    assert np.all(np.isfinite([w for *_, w in arcs]))


def test_mkgraph_cli_reports_a_missing_model_in_one_line(recipe: Path, tmp_path: Path, capsys) -> None:
    code = mkgraph_main([str(recipe / "data" / "lang_test_bg"), str(tmp_path), str(tmp_path / "graph")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mkgraph: ") and "final.mdl" in err and err.count("\n") == 1
