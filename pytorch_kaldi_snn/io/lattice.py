"""Kaldi CompactLattice archives: build from a decoder's raw lattice, write, read, best path.

A Kaldi CompactLattice is an acceptor over words whose weight is ``(graph cost, acoustic
cost, transition-id string)``; ``latgen-faster-mapped`` writes one per utterance with
unscaled acoustic costs. This module writes such archives in both of Kaldi's forms
(``kaldi-lattice.cc``: ``CompactLatticeHolder::Write``/``Read``):

* text: ``key \\n`` then FstPrinter lines ``src\\tdst\\tword[\\tg,a,t1_t2_...]`` and final
  lines ``state[\\tg,a,tids]``, ended by an empty line;
* binary: ``key `` then an OpenFst ``vector`` FST with arc type ``compactlattice44``
  (weights: float g, float a, int32 n, n int32 tids).

What our lattice is: the *raw state-level* lattice of kaldi-decoder's LatticeSimpleDecoder,
pruned here by forward-backward to ``lattice_beam``, with linear chains merged into one arc
each (as Kaldi's ``ConvertLattice`` does). It is NOT lattice-determinized (no pip package
has ``DeterminizeLatticePruned``), so it can hold several paths with the same word sequence.
"""
from __future__ import annotations

import gzip
import io
import math
import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from pytorch_kaldi_snn.io.fst_header import ByteCursor, read_fst_header, vector_fst_header
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.atomic import atomic_outputs

COMPACT_ARC_TYPE = "compactlattice44"
LATTICE_ARC_TYPE = "lattice4"
# OpenFst property bits we can promise for what we write: kExpanded | kMutable | kAcceptor.
_WRITE_PROPERTIES = 0x1 | 0x2 | 0x10000


@dataclass(frozen=True)
class CompactWeight:
    """A CompactLatticeWeight: graph cost, acoustic cost (unscaled) and transition-ids."""

    graph: float
    acoustic: float
    tids: tuple[int, ...] = ()

    def cost(self, acoustic_scale: float) -> float:
        """The total cost a best-path search minimises: graph + acoustic_scale * acoustic."""
        return self.graph + acoustic_scale * self.acoustic


ONE = CompactWeight(0.0, 0.0, ())


@dataclass(frozen=True)
class CompactArc:
    """One arc of a CompactLattice (an acceptor: the word is both input and output label)."""

    src: int
    dst: int
    word: int
    weight: CompactWeight


@dataclass(frozen=True)
class CompactLattice:
    """A CompactLattice with states ``0..num_states-1``; ``finals`` maps state -> weight."""

    start: int
    num_states: int
    arcs: tuple[CompactArc, ...]
    finals: dict[int, CompactWeight]

    def arcs_by_state(self) -> list[list[CompactArc]]:
        """The arcs grouped by source state, in state order."""
        out: list[list[CompactArc]] = [[] for _ in range(self.num_states)]
        for arc in self.arcs:
            out[arc.src].append(arc)
        return out


@dataclass(frozen=True)
class RawArc:
    """An arc of a raw state-level lattice: transition-id in, word out, (graph, acoustic)."""

    src: int
    dst: int
    tid: int
    word: int
    graph: float
    acoustic: float


def topological_order(edges: Iterable[tuple[int, int]], start: int) -> list[int]:
    """States reachable from ``start`` in topological order (Kahn); DataError on a cycle."""
    succ: dict[int, list[int]] = defaultdict(list)
    for src, dst in edges:
        succ[src].append(dst)
    reach, stack = {start}, [start]
    while stack:
        for nxt in succ[stack.pop()]:
            if nxt not in reach:
                reach.add(nxt)
                stack.append(nxt)
    indeg = dict.fromkeys(reach, 0)
    for src in reach:
        for dst in succ[src]:
            indeg[dst] += 1
    ready, order = [s for s in reach if indeg[s] == 0], []
    while ready:
        s = ready.pop()
        order.append(s)
        for dst in succ[s]:
            indeg[dst] -= 1
            if indeg[dst] == 0:
                ready.append(dst)
    if len(order) != len(reach):
        raise DataError("lattice has a cycle; Kaldi lattices must be acyclic")
    return order


