"""The cost of a phone sequence's best path through a word L.fst (tests of alignment from words)."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from pytorch_kaldi_snn.corpus.phones import PHONES
from pytorch_kaldi_snn.gmm.lexicon_fst import ConnectedSpeech, lexicon_fst
from pytorch_kaldi_snn.kaldi_ports import kaldifst

PHONE_IDS = {p: i for i, p in enumerate(PHONES, 1)}
EDGES = 2 * -math.log(0.5)  # no leading and no trailing silence, with sil_prob 0.5


def path_cost(phones: str, words: Sequence[int], lexicon_words: Mapping[int, Sequence[Sequence[str]]],
              speech: ConnectedSpeech = ConnectedSpeech(), pron_probs: Mapping[int, Sequence[float]] = {},
              phone_ids: Mapping[str, int] = PHONE_IDS) -> float:
    """The cost of the best path of ``phones`` through L for the word sequence ``words`` (inf if none)."""
    lexicon = lexicon_fst(lexicon_words, phone_ids, 0.5, speech, pron_probs)
    phone_seq = kaldifst.make_linear_acceptor([phone_ids[p] for p in phones.split()])
    kaldifst.arcsort(lexicon, sort_type="ilabel")
    with_words = kaldifst.compose(phone_seq, lexicon)
    kaldifst.arcsort(with_words, sort_type="olabel")
    graph = kaldifst.compose(with_words, kaldifst.make_linear_acceptor(list(words)))
    if graph.num_states == 0:
        return math.inf
    return float(kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(graph))[3].value)
