"""What decoding a test set gave: typed, built by :mod:`pytorch_kaldi_snn.forward.decode`, kept in
``decode.json`` and reported in ``results.json`` (whose keys and values users and tests read, so
:meth:`DecodeResult.to_json` writes them exactly as before), and the one answer to "is this a
phone graph?" (its error rate is then a PER, else a WER)."""
from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set

from pytorch_kaldi_snn.io.tables import read_kaldi_map

SPECIAL_WORDS = frozenset({"<eps>", "#0", "<s>", "</s>"})


def graph_words(graph: Path) -> Set[str]:
    """The words of ``graph/words.txt``, without epsilon, disambiguation and sentence marks."""
    return set(read_kaldi_map(graph / "words.txt")) - SPECIAL_WORDS


def is_phone_graph(graph: Path) -> bool:
    """Every word of ``graph/words.txt`` is a phone of ``graph/phones.txt`` (as written there, or
    without a word-position suffix such as ``_B``): its transcripts and error rate are in phones."""
    phones_txt = graph / "phones.txt"
    if not phones_txt.is_file():
        return False
    phones = set(read_kaldi_map(phones_txt))
    words = graph_words(graph)
    return bool(words) and words <= phones | {p.split("_")[0] for p in phones}


def metric_of(graph: Path) -> str:
    """The name of a graph's error rate: PER on a phone graph, else WER."""
    return "PER" if is_phone_graph(graph) else "WER"


@dataclass(frozen=True)
class Score:
    """The reported figure of a scored decode, how it was found, and the 1-best at ``acwt``.

    Its fields are ``decode.json``'s keys in their order (``decoder`` comes after ``error_rate``),
    under their ``json`` metadata's name where that differs; a field marked ``omit_none`` is left
    out of the file while None (and read back as None when absent)."""
    metric: str  # PER or WER (metric_of the graph)
    error_rate: float
    scored_on: str
    rescoring: Optional[str]  # kaldi or builtin; None without a sweep
    decode_mbr: Optional[bool] = field(metadata={"omit_none": True})  # None without a sweep
    best_lmwt: Optional[int]
    best_wip: Optional[float]
    ins: int  # the reported figure's errors and reference length
    dels: int = field(metadata={"json": "del"})
    subs: int = field(metadata={"json": "sub"})
    ref_tokens: int
    sweep: List[Dict[str, float]]  # the sweep's table, one row per (LMWT, WIP)
    one_best_acwt: float
    one_best_error_rate: float
    hyp: str  # the reported figure's hypotheses
    decode_dir: str


def _json_key(f: Field) -> str:
    return f.metadata.get("json", f.name)


def _score_json(score: "Score") -> Dict[str, Any]:
    """``score``'s keys of ``decode.json``, in their order."""
    values = ((f, getattr(score, f.name)) for f in fields(Score))
    return {_json_key(f): v for f, v in values if not (v is None and f.metadata.get("omit_none"))}


def _score_from_json(data: Mapping[str, Any]) -> "Score":
    """The :class:`Score` that :func:`_score_json` wrote as ``data``."""
    return Score(**{f.name: data.get(_json_key(f)) if f.metadata.get("omit_none")
                    else data[_json_key(f)] for f in fields(Score)})


@dataclass(frozen=True)
class DecodeResult:
    """One decode of a test set: which decoder ran (``none``: not decoded) and, unless scoring
    was skipped, its score."""
    decoder: str
    score: Optional[Score] = None

    @property
    def metric(self) -> Optional[str]:
        return None if self.score is None else self.score.metric

    @property
    def error_rate(self) -> Optional[float]:
        return None if self.score is None else self.score.error_rate

    def to_json(self) -> Dict[str, Any]:
        """What ``decode.json`` keeps, in its keys and order."""
        head = {"metric": self.metric, "error_rate": self.error_rate, "decoder": self.decoder}
        return head if self.score is None else {**head, **_score_json(self.score)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "DecodeResult":
        """A ``decode.json`` as :meth:`to_json` wrote it (its ``cfg`` key is the caller's)."""
        if data.get("metric") is None:
            return cls(data["decoder"])
        return cls(data["decoder"], _score_from_json(data))

    @property
    def per(self) -> Optional[float]:
        """The error rate as results files' ``per``: only a phone graph's."""
        return self.error_rate if self.metric == "PER" else None

    def results_fields(self) -> Dict[str, Any]:
        """What this decode adds to a results file besides its ``per``: the figure's name, the
        error rate as ``wer`` on a word graph, and the rest of the decoding details."""
        return {"metric": self.metric, "wer": None if self.metric == "PER" else self.error_rate,
                "decoding": {k: v for k, v in self.to_json().items()
                             if k not in ("error_rate", "decoder", "metric")}}


NOT_DECODED = DecodeResult("none")