def _prune(
    arcs: list[RawArc], finals: dict[int, tuple[float, float]], start: int, beam: float
) -> tuple[list[RawArc], dict[int, tuple[float, float]]]:
    """Keep the arcs and finals on a path within ``beam`` of the best (forward-backward)."""
    order = topological_order(((a.src, a.dst) for a in arcs), start)
    out: dict[int, list[RawArc]] = defaultdict(list)
    for arc in arcs:
        out[arc.src].append(arc)
    alpha = defaultdict(lambda: math.inf, {start: 0.0})
    for s in order:
        for arc in out[s]:
            alpha[arc.dst] = min(alpha[arc.dst], alpha[s] + arc.graph + arc.acoustic)
    beta = defaultdict(lambda: math.inf)
    for s in reversed(order):
        beta[s] = min([sum(finals.get(s, (math.inf, 0.0)))] + [a.graph + a.acoustic + beta[a.dst] for a in out[s]])
    limit = beta[start] + beam
    if math.isinf(limit):
        raise DataError("lattice has no successful path")
    kept = [a for a in arcs if alpha[a.src] + a.graph + a.acoustic + beta[a.dst] <= limit]
    kept_finals = {s: w for s, w in finals.items() if alpha[s] + sum(w) <= limit}
    return kept, kept_finals


def _factor(
    arcs: list[RawArc], finals: dict[int, tuple[float, float]], start: int, acoustic_scale: float
) -> CompactLattice:
    """Merge linear chains (in = out = 1 arc, not start, not final) into compact arcs.

    A chain is cut where it would carry a second word, since a compact arc has one label.
    Acoustic costs are divided by ``acoustic_scale`` (Kaldi stores them unscaled).
    """
    out: dict[int, list[RawArc]] = defaultdict(list)
    indeg: dict[int, int] = defaultdict(int)
    for arc in arcs:
        out[arc.src].append(arc)
        indeg[arc.dst] += 1

    def passes_through(s: int) -> bool:
        return s != start and s not in finals and indeg[s] == 1 and len(out[s]) == 1

    merged: list[tuple[int, int, int, float, float, tuple[int, ...]]] = []
    nodes, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for arc in out[node]:
            src, word, g, a, tids = node, 0, 0.0, 0.0, []
            while True:
                if arc.word and word:  # second word: end the compact arc before it
                    merged.append((src, arc.src, word, g, a, tuple(tids)))
                    src, word, g, a, tids = arc.src, 0, 0.0, 0.0, []
                word = word or arc.word
                g, a = g + arc.graph, a + arc.acoustic
                tids += [arc.tid] if arc.tid else []
                if not passes_through(arc.dst):
                    break
                arc = out[arc.dst][0]
            merged.append((src, arc.dst, word, g, a, tuple(tids)))
            if arc.dst not in nodes:
                nodes.add(arc.dst)
                todo.append(arc.dst)
    order = topological_order(((m[0], m[1]) for m in merged), start)
    number = {s: i for i, s in enumerate(order)}
    compact = sorted(
        (CompactArc(number[s], number[d], w, CompactWeight(g, a / acoustic_scale, t)) for s, d, w, g, a, t in merged),
        key=lambda arc: arc.src,
    )
    compact_finals = {number[s]: CompactWeight(g, a / acoustic_scale) for s, (g, a) in finals.items()}
    return CompactLattice(0, len(order), tuple(compact), compact_finals)


def compact_from_raw(
    arcs: list[RawArc], finals: dict[int, tuple[float, float]], start: int, acoustic_scale: float, lattice_beam: float
) -> CompactLattice:
    """A raw lattice (acoustic costs scaled by ``acoustic_scale``) -> pruned CompactLattice."""
    kept, kept_finals = _prune(arcs, finals, start, lattice_beam)
    return _factor(kept, kept_finals, start, acoustic_scale)


