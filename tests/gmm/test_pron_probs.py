"""Pronunciation probabilities counted in a training set's phone transcripts."""
from __future__ import annotations

from pytorch_kaldi_snn.corpus.phones import PHONES
from pytorch_kaldi_snn.gmm.lexicon_fst import ConnectedSpeech
from pytorch_kaldi_snn.gmm.pron_probs import PronProbs, count_pronunciations
from pytorch_kaldi_snn.prepare_set import RecipeDir

PHONE_IDS = {p: i for i, p in enumerate(PHONES, 1)}
LEXICON = {"the": [("dh", "ah"), ("dh", "iy")], "end": [("eh", "n", "d")], "cat": [("k", "ae", "t")]}


def test_the_phones_say_which_alternative_was_said() -> None:
    """Silence between words and a closure inside one are optional on the way; phones that no
    alternative gives are left out and counted."""
    words = {u: line.split() for u, line in
             {"u1": "the end", "u2": "the cat", "u3": "the cat", "u4": "the cat", "u5": "the end"}.items()}
    phones = {u: line.split() for u, line in {
        "u1": "sil dh iy eh n d sil", "u2": "sil dh ah k ae t sil", "u3": "sil dh ah sil k ae sil t sil",
        "u4": "sil dh ey k ae t sil"}.items()}  # u4: no alternative of 'the' is 'dh ey'; u5: no phones
    probs = count_pronunciations(words, phones, LEXICON, PHONE_IDS, ConnectedSpeech())
    assert probs.counts == {"the": {("dh", "ah"): 2, ("dh", "iy"): 1}, "end": {("eh", "n", "d"): 1},
                            "cat": {("k", "ae", "t"): 2}}
    assert probs.unmatched == 1


def test_timits_closures_written_apart_do_not_stop_the_match() -> None:
    """In TIMIT's 48 phones a stop's closure is cl/vcl, after a pause too ('sil vcl d')."""
    phones = {"u1": "sil dh iy eh n vcl d sil".split(), "u2": "sil dh ah sil cl k ae cl t sil".split()}
    ids = {p: i for i, p in enumerate(sorted({p for line in phones.values() for p in line}), 1)}
    words = {"u1": ["the", "end"], "u2": ["the", "cat"]}
    probs = count_pronunciations(words, phones, LEXICON, ids, ConnectedSpeech.estimate(phones.values()))
    assert probs.counts == {"the": {("dh", "iy"): 1, ("dh", "ah"): 1}, "end": {("eh", "n", "d"): 1},
                            "cat": {("k", "ae", "t"): 1}}
    assert probs.unmatched == 0


def test_probabilities_are_relative_to_the_most_said_alternative() -> None:
    """Kaldi's max-normalisation with add-one smoothing; a word never said has none."""
    probs = PronProbs({"the": {("dh", "ah"): 2, ("dh", "iy"): 1}})
    assert probs.of("the", [("dh", "ah"), ("dh", "iy"), ("dh", "ih")]) == [1.0, 2 / 3, 1 / 3]
    assert probs.of("cat", [("k", "ae", "t")]) is None


def test_a_recipe_without_a_training_word_text_gives_no_probabilities(tmp_path) -> None:
    """A training set with phones only (a TIMIT tree without .WRD): every pronunciation costs nothing."""
    (tmp_path / "data/train").mkdir(parents=True)
    (tmp_path / "data/train/text").write_text("u1 sil dh ah sil\n")
    assert RecipeDir(tmp_path).pron_probs(ConnectedSpeech()) == PronProbs()
