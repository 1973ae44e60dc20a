"""L.fst over words for forced alignment from word transcripts (``utils/make_lexicon_fst.py``).

As Kaldi's lexicon with pronunciation and silence probabilities (``utils/dict_dir_add_pronprobs.sh``,
``steps/get_prons.sh``): every alternative pronunciation of a word is a path, and between words
silence is optional, taken with a probability that depends on the phones on either side of the
boundary; at the start and end of the utterance with ``sil_prob`` (``prepare_lang.sh --sil-prob``).
``compile-train-graphs`` composes this L with each utterance's linear word sequence.

Additions, because the recipe's phones are TIMIT-style surface phones, where a stop's closure is
``sil``, an intervocalic /t/ or /d/ may be the flap ``dx``, and a glide may link two vowels
("the_y_end", "her_r_own"), while a lexicon writes none of them:

* inside a word, before a stop or affricate, a closure ``sil`` is optional. A recipe with TIMIT's
  48 phones (recipes/timit_builtin) writes closures apart from pauses, as ``cl`` or ``vcl``:
  there each stop, word-initial ones too, may have the closure its training transcripts write
  before it, as often as they do, and silence is a pause (``sil vcl d`` is a pause, then a
  closure);
* a /t/ or /d/ between two vowels of a pronunciation may also be ``dx``;
* between a vowel that links (``iy ih ey ay oy`` by ``y``, ``uw ow aw uh`` by ``w``, ``er`` by
  ``r``) and a following vowel, in a word or across a word boundary, the glide is optional.

How often speech inserts each one is not the lexicon's to say: ``ConnectedSpeech.estimate``
counts it in the phone transcripts the recipe's GMM was trained on, silence by the class of the
phone before it and the phone after it (the synthesizer closes 95 % of its /t/ after a vowel but
none of its /d/ there, 93 % of its /d/ after a fricative, and puts a pause before 88 % of its
/hh/), and links every ``er`` to a following vowel with ``r``. The audio chooses, so the aligned
phones are what was said.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from pytorch_kaldi_snn.corpus.phones import SIL, VOWELS
from pytorch_kaldi_snn.kaldi_ports import kaldifst

SIL_PROB = 0.5  # prepare_lang.sh's default --sil-prob
CLOSURE_BEFORE = frozenset("b d g p t k ch jh".split())
CLOSURES = frozenset({"cl", "vcl"})  # TIMIT's 48 phones write closures apart from pauses
NASALS = frozenset({"m", "n", "ng"})
FRICATIVES = frozenset("s z sh f v th dh hh".split())
FLAPPED = frozenset({"t", "d"})
FLAP = "dx"
LINKING_GLIDE = {**dict.fromkeys(("iy", "ih", "ey", "ay", "oy"), "y"),
                 **dict.fromkeys(("uw", "ow", "aw", "uh"), "w"), "er": "r"}
UNKNOWN = 0.5  # the probability of an insertion the training transcripts never had the chance of
EPS = 0

Insertion = Tuple[str, float]  # (phone, probability that speech inserts it)
Context = Tuple[str, str]  # (class of the phone before, the phone after)


def phone_class(phone: str) -> str:
    """The class of a phone as the phone before a silence: how a speaker (or the synthesizer)
    ends it decides whether a closure or pause follows (a vowel runs into a voiced stop)."""
    if phone in VOWELS:
        return "vowel"
    if phone in CLOSURE_BEFORE:
        return "stop"
    return "nasal" if phone in NASALS else "fricative" if phone in FRICATIVES else "other"


CLASSES = ("vowel", "stop", "nasal", "fricative", "other")


def _smoothed(inserted: int, chances: int) -> float:
    """Laplace's rule: never 0 or 1, so the audio can always overrule the count."""
    return (inserted + 1) / (chances + 2)