def best_path(lat: CompactLattice, acoustic_scale: float) -> tuple[list[int], list[int], CompactWeight]:
    """Kaldi's ``lattice-best-path``: words, transition-ids and total weight of the best path."""
    order = topological_order(((a.src, a.dst) for a in lat.arcs), lat.start)
    by_state = lat.arcs_by_state()
    cost = defaultdict(lambda: math.inf)
    back: dict[int, CompactArc] = {}
    cost[lat.start] = 0.0
    for s in order:
        for arc in by_state[s]:
            c = cost[s] + arc.weight.cost(acoustic_scale)
            if c < cost[arc.dst]:
                cost[arc.dst], back[arc.dst] = c, arc
    end = min(lat.finals, key=lambda s: cost[s] + lat.finals[s].cost(acoustic_scale), default=None)
    if end is None or math.isinf(cost[end]):
        raise DataError("lattice has no successful path")
    path: list[CompactArc] = []
    state = end
    while state != lat.start:
        path.append(back[state])
        state = back[state].src
    path.reverse()
    weights = [a.weight for a in path] + [lat.finals[end]]
    words = [a.word for a in path if a.word]
    tids = [t for w in weights for t in w.tids]
    total = CompactWeight(sum(w.graph for w in weights), sum(w.acoustic for w in weights), tuple(tids))
    return words, tids, total


# ---------------------------------------------------------------- text form


def _format_weight(w: CompactWeight, precision: int) -> str:
    return f"{w.graph:.{precision}g},{w.acoustic:.{precision}g}," + "_".join(map(str, w.tids))


def lattice_to_text(key: str, lat: CompactLattice, precision: int = 9) -> str:
    """One archive entry in Kaldi's text form (what ``ark,t:`` gives), start state first.

    ``precision`` significant digits: 9 keeps float32 costs exact; Kaldi itself prints 6.
    """
    lines = [f"{key} "]
    by_state = lat.arcs_by_state()
    for s in [lat.start] + [s for s in range(lat.num_states) if s != lat.start]:
        for arc in by_state[s]:
            weight = "" if arc.weight == ONE else f"\t{_format_weight(arc.weight, precision)}"
            lines.append(f"{arc.src}\t{arc.dst}\t{arc.word}{weight}")
        if s in lat.finals:
            w = lat.finals[s]
            lines.append(f"{s}" + ("" if w == ONE else f"\t{_format_weight(w, precision)}"))
    return "\n".join(lines) + "\n\n"


def _parse_weight(text: str, key: str) -> CompactWeight:
    parts = text.split(",")
    try:
        if len(parts) != 3:
            raise ValueError(text)
        tids = tuple(int(t) for t in parts[2].split("_")) if parts[2] else ()
        # Kaldi parses into float32; do the same so text and binary forms compare equal.
        return CompactWeight(float(np.float32(parts[0])), float(np.float32(parts[1])), tids)
    except ValueError:
        raise DataError(f"bad CompactLattice weight {text!r}", utt=key) from None


def _read_text_lattice(lines: Iterator[str], key: str) -> CompactLattice:
    arcs, finals, start, num_states = [], {}, None, 0
    for line in lines:
        cols = line.split()
        if not cols:
            break
        try:
            ints = [int(c) for c in cols[: 1 if len(cols) <= 2 else 3]]
        except ValueError:
            raise DataError(f"bad lattice line {line!r}", utt=key) from None
        start = ints[0] if start is None else start
        if len(cols) <= 2:
            finals[ints[0]] = _parse_weight(cols[1], key) if len(cols) == 2 else ONE
        elif len(cols) <= 4:
            w = _parse_weight(cols[3], key) if len(cols) == 4 else ONE
            arcs.append(CompactArc(ints[0], ints[1], ints[2], w))
        else:
            raise DataError("only CompactLattice text (acceptor lines) is supported", utt=key)
        num_states = max([num_states, ints[0] + 1] + ([ints[1] + 1] if len(cols) >= 3 else []))
    return CompactLattice(start or 0, num_states, tuple(arcs), finals)


# ---------------------------------------------------------------- binary form


def _write_binary_lattice(out: BinaryIO, lat: CompactLattice) -> None:
    def weight(w: CompactWeight) -> bytes:
        return struct.pack(f"<ffi{len(w.tids)}i", w.graph, w.acoustic, len(w.tids), *w.tids)

    zero = CompactWeight(math.inf, math.inf, ())
    out.write(vector_fst_header(COMPACT_ARC_TYPE, _WRITE_PROPERTIES, lat.start, lat.num_states))
    for s, arcs in enumerate(lat.arcs_by_state()):
        out.write(weight(lat.finals.get(s, zero)) + struct.pack("<q", len(arcs)))
        for arc in arcs:
            out.write(struct.pack("<ii", arc.word, arc.word) + weight(arc.weight) + struct.pack("<i", arc.dst))


