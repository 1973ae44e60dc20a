"""Phone bigram LM (ARPA) estimated on training transcripts, and G.fst from it.

Smoothing (the same as the golden system's lm/lm.arpa, see
tests/fixtures/kaldi_golden_decode/README.md):

* unigrams: add-one over the phones and ``</s>``: ``p(w) = (c(w) + 1) / (N + V)``, so a
  phone unseen in training still gets probability; ``<s>`` gets log10 p = -99 as usual;
* bigrams: absolute discounting with ``D = 0.5``: ``p(w | h) = (c(h, w) - D) / c(h)`` for
  seen pairs;
* backoff weights are exact, ``bow(h) = (D * n(h) / c(h)) / (1 - sum_{w seen after h} p(w))``
  where ``n(h)`` is the number of distinct successors, so every history sums to 1.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.tables import atomic_outputs
from pytorch_kaldi_snn.kaldi_ports import kaldifst, kaldilm

BOS, EOS = "<s>", "</s>"
DISCOUNT = 0.5


def _log10(p: float) -> str:
    return f"{math.log10(p):.6f}"


def _counts(sentences: Iterable[Sequence[str]], vocab: set[str]) -> tuple[Counter, Counter]:
    unigrams: Counter = Counter()
    bigrams: Counter = Counter()
    for number, sentence in enumerate(sentences, 1):
        unknown = set(sentence) - vocab
        if unknown:
            raise DataError(f"transcript {number} has symbols outside the phone set: {sorted(unknown)}")
        tokens = [BOS, *sentence, EOS]
        unigrams.update(tokens[1:])
        bigrams.update(zip(tokens[:-1], tokens[1:]))
    return unigrams, bigrams


def bigram_arpa(sentences: Iterable[Sequence[str]], vocab: Sequence[str]) -> str:
    """The ARPA text of the smoothed bigram over ``vocab`` (phones), see the module docstring."""
    unigrams, bigrams = _counts(sentences, set(vocab))
    if not bigrams:
        raise DataError("no training transcripts for the phone bigram")
    words = list(vocab) + [EOS]
    total = sum(unigrams[w] for w in words) + len(words)
    p_uni = {w: (unigrams[w] + 1) / total for w in words}
    by_history: dict[str, dict[str, int]] = {}
    for (h, w), c in bigrams.items():
        by_history.setdefault(h, {})[w] = c
    bows = {}
    for h, successors in by_history.items():
        c_h = sum(successors.values())
        reserved = DISCOUNT * len(successors) / c_h
        bows[h] = reserved / (1.0 - sum(p_uni[w] for w in successors))
    lines = ["\\data\\", f"ngram 1={len(words) + 1}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    lines.append(f"-99\t{BOS}\t{_log10(bows[BOS])}")
    for w in words:
        lines.append(f"{_log10(p_uni[w])}\t{w}" + (f"\t{_log10(bows[w])}" if w in bows else ""))
    lines += ["", "\\2-grams:"]
    for h, successors in by_history.items():
        c_h = sum(successors.values())
        lines += [f"{_log10((c - DISCOUNT) / c_h)}\t{h} {w}" for w, c in sorted(successors.items())]
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def write_arpa_and_g(arpa_text: str, arpa_path: Path, words_txt: Path, g_path: Path) -> kaldifst.StdVectorFst:
    """Write the ARPA file and ``G.fst`` (``arpa2fst --disambig-symbol=#0 --read-symbol-table``)."""
    for path in (arpa_path, g_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(arpa_path) as (temp,):
        Path(temp).write_text(arpa_text, encoding="utf-8")
    with atomic_outputs(g_path) as (temp,):
        kaldilm.arpa2fst(
            input_arpa=str(arpa_path), output_fst=temp, disambig_symbol="#0",
            read_symbol_table=str(words_txt),
        )
    return kaldifst.StdVectorFst.read(str(g_path))