@dataclass(frozen=True)
class ConnectedSpeech:
    """Probabilities of the phones a lexicon does not write: ``silence`` between a phone of a
    class and the next phone (a stop's closure inside a word, a closure or pause between words),
    and the glide after each linking vowel when a vowel follows."""

    silence: Mapping[Context, float] = field(default_factory=dict)
    glide: Mapping[str, float] = field(default_factory=dict)
    closure: Mapping[str, Insertion] = field(default_factory=dict)  # stop -> its cl/vcl, how often

    @classmethod
    def estimate(cls, transcripts: Iterable[Sequence[str]]) -> "ConnectedSpeech":
        """Counted in phone transcripts with explicit ``sil`` (a recipe's training ``text``). An
        utterance's first phone is left out of the silence counts: silence before it is the
        utterance's leading silence, not a closure or pause. Closures written apart (``cl``,
        ``vcl``) are counted per stop, as the one it follows most often and how often it has
        one, and left out of the silence counts."""
        silent, chances, glided, vowel_pairs = Counter(), Counter(), Counter(), Counter()
        closed: Dict[str, Counter] = {}
        for written in transcripts:
            for previous, stop in zip(written, written[1:]):
                if stop in CLOSURE_BEFORE:
                    closed.setdefault(stop, Counter())[previous if previous in CLOSURES else None] += 1
            phones = [p for p in written if p not in CLOSURES]
            for i in range(2, len(phones)):
                before = phones[i - 2] if phones[i - 1] == SIL else phones[i - 1]
                if SIL not in (phones[i], before):
                    context = (phone_class(before), phones[i])
                    chances[context] += 1
                    silent[context] += phones[i - 1] == SIL
            for first, middle, last in zip(phones, phones[1:], phones[2:]):
                if first in LINKING_GLIDE and middle == LINKING_GLIDE[first] and last in VOWELS:
                    glided[first] += 1
                    vowel_pairs[first] += 1
                elif first in LINKING_GLIDE and middle in VOWELS:
                    vowel_pairs[first] += 1
        return cls({c: _smoothed(silent[c], n) for c, n in chances.items()},
                   {v: _smoothed(glided[v], n) for v, n in vowel_pairs.items()},
                   {stop: _closure(count) for stop, count in closed.items() if sum(count.values()) > count[None]})

    def silence_between(self, before_class: str, phone: str, unseen: float) -> float:
        """The probability of silence between a phone of ``before_class`` and ``phone``;
        ``unseen`` where the transcripts never had the two in a row."""
        return self.silence.get((before_class, phone), unseen)

    def closure_before(self, before: str, phone: str) -> Optional[Insertion]:
        """Inside a word: the closure a stop may have after ``before`` (a written-apart one, else
        a ``sil`` as often as silence comes between the two)."""
        if phone not in CLOSURE_BEFORE:
            return None
        return self.closure.get(phone) or (SIL, self.silence_between(phone_class(before), phone, UNKNOWN))

    def glide_after(self, vowel: str) -> Optional[Insertion]:
        """The glide that may link ``vowel`` to a following vowel; none where the transcripts
        never had a vowel after ``vowel``."""
        return (LINKING_GLIDE[vowel], self.glide[vowel]) if vowel in self.glide else None


def _closure(count: Counter) -> Insertion:
    """The closure phone a stop follows most often, and how often it has one (smoothed)."""
    phone = max((p for p in count if p is not None), key=lambda p: (count[p], p))
    return phone, _smoothed(sum(n for p, n in count.items() if p is not None), sum(count.values()))


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

    def final(self, state: int, cost: float = 0.0) -> None:
        self.lines.append(f"{state} {cost:.6f}\n")


