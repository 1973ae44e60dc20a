"""Pronunciation probabilities from a recipe's training set (``steps/get_prons.sh`` and
``utils/dict_dir_add_pronprobs.sh``).

Kaldi counts the pronunciations that a first-pass alignment of the training set chose. A
recipe's training set has better: its phone transcripts, which the GMM was trained on. Each
utterance's phones are matched against its words' alternatives through the L.fst that alignment
from words uses (silences, closures, flaps and glides optional), which says which alternative of
each word was said. As Kaldi, each word's probabilities are divided by its most frequent
alternative's, so that the usual pronunciation costs nothing; add-one smoothing keeps an
alternative never seen possible. A word the training set never said gets no probabilities.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from pytorch_kaldi_snn.gmm.lexicon_fst import ConnectedSpeech, lexicon_fst
from pytorch_kaldi_snn.kaldi_ports import kaldifst
from pytorch_kaldi_snn.words.lexicon import Pronunciation


@dataclass(frozen=True)
class PronProbs:
    """How often the training set said each alternative of each word."""

    counts: Mapping[str, Mapping[Pronunciation, int]] = field(default_factory=dict)
    unmatched: int = 0  # training utterances whose phones no path of L gives (not counted)

    def of(self, word: str, alternatives: Sequence[Sequence[str]]) -> Optional[List[float]]:
        """The probability of each alternative; ``None`` for a word never said."""
        said = self.counts.get(word, {})
        most = max(said.values(), default=0)
        if not most:
            return None
        return [(said.get(tuple(p), 0) + 1) / (most + 1) for p in alternatives]


def _alternatives_fst(words: Sequence[str], ids: Mapping[str, Mapping[Pronunciation, int]]) -> kaldifst.StdVectorFst:
    """An acceptor of the utterance's words, each as any of its alternatives' labels."""
    arcs = "".join(f"{i} {i + 1} {label} {label}\n" for i, word in enumerate(words) for label in ids[word].values())
    fst = kaldifst.compile(arcs + f"{len(words)}\n")
    kaldifst.arcsort(fst, sort_type="ilabel")
    return fst


def _said(phone_seq: kaldifst.StdVectorFst, lexicon: kaldifst.StdVectorFst,
          alternatives: kaldifst.StdVectorFst) -> Optional[List[int]]:
    """The labels of the alternatives the phones went through (the best path), or ``None``."""
    with_words = kaldifst.compose(phone_seq, lexicon)
    kaldifst.arcsort(with_words, sort_type="olabel")
    graph = kaldifst.compose(with_words, alternatives)
    if graph.num_states == 0:
        return None
    return list(kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(graph))[2])


def count_pronunciations(words: Mapping[str, Sequence[str]], phones: Mapping[str, Sequence[str]],
                         lexicon: Mapping[str, Sequence[Pronunciation]], phone_ids: Mapping[str, int],
                         speech: ConnectedSpeech) -> PronProbs:
    """Counted in the utterances that have both ``words`` and ``phones`` (explicit ``sil``)."""
    ids: Dict[str, Dict[Pronunciation, int]] = defaultdict(dict)
    said_as: Dict[int, Tuple[str, Pronunciation]] = {}
    for word in sorted({w for utt in words if utt in phones for w in words[utt]}):
        for pronunciation in lexicon[word]:
            label = len(said_as) + 1
            ids[word][tuple(pronunciation)] = label
            said_as[label] = (word, tuple(pronunciation))
    fst = lexicon_fst({label: [p] for label, (_, p) in said_as.items()}, phone_ids, speech=speech)
    kaldifst.arcsort(fst, sort_type="ilabel")
    counts: Dict[str, Counter] = defaultdict(Counter)
    unmatched = 0
    for utt in sorted(set(words) & set(phones)):
        labels = _said(kaldifst.make_linear_acceptor([phone_ids[p] for p in phones[utt]]), fst,
                       _alternatives_fst(words[utt], ids))
        if labels is None:
            unmatched += 1
            continue
        for label in labels:
            word, pronunciation = said_as[label]
            counts[word][pronunciation] += 1
    return PronProbs(counts, unmatched)
