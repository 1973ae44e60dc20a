"""Word transcripts as Kaldi's LibriSpeech and TIMIT data preparation leave them.

LibriSpeech's ``text`` is words of letters and apostrophes, one case, no punctuation; TIMIT's
``local/timit_data_prep.sh`` lower-cases the ``.wrd`` words and drops punctuation. Here, per
token of a ``text`` line:

* case is folded (``The`` and ``THE`` are one word, ``the``);
* a hyphen splits a token into words (``well-meaning`` -> ``well meaning``), as eSpeak reads it;
* punctuation and symbols (Unicode categories P and S: ``, . ? ! " ( ) ; :`` ...) are dropped,
  and so is an apostrophe that opens or closes a token (a quote); one inside a word stays
  (``don't``, ``o'clock``). Every dropped character is counted, for one log line;
* any other character (a digit, a letter outside a-z such as ``é``) has no pronunciation rule
  here and is refused by name, unless the lexicon has the whole word.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from typing import AbstractSet, List, Tuple

from pytorch_kaldi_snn.errors import DataError

APOSTROPHE = "'"
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz'")


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


def _word(token: str, known: AbstractSet[str], dropped: Counter) -> str:
    """One hyphen-free token as a word ('' when it was punctuation only)."""
    if token in known:
        return token
    kept = []
    for char in token:
        if char == APOSTROPHE or not _is_punctuation(char):
            kept.append(char)
        else:
            dropped[char] += 1
    word = "".join(kept)
    stripped = word.strip(APOSTROPHE)
    dropped[APOSTROPHE] += len(word) - len(stripped)
    unknown = [c for c in stripped if c not in _LETTERS]
    if unknown and stripped not in known:
        raise DataError(f"{unknown[0]!r} (U+{ord(unknown[0]):04X}) in {token!r} is not a letter a-z: "
                        f"write it out as words, or give {stripped!r} in a --lexicon file")
    return stripped


def normalise(line: str, known: AbstractSet[str], dropped: Counter) -> List[str]:
    """The words of one transcript line; ``known`` (the lexicon's words) are kept as they are,
    and each dropped character is counted in ``dropped``."""
    words = []
    for token in line.casefold().split():
        parts = [token] if token in known else token.split("-")
        dropped["-"] += len(parts) - 1
        words += [w for w in (_word(part, known, dropped) for part in parts) if w]
    return words


def dropped_summary(dropped: Counter) -> Tuple[int, str]:
    """(count, ``',' 12, '.' 8``): the dropped characters, most frequent first."""
    listed = ", ".join(f"{char!r} {n}" for char, n in dropped.most_common() if n)
    return sum(dropped.values()), listed
