"""Kaldi-style scoring: the best error rate over LM weights (and word insertion penalties).

Kaldi's egs do not score one 1-best at the decoding ``acwt``: ``local/score.sh`` rescores the
lattices for every LM weight ``LMWT`` in ``[min_lmwt, max_lmwt]`` (TIMIT: 1..10) and, for words,
every word insertion penalty (LibriSpeech: 0.0, 0.5, 1.0), and reports the best. For one
``(LMWT, WIP)`` the hypothesis is what ::

    lattice-scale --inv-acoustic-scale=LMWT ark:lat ark:- |
      lattice-add-penalty --word-ins-penalty=WIP ark:- ark:- | lattice-best-path ark:- ark,t:-

gives: the path minimising ``graph + WIP * words + acoustic / LMWT`` (score_basic.sh's
1-best). With ``--decode-mbr true`` (the option name of Kaldi's score.sh scripts and of
``lattice-to-ctm-conf``) the last binary is ``lattice-mbr-decode`` instead: the minimum Bayes
risk word sequence, which is what TIMIT's ``local/score.sh`` scores
(:mod:`pytorch_kaldi_snn.scoring.mbr`). Two ways run either on the same lattice archives (``lat.*.gz``):
:func:`builtin_hypotheses` (this package's best path or MBR) and :func:`kaldi_hypotheses`
(Kaldi's binaries), so both report the same figure.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from pytorch_kaldi_snn.config.scoring_opts import ScoringOptions
from pytorch_kaldi_snn.errors import DataError, kaldi_error_line
from pytorch_kaldi_snn.io.lattice import CompactArc, CompactLattice, CompactWeight, best_path, read_lattices
from pytorch_kaldi_snn.io import read_kaldi_map
from pytorch_kaldi_snn.io import commands
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.scoring.mbr import mbr_decode
from pytorch_kaldi_snn.scoring.per import ErrorCounts, score

Hypotheses = Dict[str, List[str]]
Lattices = Union[Path, Sequence[Path]]  # one archive, or the lat.1.gz ... lat.N.gz of N jobs


def _archives(lattices: Lattices) -> List[Path]:
    return [Path(lattices)] if isinstance(lattices, (str, Path)) else [Path(p) for p in lattices]


@dataclass(frozen=True)
class SweepRow:
    lmwt: int
    wip: float
    counts: ErrorCounts
    hypotheses: Hypotheses


@dataclass(frozen=True)
class Sweep:
    rows: Tuple[SweepRow, ...]

    @property
    def best(self) -> SweepRow:
        """The lowest error rate; ties go to the first row, as ``sort -n | head -1`` of
        Kaldi's ``best_wer.sh`` keeps the first LM weight listed."""
        return min(self.rows, key=lambda r: r.counts.errors)

    def table(self) -> List[Dict[str, float]]:
        return [{"lmwt": r.lmwt, "wip": r.wip, "error_rate": round(r.counts.error_rate, 2),
                 "ins": r.counts.ins, "del": r.counts.dels, "sub": r.counts.subs}
                for r in self.rows]


def _penalised(lat: CompactLattice, wip: float) -> CompactLattice:
    """``lattice-add-penalty``: ``wip`` added to the graph cost of every word arc."""
    if wip == 0.0:
        return lat
    arcs = tuple(CompactArc(a.src, a.dst, a.word, CompactWeight(a.weight.graph + wip, a.weight.acoustic,
                                                                a.weight.tids)) if a.word else a
                 for a in lat.arcs)
    return CompactLattice(lat.start, lat.num_states, arcs, lat.finals)


def read_symbols(words_txt: Path) -> Dict[int, str]:
    """``words.txt`` (``word id`` lines) as id -> word."""
    return {int(i): w for w, i in read_kaldi_map(words_txt).items()}


def builtin_hypotheses(lattices: Lattices, words_txt: Path,
                       decode_mbr: bool = False) -> Callable[[int, float], Hypotheses]:
    """Hypotheses per ``(LMWT, WIP)`` on ``lattices``: this package's best path, or its MBR
    decoding (:func:`pytorch_kaldi_snn.scoring.mbr.mbr_decode`) when ``decode_mbr``."""
    lats = {utt: lat for path in _archives(lattices) for utt, lat in read_lattices(path)}
    symbols = read_symbols(words_txt)

    def words(lat: CompactLattice, lmwt: int, wip: float) -> List[int]:
        if decode_mbr:
            return mbr_decode(lat, 1.0 / lmwt, wip)
        return best_path(_penalised(lat, wip), 1.0 / lmwt)[0]

    def hyps(lmwt: int, wip: float) -> Hypotheses:
        return {utt: [symbols[w] for w in words(lat, lmwt, wip)] for utt, lat in lats.items()}
    return hyps


def rescoring_binaries(decode_mbr: bool) -> Tuple[str, ...]:
    """The Kaldi binaries :func:`kaldi_hypotheses` runs."""
    return ("lattice-scale", "lattice-add-penalty",
            "lattice-mbr-decode" if decode_mbr else "lattice-best-path")


def kaldi_hypotheses(lattices: Lattices, words_txt: Path, path: Optional[str] = None,
                     decode_mbr: bool = False) -> Callable[[int, float], Hypotheses]:
    """Hypotheses per ``(LMWT, WIP)`` by Kaldi's lattice-scale | lattice-add-penalty |
    lattice-best-path (or lattice-mbr-decode) on ``lattices`` (binaries found on ``path``)."""
    symbols = read_symbols(words_txt)
    env = {**os.environ, "PATH": path} if path else None
    decoder = rescoring_binaries(decode_mbr)[-1]

    def hyps(lmwt: int, wip: float) -> Hypotheses:
        files = " ".join(shlex.quote(str(p)) for p in _archives(lattices))
        lat = shlex.quote(f"ark:gunzip -cf -- {files}|")  # --: an out_folder may start with '-'
        pipe = (f"lattice-scale --inv-acoustic-scale={lmwt} {lat} ark:- | "
                f"lattice-add-penalty --word-ins-penalty={wip:g} ark:- ark:- | "
                f"{decoder} ark:- ark,t:-")
        done = commands.run(["bash", "-o", "pipefail", "-c", pipe], capture_output=True,
                            text=True, env=env)
        if done.returncode != 0:
            raise DataError(f"Kaldi rescoring failed: {kaldi_error_line(done.stderr)}",
                            file=" ".join(map(str, _archives(lattices))))
        out: Hypotheses = {}
        for line in done.stdout.splitlines():
            utt, *ids = line.split()
            out[utt] = [symbols[int(i)] for i in ids]
        return out
    return hyps


def sweep(refs: Mapping[str, Sequence[str]], hypotheses: Callable[[int, float], Hypotheses],
          opts: ScoringOptions, mode: str,
          phone_map: Optional[Mapping[str, Optional[str]]] = None) -> Sweep:
    """Score every ``(LMWT, WIP)`` of ``opts`` against ``refs``."""
    rows = []
    for lmwt, wip in opts.grid():
        hyps = hypotheses(lmwt, wip)
        rows.append(SweepRow(lmwt, wip, score(refs, hyps, mode, phone_map), hyps))
    return Sweep(tuple(rows))


def write_hypotheses(path: Path, hyps: Hypotheses) -> None:
    """``utt w1 w2 ...`` lines (a Kaldi text file), atomically."""
    text = "".join(" ".join([utt, *words]) + "\n" for utt, words in sorted(hyps.items()))
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
