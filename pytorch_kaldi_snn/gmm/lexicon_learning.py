"""Pronunciations learned from a recipe's training transcripts, in the spirit of Kaldi's
``steps/dict/learn_lexicon_greedy.sh``.

A training utterance whose phones no path of L gives (gmm/pron_probs.py) said some word as no
lexicon entry has it ("value" as ``v ae l uw``, "itself" without its ``f``). Its phones, without
what L inserts by itself (silences, closures, linking glides), are cut into one segment per
word, the cut that brings each segment nearest (edit distance) to one of its word's
pronunciations, flaps included. A segment that is none of them is a candidate, unless the word
was left out or its last phone merged with the next word's same first phone ("with the" as
``w ih dh ah``: that is how the two words join, not how "with" is said). A candidate said at
least ``min_count`` times becomes an alternative of its word; the audio chooses between it and
the lexicon's, with the probability the training set gives it.
"""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import kaldialign

from pytorch_kaldi_snn.corpus.phones import SIL, VOWELS
from pytorch_kaldi_snn.gmm.lexicon_fst import CLOSURES, LINKING_GLIDE, phone_slots
from pytorch_kaldi_snn.words.lexicon import Pronunciation

MIN_COUNT = 2  # chosen on the default recipe's train and dev sets (docs/corpus.md)
SLACK = 3  # a segment may be this many phones longer or shorter than its word's alternatives

Segment = Tuple[Pronunciation, int]  # the phones said for a word, their distance to its nearest alternative
Cost = Tuple[int, int]  # edit distance, words that do not start as written


def lexical(phones: Sequence[str]) -> List[str]:
    """The phones a lexicon would write: no silences or closures, and no linking glide between
    two vowels (L inserts all of them by itself)."""
    spoken = [p for p in phones if p != SIL and p not in CLOSURES]
    return [p for i, p in enumerate(spoken)
            if not (0 < i < len(spoken) - 1 and LINKING_GLIDE.get(spoken[i - 1]) == p and spoken[i + 1] in VOWELS)]


def surface_forms(pronunciation: Sequence[str]) -> List[Pronunciation]:
    """Every way L says ``pronunciation`` with no insertion: each intervocalic t/d as itself or
    a flap; a final linking glide (eSpeak NG's ``dh ih y``) also without it, as before a vowel."""
    phones = lexical(pronunciation)
    forms = list(itertools.product(*phone_slots(phones)))
    if len(phones) > 1 and LINKING_GLIDE.get(phones[-2]) == phones[-1]:
        forms += itertools.product(*phone_slots(phones[:-1]))
    return forms


def surface_forms_of(pronunciations: Iterable[Sequence[str]]) -> List[Pronunciation]:
    """The surface forms of all of a word's pronunciations."""
    return [form for p in pronunciations for form in surface_forms(p)]


def _distance(segment: Sequence[str], forms: Sequence[Pronunciation]) -> Cost:
    """Edit distance to the nearest form, then whether the segment starts as that form does."""
    return min((kaldialign.edit_distance(list(form), list(segment))["total"], tuple(segment[:1]) != form[:1])
               for form in forms)


def _add(a: Cost, b: Cost) -> Cost:
    return a[0] + b[0], a[1] + b[1]


def word_segments(phones: Sequence[str], alternatives: Sequence[Sequence[Sequence[str]]]) -> Optional[List[Segment]]:
    """``phones`` (lexical ones) cut into one segment per word of ``alternatives`` (each word's
    pronunciations), the cut with the least total distance; ``None`` where no cut within
    ``SLACK`` exists. Between cuts as near, the one where more words start as they are written
    wins: a phone said once for two words (``w ih dh`` + ``dh ah``) stays with the word it
    starts, a phone inserted between them goes with the word before."""
    reached: List[Dict[int, Tuple[Cost, int, int]]] = [{0: ((0, 0), 0, 0)}]  # end -> (total, start, distance)
    for pronunciations in alternatives:
        forms = surface_forms_of(pronunciations)
        shortest, longest = min(map(len, forms)), max(map(len, forms))
        ends: Dict[int, Tuple[Cost, int, int]] = {}
        for start in sorted(reached[-1]):
            total = reached[-1][start][0]
            for end in range(start + max(0, shortest - SLACK), min(len(phones), start + longest + SLACK) + 1):
                distance = _distance(phones[start:end], forms)
                if end not in ends or _add(total, distance) < ends[end][0]:
                    ends[end] = (_add(total, distance), start, distance[0])
        reached.append(ends)
    if len(phones) not in reached[-1]:
        return None
    segments, end = [], len(phones)
    for ends in reversed(reached[1:]):
        _, start, distance = ends[end]
        segments.append((tuple(phones[start:end]), distance))
        end = start
    return segments[::-1]


def learn_pronunciations(words: Mapping[str, Sequence[str]], phones: Mapping[str, Sequence[str]],
                         lexicon: Mapping[str, Sequence[Pronunciation]], utterances: Iterable[str],
                         min_count: int = MIN_COUNT) -> Dict[str, List[Pronunciation]]:
    """The pronunciations, none of the lexicon's, that ``utterances`` said each word with at
    least ``min_count`` times (most said first)."""
    said: Dict[str, Counter] = defaultdict(Counter)
    for utt in utterances:
        segments = word_segments(lexical(phones[utt]), [lexicon[w] for w in words[utt]]) or []
        following = [segment[:1] for segment, _ in segments[1:]] + [()]
        for word, (segment, distance), next_phone in zip(words[utt], segments, following):
            # A word left out, or whose last phone ran into the next word's same first phone
            # ("with the" as w ih dh ah), was said as written: that is no pronunciation to learn.
            merged = (*segment, *next_phone) in surface_forms_of(lexicon[word])
            if distance and segment and not merged:
                said[word][segment] += 1
    return {word: [p for p, n in sorted(count.items(), key=lambda item: (-item[1], item[0])) if n >= min_count]
            for word, count in sorted(said.items()) if max(count.values()) >= min_count}