class _Lexicon:
    """The states between words. A word ends in ``boundary[class of its last phone, next]``,
    where ``next`` is ``vowel`` or ``other``, the class of the next word's first phone (a
    linking glide leads only to a vowel). From there the next word starts directly or after a
    silence, with the probability of silence between those two phones (``silence_between``;
    ``sil_prob`` where the transcripts never had them in a row). That silence ends in
    ``after_silence[phone]``, one state per first phone, and the word starts with no ``sil``
    closure: the silence already holds it (two silence HMMs in a row would need 6 frames where the
    speaker made one short closure); a closure written apart (``vcl``) may follow. The utterance starts at ``first``, after an optional
    leading silence (``sil_prob``), and ends after a word and an optional trailing one."""

    def __init__(self, phone_ids: Mapping[str, int], sil_prob: float, speech: ConnectedSpeech) -> None:
        self.fst, self.ids, self.speech, self.sil_prob = _Builder(), phone_ids, speech, sil_prob
        start = self.fst.state()
        self.first, self.end = self.fst.state(), self.fst.state()
        self.boundary = {(c, k): self.fst.state() for c in CLASSES for k in ("vowel", "other")}
        self.after_silence: Dict[str, int] = {}
        # The first arc's source is the start state (OpenFst's text format).
        self.fst.arc(start, self.first, EPS, EPS, _cost(1.0 - sil_prob))
        self.fst.arc(start, self.first, self.ids[SIL], EPS, _cost(sil_prob))
        for (_, k), state in self.boundary.items():
            if k == "other":  # the utterance may end after any word
                self.fst.final(state, _cost(1.0 - sil_prob))
                self.fst.arc(state, self.end, self.ids[SIL], EPS, _cost(sil_prob))
        self.fst.final(self.end)

    def _phone(self, src: int, dst: int, options: Tuple[str, ...], olabel: int,
               insertion: Optional[Insertion], cost: float = 0.0) -> None:
        """Arcs for one phone (and its alternatives), with an optional phone inserted before it;
        ``cost`` is on both paths."""
        if insertion is not None and insertion[0] in self.ids:
            inserted, probability = insertion
            middle = self.fst.state()
            self.fst.arc(src, middle, self.ids[inserted], olabel, cost + _cost(probability))
            self._options(middle, dst, options, EPS)
            cost += _cost(1.0 - probability)
        self._options(src, dst, options, olabel, cost)

    def _options(self, src: int, dst: int, options: Tuple[str, ...], olabel: int, cost: float = 0.0) -> None:
        for phone in options:
            self.fst.arc(src, dst, self.ids[phone], olabel, cost)

    def _silence_to(self, phone: str) -> int:
        """The state after a silence before a word that starts with ``phone``."""
        if phone not in self.after_silence:
            self.after_silence[phone] = state = self.fst.state()
            for (c, k), src in self.boundary.items():
                if k == ("vowel" if phone in VOWELS else "other"):
                    probability = self.speech.silence_between(c, phone, self.sil_prob)
                    self.fst.arc(src, state, self.ids[SIL], EPS, _cost(probability))
        return self.after_silence[phone]

    def add(self, word: int, pronunciation: Sequence[str], probability: float = 1.0) -> None:
        """One pronunciation, the word and the pronunciation's ``probability`` on its first arc."""
        slots = _slots(pronunciation)
        first, dst = slots[0], self.fst.state()
        kind = "vowel" if first[0] in VOWELS else "other"
        own = _cost(probability)
        # A closure written apart may start the word; in the 39 classes a silence holds it.
        closure = self.speech.closure.get(first[0])
        for c in CLASSES:  # no silence before the word (its probability: on the arcs to _silence_to)
            probability = self.speech.silence_between(c, first[0], self.sil_prob)
            self._phone(self.boundary[c, kind], dst, first, word, closure, _cost(1.0 - probability) + own)
        for src in (self.first, self._silence_to(first[0])):
            self._phone(src, dst, first, word, closure, own)
        src, previous = dst, first[0]
        for options in slots[1:]:
            dst = self.fst.state()
            glide = self.speech.glide_after(previous) if options[0] in VOWELS else None
            self._phone(src, dst, options, EPS, glide or self.speech.closure_before(previous, options[0]))
            src, previous = dst, options[0]
        self._end(src, previous)

    def _end(self, src: int, last: str) -> None:
        """After a word: the boundary of its last phone's class; a linking vowel may glide into
        a vowel-initial word."""
        c = phone_class(last)
        self.fst.arc(src, self.boundary[c, "other"], EPS, EPS)
        glide = self.speech.glide_after(last)
        if glide is None or glide[0] not in self.ids:
            self.fst.arc(src, self.boundary[c, "vowel"], EPS, EPS)
            return
        phone, probability = glide
        self.fst.arc(src, self.boundary[c, "vowel"], EPS, EPS, _cost(1.0 - probability))
        self.fst.arc(src, self.boundary[phone_class(phone), "vowel"], self.ids[phone], EPS, _cost(probability))

    def compile(self) -> kaldifst.StdVectorFst:
        lexicon = kaldifst.compile("".join(self.fst.lines))
        kaldifst.arcsort(lexicon, sort_type="olabel")
        return lexicon


def lexicon_fst(pronunciations: Mapping[int, Sequence[Sequence[str]]], phone_ids: Mapping[str, int],
                sil_prob: float = SIL_PROB, speech: ConnectedSpeech = ConnectedSpeech(),
                pron_probs: Mapping[int, Sequence[float]] = {}) -> kaldifst.StdVectorFst:
    """L: phone ids in, word ids out. ``pronunciations`` maps each word id to its alternatives,
    ``pron_probs`` to their probabilities (1 where absent); ``speech`` says how often silences
    and glides are inserted (by default: silence between words with ``sil_prob``, a closure as
    likely as not, no glides)."""
    lexicon = _Lexicon(phone_ids, sil_prob, speech)
    for word, alternatives in pronunciations.items():
        probabilities = pron_probs.get(word, [1.0] * len(alternatives))
        for pronunciation, probability in zip(alternatives, probabilities):
            lexicon.add(word, pronunciation, probability)
    return lexicon.compile()
