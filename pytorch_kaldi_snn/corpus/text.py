"""Sentence source: the WordNet 3.0 example sentences shipped as package data.

``data/wordnet_sentences.txt.gz`` is extracted once from Debian's wordnet-base by
``recipes/synth/local/extract_wordnet_sentences.py`` and committed with its licence notice
(``data/WORDNET_LICENSE.txt``: use, copy and distribution allowed with the notice), so the
default path needs only pip and nothing is downloaded at run time.
"""
from __future__ import annotations

import functools
import gzip
import re
from importlib import resources
from typing import Dict, List, Tuple

import numpy as np

from ..errors import ConfigError

SENTENCES_RESOURCE = "wordnet_sentences.txt.gz"
_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")


def words(sentence: str) -> List[str]:
    """Lower-cased words of a sentence, punctuation dropped (``well-meaning``, ``don't`` kept)."""
    return _WORD.findall(sentence.lower())


@functools.lru_cache(maxsize=1)
def load_sentences() -> Tuple[str, ...]:
    """The packaged sentences, one per distinct word sequence, in file (sorted) order."""
    data = resources.files(__package__).joinpath("data").joinpath(SENTENCES_RESOURCE).read_bytes()
    seen = set()
    unique = []
    for sentence in gzip.decompress(data).decode("ascii").splitlines():
        key = tuple(words(sentence))
        if key and key not in seen:
            seen.add(key)
            unique.append(sentence)
    return tuple(unique)


def split_sentences(counts: Dict[str, int], rng: np.random.Generator) -> Dict[str, List[str]]:
    """Disjoint random sentence pools of the given sizes, e.g. ``{"train": 3696, ...}``.

    Sentences are distinct as word sequences, so no test sentence is ever heard in training.
    """
    pool = load_sentences()
    needed = sum(counts.values())
    if needed > len(pool):
        raise ConfigError(f"{needed} utterances need distinct sentences; only {len(pool)} exist")
    order = rng.permutation(len(pool))
    split: Dict[str, List[str]] = {}
    offset = 0
    for name, count in counts.items():
        split[name] = [pool[i] for i in order[offset:offset + count]]
        offset += count
    return split
