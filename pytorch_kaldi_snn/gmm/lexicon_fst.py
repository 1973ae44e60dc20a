"""L.fst over words for forced alignment from word transcripts (``utils/make_lexicon_fst.py``).

As Kaldi's ``prepare_lang.sh --sil-prob``: every alternative pronunciation of a word is a path,
and after each word (and at the start) silence is optional, taken with probability ``sil_prob``.
``compile-train-graphs`` composes this L with each utterance's linear word sequence.

Two additions, because the recipe's phones are TIMIT-39, where a stop's closure is ``sil`` and
an intervocalic /t/ or /d/ may be the flap ``dx`` (the synthesizer labels both so, as TIMIT's
transcribers did), while a lexicon writes neither:

* before a stop or affricate, a closure ``sil`` is optional (no cost either way);
* a /t/ or /d/ between two vowels of a pronunciation may also be ``dx``.

The audio chooses, so the aligned phones are what was said.
"""
from __future__ import annotations

import math
from typing import List, Mapping, Sequence, Tuple

from pytorch_kaldi_snn.corpus.phones import VOWELS
from pytorch_kaldi_snn.kaldi_ports import kaldifst

SIL = "sil"
SIL_PROB = 0.5  # prepare_lang.sh's default --sil-prob
CLOSURE_BEFORE = frozenset("b d g p t k ch jh".split())
FLAPPED = frozenset({"t", "d"})
FLAP = "dx"
EPS = 0


def _slots(pronunciation: Sequence[str]) -> List[Tuple[str, ...]]:
    """Each phone with its alternatives (an intervocalic t/d may be dx)."""
    slots = []
    for i, phone in enumerate(pronunciation):
        between_vowels = 0 < i < len(pronunciation) - 1 and pronunciation[i - 1] in VOWELS \
            and pronunciation[i + 1] in VOWELS
        slots.append((phone, FLAP) if phone in FLAPPED and between_vowels else (phone,))
    return slots


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


def lexicon_fst(pronunciations: Mapping[int, Sequence[Sequence[str]]], phone_ids: Mapping[str, int],
                sil_prob: float = SIL_PROB) -> kaldifst.StdVectorFst:
    """L: phone ids in, word ids out. ``pronunciations`` maps each word id to its alternatives."""
    fst = _Builder()
    start, loop, sil_state = fst.state(), fst.state(), fst.state()
    sil = phone_ids[SIL]
    no_sil_cost, sil_cost = -math.log(1.0 - sil_prob), -math.log(sil_prob)
    fst.arc(start, loop, EPS, EPS, no_sil_cost)
    fst.arc(start, sil_state, EPS, EPS, sil_cost)
    fst.arc(sil_state, loop, sil, EPS)
    for word, alternatives in pronunciations.items():
        for pronunciation in alternatives:
            src = loop
            for i, options in enumerate(_slots(pronunciation)):
                out, dst = (word if i == 0 else EPS), fst.state()  # the word on its first arc
                if options[0] in CLOSURE_BEFORE:
                    closure = fst.state()
                    fst.arc(src, closure, sil, out)
                    for phone in options:
                        fst.arc(closure, dst, phone_ids[phone], EPS)
                for phone in options:
                    fst.arc(src, dst, phone_ids[phone], out)
                src = dst
            fst.arc(src, loop, EPS, EPS, no_sil_cost)
            fst.arc(src, sil_state, EPS, EPS, sil_cost)
    text = "".join(fst.lines) + f"{loop}\n"
    lexicon = kaldifst.compile(text)
    kaldifst.arcsort(lexicon, sort_type="olabel")
    return lexicon
