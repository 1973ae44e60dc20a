"""A data dir's word ``text`` made ready for alignment: normalised words, and a pronunciation for
every one of them (the lexicon's, else eSpeak NG's for an out-of-vocabulary word)."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.words.in_context import pronunciations_in_context
from pytorch_kaldi_snn.words.lexicon import Pronunciation, espeak_pronunciation
from pytorch_kaldi_snn.words.normalise import dropped_summary, normalise

log = logging.getLogger("prepare_set")
OOV_CHOICES = ("espeak", "error")


@dataclass(frozen=True)
class WordTranscripts:
    """Normalised words per utterance, the pronunciations of every word used, and the
    out-of-vocabulary words among them with the pronunciation eSpeak NG gave each."""

    words: Dict[str, List[str]]
    pronunciations: Dict[str, Sequence[Pronunciation]]
    oov: Dict[str, Pronunciation]


def normalised_words(text: Mapping[str, str], known: Mapping[str, object], where: Path) -> Dict[str, List[str]]:
    """Every utterance's words (words/normalise.py); what was dropped is logged in one line."""
    dropped: Counter = Counter()
    words = {}
    for utt, line in text.items():
        try:
            words[utt] = normalise(line, known.keys(), dropped)
        except DataError as err:
            raise DataError(err.message, file=str(where), utt=utt) from None
        if not words[utt]:
            raise DataError("empty transcript: no words to align", file=str(where), utt=utt)
    count, listed = dropped_summary(dropped)
    if count:
        log.info("%s: dropped %d punctuation characters: %s", where, count, listed)
    return words


def word_transcripts(text: Mapping[str, str], lexicon: Mapping[str, Sequence[Pronunciation]],
                     lexicon_name: str, oov: str, where: Path, espeak_alternatives: bool) -> WordTranscripts:
    """Words and pronunciations; ``oov`` is ``espeak`` (eSpeak NG pronounces unknown words) or
    ``error`` (unknown words are refused, by name). With ``espeak_alternatives`` eSpeak NG's
    pronunciations are more alternatives of every word: read alone (CMUdict writes reduced
    vowels as ``ah`` where eSpeak often says ``ih`` (``-es``, ``-ed``), and syllabic /l/ as
    ``ah l``) and as read in each transcript (words/in_context.py: "the" before a vowel, weak
    forms); the audio chooses between them."""
    words = normalised_words(text, lexicon, where)
    vocabulary = sorted({w for line in words.values() for w in line})
    unknown = [w for w in vocabulary if w not in lexicon]
    if unknown and oov == "error":
        raise DataError(f"{len(unknown)} words are not in the lexicon {lexicon_name}: "
                        f"{' '.join(unknown)} (give them in a --lexicon file, or let eSpeak NG "
                        "pronounce them: --oov espeak)", file=str(where))
    guessed = {w: espeak_pronunciation(w) for w in unknown}
    silent = [w for w, pron in guessed.items() if not pron]
    if silent:
        raise DataError(f"eSpeak NG gives {silent[0]!r} no phones: give it in a --lexicon file",
                        file=str(where))
    pronunciations = {w: list(lexicon[w]) if w in lexicon else [guessed[w]] for w in vocabulary}
    if espeak_alternatives:
        _add_espeak_alternatives(words, pronunciations, guessed)
    return WordTranscripts(words, pronunciations, guessed)


def _add_espeak_alternatives(words: Mapping[str, Sequence[str]], pronunciations: Dict[str, List[Pronunciation]],
                             guessed: Mapping[str, Pronunciation]) -> None:
    spoken = {w: [guessed.get(w) or espeak_pronunciation(w)] for w in pronunciations}
    for line in words.values():
        for word, pronunciation in zip(line, pronunciations_in_context(line) or ()):
            spoken[word].append(pronunciation)
    for word, alternatives in pronunciations.items():
        for pronunciation in spoken[word]:
            if pronunciation and pronunciation not in alternatives:  # a word eSpeak joined may get no phones
                alternatives.append(pronunciation)
