"""Pronunciations learned from training utterances that say a word as no lexicon entry has it."""
from __future__ import annotations

import math

import pytest

from pytorch_kaldi_snn.gmm.lexicon_fst import ConnectedSpeech
from pytorch_kaldi_snn.gmm.lexicon_learning import learn_pronunciations, lexical, word_segments
from pytorch_kaldi_snn.gmm.pron_probs import count_pronunciations
from support.lexicon_paths import EDGES, PHONE_IDS, path_cost

LEXICON = {"the": [("dh", "ah")], "man": [("m", "ae", "n")], "sat": [("s", "ae", "t")], "with": [("w", "ih", "dh")]}
TRAINING = {  # utt: (words, phones)
    "u1": ("the man sat", "sil dh ah m ae sil s ae t sil"),  # 'man' said 'm ae', twice
    "u2": ("the man sat", "sil dh ah m ae s ae t sil"),
    "u3": ("the man", "sil dh ah m ae n sil"),  # as the lexicon says
    "u4": ("the sat", "sil dh ah s eh t sil"),  # 'sat' said 's eh t', once
}
WORDS = {u: words.split() for u, (words, _) in TRAINING.items()}
PHONES = {u: phones.split() for u, (_, phones) in TRAINING.items()}


def test_what_l_inserts_by_itself_is_not_part_of_a_pronunciation() -> None:
    """Silences, TIMIT's closures and a glide linking two vowels go; a y before a consonant stays."""
    assert lexical("sil dh iy y eh n vcl d sil".split()) == ["dh", "iy", "eh", "n", "d"]
    assert lexical("y uw y s".split()) == ["y", "uw", "y", "s"]


def test_a_pronunciation_said_min_count_times_is_learned_and_a_one_off_is_not() -> None:
    assert learn_pronunciations(WORDS, PHONES, LEXICON, ["u1", "u2", "u4"], min_count=2) == {"man": [("m", "ae")]}
    assert learn_pronunciations(WORDS, PHONES, LEXICON, ["u1", "u2", "u4"], min_count=1) == {
        "man": [("m", "ae")], "sat": [("s", "eh", "t")]}
    assert learn_pronunciations(WORDS, PHONES, LEXICON, ["u1", "u2", "u4"], min_count=3) == {}


def test_learned_pronunciations_are_counted_with_the_lexicons() -> None:
    """The utterances that taught 'm ae' now match and count it; the one-off stays unmatched."""
    probs = count_pronunciations(WORDS, PHONES, LEXICON, PHONE_IDS, ConnectedSpeech(), min_count=2)
    assert probs.learned == {"man": [("m", "ae")]}
    assert probs.counts["man"] == {("m", "ae", "n"): 1, ("m", "ae"): 2}
    assert probs.unmatched == 1
    assert probs.alternatives("man", LEXICON["man"]) == [("m", "ae", "n"), ("m", "ae")]
    assert probs.alternatives("sat", LEXICON["sat"]) == [("s", "ae", "t")]


def test_the_learned_pronunciation_is_a_path_of_l_with_its_probability() -> None:
    """As alignment from words builds L: the learned 'm ae' costs nothing (said most), the
    lexicon's 'm ae n' its smoothed probability 2/3."""
    probs = count_pronunciations(WORDS, PHONES, LEXICON, PHONE_IDS, ConnectedSpeech(), min_count=2)
    alternatives = {1: probs.alternatives("man", LEXICON["man"])}
    pron_probs = {1: probs.of("man", alternatives[1])}
    assert path_cost("m ae", [1], alternatives, pron_probs=pron_probs) == pytest.approx(EDGES, abs=1e-4)
    assert path_cost("m ae n", [1], alternatives, pron_probs=pron_probs) == pytest.approx(
        EDGES - math.log(2 / 3), abs=1e-4)
    assert path_cost("m ae", [1], {1: LEXICON["man"]}) == math.inf  # without learning: no path


def test_a_phone_two_words_share_is_not_learned() -> None:
    """'with the' said 'w ih dh ah' is how the two words join: the cut keeps 'dh' with 'the',
    and 'w ih' is not learned however often it is said."""
    words, phones = {"u1": ["with", "the"], "u2": ["with", "the"]}, {u: "sil w ih dh ah sil".split() for u in "u1 u2".split()}
    assert word_segments(lexical(phones["u1"]), [LEXICON["with"], LEXICON["the"]]) == [
        (("w", "ih"), 1), (("dh", "ah"), 0)]
    assert learn_pronunciations(words, phones, LEXICON, ["u1", "u2"], min_count=1) == {}


def test_a_flap_or_a_final_linking_glide_is_no_new_pronunciation() -> None:
    """L says an intervocalic t as dx, and 'dh ih y' without its y before a vowel."""
    lexicon = {"city": [("s", "ih", "t", "iy")], "the": [("dh", "ih", "y")], "end": [("eh", "n", "d")]}
    assert word_segments("s ih dx iy".split(), [lexicon["city"]]) == [(("s", "ih", "dx", "iy"), 0)]
    assert word_segments("dh ih eh n d".split(), [lexicon["the"], lexicon["end"]]) == [
        (("dh", "ih"), 0), (("eh", "n", "d"), 0)]
