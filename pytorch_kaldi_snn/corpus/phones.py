"""The 39-class TIMIT phone set and the map from eSpeak NG en-us phonemes onto it.

The inventory is the standard TIMIT-39 folding (Lee & Hon 1989), where closures, pauses and the
glottal stop fold into ``sil``. Its order is fixed: a label's id is its index in :data:`PHONES`,
and ``phones.txt`` of every generated corpus lists it in this order.
"""
from __future__ import annotations

from typing import Dict, Tuple

from ..errors import DataError

SIL = "sil"
PHONES: Tuple[str, ...] = (
    "sil", "aa", "ae", "ah", "aw", "ay", "b", "ch", "d", "dh", "dx", "eh", "er", "ey", "f", "g",
    "hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th",
    "uh", "uw", "v", "w", "y", "z",
)
PHONE_ID: Dict[str, int] = {p: i for i, p in enumerate(PHONES)}
VOWELS = frozenset(
    "aa ae ah aw ay eh er ey ih iy ow oy uh uw".split()
)

# eSpeak NG en-us phoneme (stress marks removed) -> one or two 39-class labels. Two labels mean a
# compound phoneme that the segmenter splits 60/40 (r-coloured vowels, diphthong + schwa).
ESPEAK_TO_TIMIT: Dict[str, Tuple[str, ...]] = {
    "i:": ("iy",), "i": ("iy",),
    "I": ("ih",), "I#": ("ih",), "I2": ("ih",),
    "E": ("eh",),
    "a": ("ae",), "aa": ("ae",),
    "a#": ("ah",), "@": ("ah",), "@2": ("ah",), "@-": ("ah",), "V": ("ah",),
    "3": ("er",), "3:": ("er",),
    "0": ("aa",), "A:": ("aa",), "O:": ("aa",), "O2": ("aa",), "O": ("aa",), "A~": ("aa",),
    "O~": ("aa",),
    "U": ("uh",), "u:": ("uw",),
    "eI": ("ey",), "aI": ("ay",), "OI": ("oy",), "aU": ("aw",), "oU": ("ow",),
    "A@": ("aa", "r"), "O@": ("aa", "r"), "o@": ("aa", "r"), "e@": ("eh", "r"),
    "i@3": ("ih", "r"), "U@": ("uh", "r"),
    "i@": ("iy", "ah"), "aI@": ("ay", "ah"), "aI3": ("ay", "er"),
    "p": ("p",), "b": ("b",), "t": ("t",), "t2": ("t",), "d": ("d",), "k": ("k",), "g": ("g",),
    "t#": ("dx",),
    "?": ("sil",),
    "f": ("f",), "v": ("v",), "T": ("th",), "D": ("dh",), "s": ("s",), "z": ("z",),
    "S": ("sh",), "Z": ("sh",), "h": ("hh",), "x": ("hh",),
    "tS": ("ch",), "dZ": ("jh",),
    "m": ("m",), "n": ("n",), "n-": ("n",), "N": ("ng",),
    "l": ("l",), "@L": ("l",),
    "r": ("r",), "r-": ("r",),
    "w": ("w",),
    "j": ("y",), ";": ("y",),
}
LINKING_R = frozenset({"r", "r-"})
_STRESS_MARKS = "',="


def strip_stress(name: str) -> str:
    """Remove eSpeak's stress marks (``'A@`` -> ``A@``); wheel 1.52 reports them, 1.51 does not."""
    return name.lstrip(_STRESS_MARKS)


def to_timit(name: str) -> Tuple[str, ...]:
    """Map one eSpeak phoneme name (stress marks allowed) to its 39-class label(s).

    Every pause symbol (``_``, ``_:``, ``_!`` ...) is ``sil``; an unknown symbol is an error,
    so a new eSpeak version cannot silently mislabel data.
    """
    bare = strip_stress(name)
    if bare.startswith("_"):
        return (SIL,)
    try:
        return ESPEAK_TO_TIMIT[bare]
    except KeyError:
        raise DataError(f"eSpeak phoneme {name!r} has no TIMIT-39 mapping") from None


def phone_id(label: str) -> int:
    """The id of a 39-class label; an unknown label is a :class:`DataError`."""
    try:
        return PHONE_ID[label]
    except KeyError:
        raise DataError(f"phone {label!r} is not in the 39-phone set") from None
