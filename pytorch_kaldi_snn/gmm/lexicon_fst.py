"""L.fst over words for forced alignment from word transcripts (``utils/make_lexicon_fst.py``).

As Kaldi's ``prepare_lang.sh --sil-prob``: every alternative pronunciation of a word is a path,
and after each word (and at the start) silence is optional, taken with probability ``sil_prob``.
``compile-train-graphs`` composes this L with each utterance's linear word sequence.

Additions, because the recipe's phones are TIMIT-style surface phones, where a stop's closure is
``sil``, an intervocalic /t/ or /d/ may be the flap ``dx``, and a glide may link two vowels
("the_y_end", "her_r_own"), while a lexicon writes none of them:

* before a stop or affricate, a closure ``sil`` is optional;
* a /t/ or /d/ between two vowels of a pronunciation may also be ``dx``;
* between a vowel that links (``iy ih ey ay oy`` by ``y``, ``uw ow aw uh`` by ``w``, ``er`` by
  ``r``) and a following vowel, in a word or across a word boundary, the glide is optional.

How often speech inserts each one is not the lexicon's to say: ``ConnectedSpeech.estimate``
counts it in the phone transcripts the recipe's GMM was trained on (the synthesizer writes a
closure before 94 % of its /p t k/ but 24 % of its /d/, and links every ``er`` to a following
vowel with ``r``). The audio chooses, so the aligned phones are what was said.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

from pytorch_kaldi_snn.corpus.phones import SIL, VOWELS
from pytorch_kaldi_snn.kaldi_ports import kaldifst

SIL_PROB = 0.5  # prepare_lang.sh's default --sil-prob
CLOSURE_BEFORE = frozenset("b d g p t k ch jh".split())
FLAPPED = frozenset({"t", "d"})
FLAP = "dx"
LINKING_GLIDE = {**dict.fromkeys(("iy", "ih", "ey", "ay", "oy"), "y"),
                 **dict.fromkeys(("uw", "ow", "aw", "uh"), "w"), "er": "r"}
UNKNOWN = 0.5  # the probability of an insertion the training transcripts never had the chance of
EPS = 0

Insertion = Tuple[str, float]  # (phone, probability that speech inserts it)


def _smoothed(inserted: int, chances: int) -> float:
    """Laplace's rule: never 0 or 1, so the audio can always overrule the count."""
    return (inserted + 1) / (chances + 2)


@dataclass(frozen=True)
class ConnectedSpeech:
    """Probabilities of the phones a lexicon does not write: the closure ``sil`` before each
    stop, and the glide after each linking vowel when a vowel follows."""

    closure: Mapping[str, float] = field(default_factory=dict)
    glide: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def estimate(cls, transcripts: Iterable[Sequence[str]]) -> "ConnectedSpeech":
        """Counted in phone transcripts with explicit ``sil`` (a recipe's training ``text``). An
        utterance's first phone is left out of the closure counts: silence before it is the
        utterance's leading silence, not a closure."""
        closed, stops, glided, vowel_pairs = Counter(), Counter(), Counter(), Counter()
        for phones in transcripts:
            for i in range(2, len(phones)):
                if phones[i] in CLOSURE_BEFORE:
                    stops[phones[i]] += 1
                    closed[phones[i]] += phones[i - 1] == SIL
            for first, middle, last in zip(phones, phones[1:], phones[2:]):
                if first in LINKING_GLIDE and middle == LINKING_GLIDE[first] and last in VOWELS:
                    glided[first] += 1
                    vowel_pairs[first] += 1
                elif first in LINKING_GLIDE and middle in VOWELS:
                    vowel_pairs[first] += 1
        return cls({p: _smoothed(closed[p], n) for p, n in stops.items()},
                   {v: _smoothed(glided[v], n) for v, n in vowel_pairs.items()})

    def closure_before(self, phone: str) -> Optional[Insertion]:
        return (SIL, self.closure.get(phone, UNKNOWN)) if phone in CLOSURE_BEFORE else None

    def glide_after(self, vowel: str) -> Optional[Insertion]:
        """The glide that may link ``vowel`` to a following vowel; none where the transcripts
        never had a vowel after ``vowel``."""
        return (LINKING_GLIDE[vowel], self.glide[vowel]) if vowel in self.glide else None


def _slots(pronunciation: Sequence[str]) -> List[Tuple[str, ...]]:
    """Each phone with its alternatives (an intervocalic t/d may be dx)."""
    slots = []
    for i, phone in enumerate(pronunciation):
        between_vowels = 0 < i < len(pronunciation) - 1 and pronunciation[i - 1] in VOWELS \
            and pronunciation[i + 1] in VOWELS
        slots.append((phone, FLAP) if phone in FLAPPED and between_vowels else (phone,))
    return slots


def _cost(probability: float) -> float:
    return -math.log(probability)


class _Builder:
    """Text of an FST in OpenFst's format, with fresh state numbers."""

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.num_states = 0

    def state(self) -> int:
        self.num_states += 1
        return self.num_states - 1

    def arc(self, src: int, dst: int, ilabel: int, olabel: int, cost: float = 0.0) -> None:
        self.lines.append(f"{src} {dst} {ilabel} {olabel} {cost:.6f}\n")


