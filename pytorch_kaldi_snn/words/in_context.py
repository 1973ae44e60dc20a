"""eSpeak NG's pronunciation of each word as it reads the whole transcript.

Read alone, "the" is ``dh ah`` and "have" ``hh ae v``; read in a sentence, eSpeak NG says
"the" before a vowel as ``dh ih y`` and "have" in its weak form ``hh ah v``, as speakers do.
These connected-speech forms are offered as more alternatives, and the audio chooses.

eSpeak joins some unstressed words to a neighbour ("was the" comes back as one word), so its
words are matched to the transcript's by their phones: each of its words covers one or more
transcript words, and a joined word is cut where the pieces are closest to the words'
pronunciations read alone (edit distance).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import kaldialign

from pytorch_kaldi_snn.words.lexicon import Pronunciation, espeak_pronunciation, espeak_to_phones

MAX_JOINED = 4  # transcript words one eSpeak word may cover
_NO_MATCH = float("inf")
Moves = Callable[[int, int], List[Tuple[int, int]]]  # (step, position) -> [(advance, cost)]


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance of two phone sequences (unit costs)."""
    return kaldialign.edit_distance(a, b)["total"]


def _best_path(n_steps: int, n_items: int, moves: Moves) -> Optional[List[int]]:
    """Cheapest way to cover ``n_items`` in ``n_steps`` steps, each step advancing by one of
    ``moves(step, position)`` = [(advance, cost)]; returns the positions after each step."""
    best: Dict[Tuple[int, int], Tuple[float, int]] = {(0, 0): (0.0, -1)}
    for step in range(n_steps):
        for position in range(n_items + 1):
            if (step, position) not in best:
                continue
            for advance, cost in moves(step, position):
                total = best[(step, position)][0] + cost
                if total < best.get((step + 1, position + advance), (_NO_MATCH, -1))[0]:
                    best[(step + 1, position + advance)] = (total, position)
    if (n_steps, n_items) not in best:
        return None
    ends, position = [], n_items
    for step in range(n_steps, 0, -1):
        ends.append(position)
        position = best[(step, position)][1]
    return ends[::-1]


def _cut(phones: Pronunciation, alone: Sequence[Pronunciation]) -> Optional[List[Pronunciation]]:
    """``phones`` (one eSpeak word) cut into ``len(alone)`` pieces closest to ``alone``."""
    ends = _best_path(len(alone), len(phones), lambda step, start: [
        (end - start, _edit_distance(phones[start:end], alone[step])) for end in range(start, len(phones) + 1)])
    if ends is None:
        return None
    starts = [0] + ends[:-1]
    return [tuple(phones[s:e]) for s, e in zip(starts, ends)]


def pronunciations_in_context(words: Sequence[str]) -> Optional[List[Pronunciation]]:
    """One pronunciation per word of ``words`` as eSpeak NG reads them together, or ``None``
    where its words cannot be matched to them (it split a word)."""
    from pytorch_kaldi_snn.corpus.espeak import engine

    spoken = [espeak_to_phones(names) for names in engine().word_phonemes(" ".join(words))]
    alone = [espeak_pronunciation(word) for word in words]
    ends = _best_path(len(spoken), len(words), lambda step, start: [
        (k, _edit_distance(spoken[step], sum(alone[start:start + k], ())))
        for k in range(1, min(MAX_JOINED, len(words) - start) + 1)])
    if ends is None:
        return None
    pronunciations: List[Pronunciation] = []
    for phones, start, end in zip(spoken, [0] + ends[:-1], ends):
        pieces = [phones] if end - start == 1 else _cut(phones, alone[start:end])
        if pieces is None:
            return None
        pronunciations += pieces
    return pronunciations
