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
    """TIMIT's 48 phones write closures apart from pauses, cl (before p t k) or vcl (b d g): each
    stop, word-initial ones too, may have its closure as often as the transcripts give it one,
    also after a pause (sil vcl d); silence between words stays sil, counted with the closures
    left out. The 39 classes keep their sil closure."""
    speech = ConnectedSpeech.estimate(["sil ae cl t s cl t ae vcl d sil".split(),
                                       "sil s ae vcl d ae t sil vcl d ae sil".split()])
    assert speech.closure == {"t": ("cl", 3 / 5), "d": ("vcl", 4 / 5)}  # t closed 2 of 3, d 3 of 3
    assert speech.closure_before("ae", "t") == ("cl", 3 / 5)
    # counted with the closures left out: 'ae t sil vcl d' is a pause between a stop and d
    assert (speech.silence_between("stop", "d", 0.5), speech.silence_between("vowel", "d", 0.5)) == (2 / 3, 1 / 4)
    assert ConnectedSpeech.estimate(["sil ae sil t sil".split()]).closure_before("ae", "t") == ("sil", 2 / 3)
    timit = dict(speech=speech, phone_ids={p: i for i, p in enumerate(("sil", "ae", "cl", "vcl", "t", "d", "s"), 1)},
                 lexicon_words={1: [("ae", "t")], 2: [("d", "ae")]})
    assert cost("ae cl t", [1], **timit) == pytest.approx(EDGES - math.log(3 / 5), abs=1e-4)
    assert cost("ae sil t", [1], **timit) == math.inf
    unclosed_t, closed_d = -math.log(2 / 5), -math.log(4 / 5)
    assert cost("ae t vcl d ae", [1, 2], **timit) == pytest.approx(
        EDGES + unclosed_t - math.log(1 / 3) + closed_d, abs=1e-4)
    assert cost("ae t sil vcl d ae", [1, 2], **timit) == pytest.approx(
        EDGES + unclosed_t - math.log(2 / 3) + closed_d, abs=1e-4)
    assert cost("sil vcl d ae sil", [2], **timit) == pytest.approx(-2 * math.log(0.5) + closed_d, abs=1e-4)