class _Lexicon:
    """The states between words. A word starts from the entry of its first phone's class:
    ``vowel``, ``stop`` or ``other``; ``between`` (no silence) leads to all three, a linking glide
    only to ``vowel``. After silence a stop-initial word starts at ``stop_after_sil``, without
    the optional closure: the silence already holds it (two silence HMMs in a row would need
    6 frames where the speaker made one short closure)."""

    def __init__(self, phone_ids: Mapping[str, int], sil_prob: float, speech: ConnectedSpeech) -> None:
        self.fst, self.ids, self.speech = _Builder(), phone_ids, speech
        self.no_sil_cost, self.sil_cost = _cost(1.0 - sil_prob), _cost(sil_prob)
        start = self.fst.state()
        self.between, self.after_sil, self.sil_state = self.fst.state(), self.fst.state(), self.fst.state()
        self.vowel, self.stop, self.other, self.stop_after_sil = (self.fst.state() for _ in range(4))
        # The first arc's source is the start state (OpenFst's text format).
        self.fst.arc(start, self.between, EPS, EPS, self.no_sil_cost)
        self.fst.arc(start, self.sil_state, EPS, EPS, self.sil_cost)
        self.fst.arc(self.sil_state, self.after_sil, self.ids[SIL], EPS)
        for entry in (self.vowel, self.stop, self.other):
            self.fst.arc(self.between, entry, EPS, EPS)
        for entry in (self.vowel, self.stop_after_sil, self.other):
            self.fst.arc(self.after_sil, entry, EPS, EPS)

    def _phone(self, src: int, dst: int, options: Tuple[str, ...], olabel: int,
               insertion: Optional[Insertion]) -> None:
        """Arcs for one phone (and its alternatives), with an optional phone inserted before it."""
        cost = 0.0
        if insertion is not None and insertion[0] in self.ids:
            inserted, probability = insertion
            middle = self.fst.state()
            self.fst.arc(src, middle, self.ids[inserted], olabel, _cost(probability))
            for phone in options:
                self.fst.arc(middle, dst, self.ids[phone], EPS)
            cost = _cost(1.0 - probability)
        for phone in options:
            self.fst.arc(src, dst, self.ids[phone], olabel, cost)

    def add(self, word: int, pronunciation: Sequence[str]) -> None:
        """One pronunciation, the word on its first arc."""
        slots = _slots(pronunciation)
        first, dst = slots[0], self.fst.state()
        if first[0] in CLOSURE_BEFORE:
            self._phone(self.stop, dst, first, word, self.speech.closure_before(first[0]))
            self._phone(self.stop_after_sil, dst, first, word, None)
        else:
            self._phone(self.vowel if first[0] in VOWELS else self.other, dst, first, word, None)
        src, previous = dst, first[0]
        for options in slots[1:]:
            dst = self.fst.state()
            glide = self.speech.glide_after(previous) if options[0] in VOWELS else None
            self._phone(src, dst, options, EPS, glide or self.speech.closure_before(options[0]))
            src, previous = dst, options[0]
        self._end(src, self.speech.glide_after(previous))

    def _end(self, src: int, glide: Optional[Insertion]) -> None:
        """After a word: optional silence; a linking vowel may glide into a vowel-initial word."""
        self.fst.arc(src, self.sil_state, EPS, EPS, self.sil_cost)
        if glide is None or glide[0] not in self.ids:
            self.fst.arc(src, self.between, EPS, EPS, self.no_sil_cost)
            return
        phone, probability = glide
        self.fst.arc(src, self.stop, EPS, EPS, self.no_sil_cost)
        self.fst.arc(src, self.other, EPS, EPS, self.no_sil_cost)
        self.fst.arc(src, self.vowel, EPS, EPS, self.no_sil_cost + _cost(1.0 - probability))
        self.fst.arc(src, self.vowel, self.ids[phone], EPS, self.no_sil_cost + _cost(probability))

    def compile(self) -> kaldifst.StdVectorFst:
        # The utterance ends where a word that starts with neither a vowel nor a stop could
        # start: after silence or a word, never after a glide or a closure.
        lexicon = kaldifst.compile("".join(self.fst.lines) + f"{self.other}\n")
        kaldifst.arcsort(lexicon, sort_type="olabel")
        return lexicon


def lexicon_fst(pronunciations: Mapping[int, Sequence[Sequence[str]]], phone_ids: Mapping[str, int],
                sil_prob: float = SIL_PROB, speech: ConnectedSpeech = ConnectedSpeech()) -> kaldifst.StdVectorFst:
    """L: phone ids in, word ids out. ``pronunciations`` maps each word id to its alternatives;
    ``speech`` says how often closures and glides are inserted (by default: closures as likely
    as not, no glides)."""
    lexicon = _Lexicon(phone_ids, sil_prob, speech)
    for word, alternatives in pronunciations.items():
        for pronunciation in alternatives:
            lexicon.add(word, pronunciation)
    return lexicon.compile()
