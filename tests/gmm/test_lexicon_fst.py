"""The word L.fst of alignment from words: what each path between and inside words costs."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import pytest

from pytorch_kaldi_snn.corpus.phones import PHONES
from pytorch_kaldi_snn.gmm.lexicon_fst import ConnectedSpeech, lexicon_fst
from pytorch_kaldi_snn.kaldi_ports import kaldifst

PHONE_IDS = {p: i for i, p in enumerate(PHONES, 1)}
WORDS = {1: [("k", "ae", "s")], 2: [("s", "ae", "m")], 3: [("ae", "d")], 4: [("dh", "ah"), ("dh", "iy")]}
SPEECH = ConnectedSpeech(silence={("fricative", "s"): 0.8, ("fricative", "ae"): 0.1, ("vowel", "d"): 0.01})


def cost(phones: str, words: Sequence[int], speech: ConnectedSpeech = SPEECH,
         pron_probs: Mapping[int, Sequence[float]] = {}, phone_ids: Mapping[str, int] = PHONE_IDS,
         lexicon_words: Mapping[int, Sequence[Sequence[str]]] = WORDS) -> float:
    """The cost of the best path of ``phones`` through L for the word sequence ``words`` (inf if none)."""
    lexicon = lexicon_fst(lexicon_words, phone_ids, 0.5, speech, pron_probs)
    phone_seq = kaldifst.make_linear_acceptor([phone_ids[p] for p in phones.split()])
    kaldifst.arcsort(lexicon, sort_type="ilabel")
    with_words = kaldifst.compose(phone_seq, lexicon)
    kaldifst.arcsort(with_words, sort_type="olabel")
    graph = kaldifst.compose(with_words, kaldifst.make_linear_acceptor(list(words)))
    if graph.num_states == 0:
        return math.inf
    return float(kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(graph))[3].value)


EDGES = 2 * -math.log(0.5)  # no leading and no trailing silence, with sil_prob 0.5


def test_silence_between_words_costs_its_probability_in_context() -> None:
    """After a word that ends in a fricative, a pause before 's' has probability 0.8, before
    'ae' 0.1."""
    assert cost("k ae s sil s ae m", [1, 2]) == pytest.approx(EDGES - math.log(0.8), abs=1e-4)
    assert cost("k ae s s ae m", [1, 2]) == pytest.approx(EDGES - math.log(0.2), abs=1e-4)
    assert cost("k ae s sil ae d", [1, 3]) == pytest.approx(EDGES - math.log(0.1) - math.log(0.99), abs=1e-4)


def test_unseen_contexts_take_sil_prob_and_edges_are_optional() -> None:
    """'dh' after a nasal was never counted: sil_prob 0.5; leading and trailing silence too."""
    assert cost("s ae m sil dh ah", [2, 4]) == pytest.approx(EDGES - math.log(0.5), abs=1e-4)
    assert cost("sil s ae m dh ah sil", [2, 4]) == pytest.approx(-3 * math.log(0.5), abs=1e-4)


def test_a_closure_inside_a_word_costs_its_context_and_none_follows_a_pause() -> None:
    """'add': its d after a vowel is closed with probability 0.01; after a pause, a word's first
    stop has no second silence (two silence HMMs would need 6 frames for one closure)."""
    assert cost("ae sil d", [3]) == pytest.approx(EDGES - math.log(0.01), abs=1e-4)
    assert cost("ae d", [3]) == pytest.approx(EDGES - math.log(0.99), abs=1e-4)
    assert cost("s ae m sil k ae s", [2, 1]) < math.inf
    assert cost("s ae m sil sil k ae s", [2, 1]) == math.inf


def test_pronunciation_probabilities_cost_their_log() -> None:
    assert cost("dh iy", [4], pron_probs={4: [1.0, 0.25]}) == pytest.approx(EDGES - math.log(0.25), abs=1e-4)
    assert cost("dh ah", [4], pron_probs={4: [1.0, 0.25]}) == pytest.approx(EDGES, abs=1e-4)
    assert cost("dh ey", [4]) == math.inf


def test_timits_48_phones_close_a_stop_with_the_closure_its_transcripts_write() -> None:
    """TIMIT's 48 phones write a closure as cl (before p t k) or vcl (before b d g): counted as
    the silence before the stop, and the phone the word graph inserts, inside a word and as the
    pause before a stop-initial word. The 39 classes keep sil."""
    speech = ConnectedSpeech.estimate(["sil ae cl t s cl t ae vcl d sil".split(),
                                       "sil s ae vcl d ae cl t sil vcl d ae sil".split()])
    assert (speech.gap_before("t"), speech.gap_before("d"), speech.gap_before("s")) == ("cl", "vcl", "sil")
    assert speech.closure_before("ae", "t") == ("cl", 3 / 4)  # vowel -> t: closed twice of twice
    assert speech.closure_before("ae", "d") == ("vcl", 3 / 4)
    assert ConnectedSpeech.estimate(["sil ae sil t sil".split()]).closure_before("ae", "t") == ("sil", 2 / 3)
    timit = dict(speech=speech, phone_ids={p: i for i, p in enumerate(("sil", "ae", "cl", "vcl", "t", "d", "s"), 1)},
                 lexicon_words={1: [("ae", "t")], 2: [("d", "ae")]})
    assert cost("ae cl t", [1], **timit) == pytest.approx(EDGES - math.log(3 / 4), abs=1e-4)
    assert cost("ae sil t", [1], **timit) == math.inf
    assert cost("ae t vcl d ae", [1, 2], **timit) < math.inf  # the pause before 'd' is its vcl
    assert cost("ae t sil d ae", [1, 2], **timit) == math.inf
