"""A realistic-size *word* HCLG for decoding benchmarks, built with this project's graph builder.

The built-in corpus decodes over a phone bigram (a few hundred states), which says nothing about
how the decoder scales to the word graphs of TIMIT-word or LibriSpeech recipes. This module
builds one of those sizes from nothing but the built-in phone set:

* a lexicon of ``num_words`` random pronunciations (2-7 non-silence phones of
  :data:`pytorch_kaldi_snn.corpus.phones.PHONES`), unique and prefix-free, so that L o G
  determinizes without the homophone symbols ``#1, #2 ...`` of ``add_lex_disambig.pl``;
* a word bigram (:func:`pytorch_kaldi_snn.graph.lm.bigram_arpa`'s smoothing) estimated on
  ``num_sentences`` random sentences whose words follow a Zipf law, as text does;
* the monophone HMMs of :func:`pytorch_kaldi_snn.gmm.topology.build_hmm_system` (3 states per
  phone, untrained transition probabilities) and :func:`pytorch_kaldi_snn.graph.hclg.make_hclg`.

The graph dir (``HCLG.fst``, ``words.txt``, ...) and ``final.mdl`` (its transition model, text)
are what :func:`pytorch_kaldi_snn.decoding.decode_ark` and latgen-faster-mapped read;
``graph/lexicon.int`` (``word-id phone-id ...``) lets a benchmark draw plausible utterances. The
lexicon's ``phones/align_lexicon.*`` are the lang dir's phone ones: nothing here aligns words.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from pytorch_kaldi_snn.corpus.phones import PHONES
from pytorch_kaldi_snn.gmm.model_io import transition_model_text
from pytorch_kaldi_snn.gmm.topology import build_hmm_system
from pytorch_kaldi_snn.graph.hclg import make_hclg, write_graph_dir
from pytorch_kaldi_snn.graph.lang import DISAMBIG, SPECIAL_WORDS, PhoneSet, write_fst, write_lang
from pytorch_kaldi_snn.graph.lm import bigram_arpa, write_arpa_and_g
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.kaldi_ports import kaldifst

ZIPF_EXPONENT = 1.0
SENTENCE_WORDS = (3, 15)  # words per random sentence, inclusive


@dataclass(frozen=True)
class WordGraph:
    """Where the synthetic graph is, and its size."""

    graph_dir: Path  # HCLG.fst, words.txt, phones.txt, phones/, num_pdfs, lexicon.int
    model: Path  # final.mdl: the transition model (text)
    num_words: int
    num_bigrams: int
    num_states: int
    num_arcs: int


def random_lexicon(num_words: int, phone_ids: list[int], rng: np.random.Generator) -> list[list[int]]:
    """``num_words`` distinct, prefix-free pronunciations of 2-7 phones from ``phone_ids``."""
    prons: list[tuple[int, ...]] = []
    chosen: set[tuple[int, ...]] = set()
    prefixes_of_chosen: set[tuple[int, ...]] = set()
    while len(prons) < num_words:
        pron = tuple(int(p) for p in rng.choice(phone_ids, size=int(rng.integers(2, 8))))
        prefixes = {pron[:k] for k in range(1, len(pron))}
        if pron in chosen or pron in prefixes_of_chosen or prefixes & chosen:
            continue
        prons.append(pron)
        chosen.add(pron)
        prefixes_of_chosen |= prefixes
    return [list(p) for p in prons]


def lexicon_fst(prons: list[list[int]], disambig: Optional[tuple[int, int]] = None) -> kaldifst.StdVectorFst:
    """L: a loop state 0 (final), one phone chain per word emitting the word on its first arc;
    with ``disambig = (phone #0, word #0)``, L_disambig: ``#0:#0`` on the loop for G's backoff
    arcs (as prepare_lang.sh's)."""
    lines, state = [], 0
    for word, pron in enumerate(prons, start=1):
        src = 0
        for k, phone in enumerate(pron):
            last = k == len(pron) - 1
            dst = 0 if last else state + 1
            lines.append(f"{src} {dst} {phone} {word if k == 0 else 0}\n")
            if not last:
                state += 1
                src = state
    if disambig is not None:
        lines.append(f"0 0 {disambig[0]} {disambig[1]}\n")
    return kaldifst.compile("".join(lines) + "0\n")


def zipf_sentences(num_words: int, num_sentences: int, rng: np.random.Generator) -> list[list[int]]:
    """Random sentences of word indices ``0..num_words-1`` drawn from a Zipf law."""
    weights = 1.0 / np.arange(1, num_words + 1) ** ZIPF_EXPONENT
    lengths = rng.integers(SENTENCE_WORDS[0], SENTENCE_WORDS[1] + 1, size=num_sentences)
    words = rng.choice(num_words, size=int(lengths.sum()), p=weights / weights.sum())
    return [list(s) for s in np.split(words, np.cumsum(lengths)[:-1])]


def _word_lang(lang: Path, prons: list[list[int]], phone_set: PhoneSet, names: list[str]) -> None:
    """Turn the phone lang dir into a word one: words.txt, L.fst and L_disambig.fst."""
    table = {"<eps>": 0, **{w: i for i, w in enumerate(names, start=1)}}
    table[DISAMBIG] = len(table)
    for word in SPECIAL_WORDS:
        table[word] = len(table)
    text = "".join(f"{w} {i}\n" for w, i in table.items())
    atomic_write(lang / "words.txt", lambda t: t.write_text(text, encoding="utf-8"))
    write_fst(lang / "L_disambig.fst", lexicon_fst(prons, (phone_set.disambig_id, table[DISAMBIG])))
    write_fst(lang / "L.fst", lexicon_fst(prons))


def synthetic_word_graph(out_dir: Path, num_words: int = 3000, num_sentences: int = 20000,
                         seed: int = 0) -> WordGraph:
    """Build a word HCLG over the built-in phone set in ``out_dir`` (``graph/``, ``final.mdl``).

    3000 words and 20000 sentences give about 60k bigrams and an HCLG of about a million arcs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # a lang dir of its own, removed at the end: a "lang_test" already in out_dir is not touched
    lang = Path(tempfile.mkdtemp(prefix="lang_test.", dir=out_dir))
    try:
        return _build(out_dir, lang, num_words, num_sentences, seed)
    finally:
        shutil.rmtree(lang)


def _build(out_dir: Path, lang: Path, num_words: int, num_sentences: int,
           seed: int) -> WordGraph:
    rng = np.random.default_rng(seed)
    phone_set = PhoneSet.from_inventory(PHONES)
    write_lang(phone_set, lang)
    prons = random_lexicon(num_words, phone_set.ids[1:], rng)
    names = [f"w{i:05d}" for i in range(num_words)]
    _word_lang(lang, prons, phone_set, names)
    sentences = [[names[w] for w in s] for s in zipf_sentences(num_words, num_sentences, rng)]
    arpa = bigram_arpa(sentences, names)
    write_arpa_and_g(arpa, lang / "word_bigram.arpa", lang / "words.txt", lang / "G.fst")
    topo_text = (lang / "topo").read_text(encoding="utf-8")
    system = build_hmm_system(topo_text)
    hclg, disambig_tids = make_hclg(lang, system.tree, system.trans_model)
    graph_dir = out_dir / "graph"
    write_graph_dir(graph_dir, lang, hclg, disambig_tids, system.trans_model.num_pdfs)
    lexicon = "".join(f"{w} {' '.join(map(str, p))}\n" for w, p in enumerate(prons, start=1))
    atomic_write(graph_dir / "lexicon.int", lambda t: t.write_text(lexicon, encoding="utf-8"))
    model = out_dir / "final.mdl"
    mdl_text = transition_model_text(system.trans_model, topo_text)
    atomic_write(model, lambda t: t.write_text(mdl_text, encoding="utf-8"))
    num_bigrams = int(arpa.split("ngram 2=", 1)[1].split()[0])
    num_arcs = sum(hclg.num_arcs(s) for s in range(hclg.num_states))
    return WordGraph(graph_dir, model, num_words, num_bigrams, hclg.num_states, num_arcs)