def _read_weight(cur: ByteCursor, compact: bool) -> CompactWeight:
    graph, acoustic = cur.take("<ff")
    if not compact:
        return CompactWeight(graph, acoustic, ())
    (n,) = cur.take("<i")
    return CompactWeight(graph, acoustic, cur.take(f"<{n}i"))


def _read_binary_lattice(data: bytes, pos: int, key: str) -> tuple[CompactLattice, int]:
    """An OpenFst vector FST of ``compactlattice44`` or ``lattice4`` arcs (Kaldi accepts both)
    from byte ``pos`` on, and the byte after it.

    A ``lattice4`` FST is converted arc by arc (word = olabel, string = [ilabel]); chains are
    not re-merged, which changes no path.
    """
    header = read_fst_header(data, None, pos, utt=key)
    if header.fst_type != "vector" or header.arc_type not in (COMPACT_ARC_TYPE, LATTICE_ARC_TYPE):
        raise DataError(f"unsupported lattice FST {header.fst_type}/{header.arc_type}", utt=key)
    compact = header.arc_type == COMPACT_ARC_TYPE
    cur = ByteCursor(data, pos + header.size,
                     lambda at: DataError(f"truncated binary lattice at byte {at - pos} of the lattice", utt=key))
    arcs, finals = [], {}
    for s in range(header.num_states):
        final = _read_weight(cur, compact)
        if not math.isinf(final.graph):
            finals[s] = final
        for _ in range(cur.take("<q")[0]):
            ilabel, olabel = cur.take("<ii")
            w = _read_weight(cur, compact)
            (dst,) = cur.take("<i")
            if not compact:
                w = CompactWeight(w.graph, w.acoustic, (ilabel,) if ilabel else ())
            arcs.append(CompactArc(s, dst, olabel, w))
    return CompactLattice(header.start, header.num_states, tuple(arcs), finals), cur.pos


# ---------------------------------------------------------------- archives


def _open_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read lattices: {err.strerror}", file=str(path)) from err
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _read_lattice(data: bytes, pos: int, key: str) -> tuple[CompactLattice, int]:
    """Utterance ``key``'s lattice, text or binary, from byte ``pos`` on, and the byte after it."""
    if data[pos : pos + 1] == b"\n":
        end = data.find(b"\n\n", pos)
        end = len(data) if end < 0 else end + 2
        return _read_text_lattice(iter(data[pos + 1 : end].decode("ascii").split("\n")), key), end
    if data[pos : pos + 1] == b"\xd6":
        return _read_binary_lattice(data, pos, key)
    raise DataError("lattice is neither text nor an OpenFst binary", utt=key)


def read_lattices(path: Path | str) -> Iterator[tuple[str, CompactLattice]]:
    """Read a CompactLattice archive, binary or text, gzipped or not (detected from bytes).
    A bad lattice is one line naming the archive and the utterance."""
    path = Path(path)
    data = _open_bytes(path)
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise DataError(f"archive ends inside a key at byte {pos}", file=str(path))
        key = data[pos:space].decode("utf-8").strip()
        try:
            lat, pos = _read_lattice(data, space + 1, key)
        except DataError as err:  # the lattice readers know the utterance, not the file
            raise err.with_file(str(path)) from None
        yield key, lat


def write_lattices(path: Path | str, items: Iterable[tuple[str, CompactLattice]], binary: bool = True) -> int:
    """Write a CompactLattice archive atomically; gzip it when ``path`` ends in ``.gz``.

    Binary gives what ``latgen-faster-mapped "ark:|gzip -c > lat.1.gz"`` writes; text what
    ``ark,t:`` gives. Returns the number of lattices written.
    """
    path = Path(path)
    buf = io.BytesIO()
    count = 0
    for key, lat in items:
        if binary:
            buf.write(f"{key} ".encode())
            _write_binary_lattice(buf, lat)
        else:
            buf.write(lattice_to_text(key, lat).encode())
        count += 1
    data = gzip.compress(buf.getvalue(), mtime=0) if path.suffix == ".gz" else buf.getvalue()
    with atomic_outputs(path) as (temp,):
        Path(temp).write_bytes(data)
    return count
