"""Minimum Bayes risk (MBR) decoding of a CompactLattice, as Kaldi's ``MinimumBayesRisk`` does it.

Kaldi's TIMIT ``local/score.sh`` (``score_sclite.sh``) does not score the best path: for every LM
weight it runs ``lattice-to-ctm-conf --acoustic-scale=1/LMWT`` (``--decode-mbr=true`` is its
default), which picks the word sequence of least *expected* edit distance to the lattice's paths
(Xu, Povey, Mangu, Zhu 2011, "Minimum Bayes Risk decoding and system combination based on a
recursion for edit distance"; Kaldi ``lat/sausages.cc``). This module is our own numpy/Python
implementation of that algorithm, so that the built-in path reports what Kaldi's
``lattice-mbr-decode`` reports on the same lattice; :mod:`pytorch_kaldi_snn.scoring.lm_sweep`
runs it for every ``(LMWT, WIP)`` when ``scoring_opts`` says ``--decode-mbr true``.

Step by step, for one lattice whose costs are already scaled (graph + WIP per word, acoustic /
LMWT, rounded to float32 as Kaldi's binaries store them):

1. **One final state.** If the lattice has several final states, or one with a non-unit weight or
   with arcs leaving it, add a super-final state reached by epsilon arcs that carry the final
   weights (Kaldi's ``CreateSuperFinal``). States are numbered 1..N in topological order, so the
   start is 1 and the final state N; every arc gets ``loglike = -(graph + acoustic)``.
2. **Start hypothesis.** ``R`` = the lattice's best path, written with an epsilon before, between
   and after its words: ``R = (0, w1, 0, w2, ..., wK, 0)``, ``Q = 2K + 1`` positions. The epsilons
   are the slots where an insertion of the lattice may be aligned.
3. **Forward recursion (paper's Fig. 4).** ``alpha(n)`` is the log of the total probability of the
   paths into state ``n``; ``alpha'(n, q)`` the expected edit distance between those paths and the
   first ``q`` positions of ``R``. For every arc ``a = (s, n, w)`` and ``q = 0..Q`` the arc's
   edit distance is the least of a substitution or match ``alpha'(s, q-1) + l(w, r_q)``, a
   lattice-side insertion ``alpha'(s, q) + l(w, 0) + delta`` and a hypothesis-side deletion
   ``alpha'_arc(q-1) + l(0, r_q)``, with ``l(a, b) = [a != b]`` and ``delta = 1e-5`` (it breaks
   ties against insertions; as in Kaldi since its "conceptual bug-fix" to the paper, delta is
   added only where ``l(w, 0) = 1``, so an epsilon arc's insertion costs 0). ``alpha'(n, q)``
   is the average over the incoming arcs weighted by their share
   ``exp(alpha(s) + loglike - alpha(n))`` of the probability of ``n``. The choice
   made (1, 2 or 3) is kept per arc and position. ``alpha'(N, Q)`` is the Bayes risk.
4. **Backward pass (Fig. 5).** ``beta'(n, q)`` sends each path's probability back along the
   choices of step 3; whenever a choice aligns the arc's word (or an epsilon) with position ``q``,
   that mass is added to ``gamma[q][word]``: for every position, a distribution over the words
   (and epsilon) that the paths put there -- Kaldi's "sausage" bins.
5. **Update (Fig. 6).** Every position of ``R`` becomes its most probable entry of ``gamma``
   (ties: the larger word id, as Kaldi's ``GammaCompare`` sorts float32 posteriors); the
   epsilons are re-normalised and steps 3-5 repeat until no position gains probability
   (``sum(old - new) == 0``) or 102 rounds have run. The answer is ``R`` without epsilons.

The recursions run in the same order and double precision as Kaldi's, with the work over all
``q`` (and over the arcs into one state) vectorised where the order of floating-point operations
does not change; step 3's deletion chain and the sums over several arcs stay sequential loops,
so that ties are broken as Kaldi breaks them. The price is speed: see docs/decoding.md.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from pytorch_kaldi_snn.io.lattice import (
    CompactArc, CompactLattice, CompactWeight, best_path, topological_order,
)
from pytorch_kaldi_snn.errors import DataError

DELTA = float(np.float32(1.0e-5))  # Kaldi's delta() is a float constant promoted to double
INSERTION = 1.0 + DELTA  # l(w, 0, penalize=true) for a word w; 0 for an epsilon arc
MAX_ROUNDS = 102  # Kaldi's loop stops once its counter (from 0) passes 100


@dataclass(frozen=True)
class _Graph:
    """The lattice as step 1 leaves it: arcs as arrays, ``pre[n]`` the arcs into state n."""

    num_states: int  # N; states are 1..N, the start is 1 and the only final state N
    src: np.ndarray
    word: np.ndarray
    loglike: np.ndarray
    pre: List[List[int]]


def _f32(x: float) -> float:
    return float(np.float32(x))


def scaled(lat: CompactLattice, acoustic_scale: float, wip: float = 0.0) -> CompactLattice:
    """What ``lattice-scale --acoustic-scale=S | lattice-add-penalty --word-ins-penalty=WIP``
    write: acoustic costs times S and WIP added to the graph cost of word arcs, in float32."""
    scale = float(np.float32(acoustic_scale))

    def weight(w: CompactWeight, word: int) -> CompactWeight:
        graph = _f32(w.graph + _f32(wip)) if word and wip else w.graph  # float + float
        return CompactWeight(graph, _f32(scale * w.acoustic), w.tids)

    arcs = tuple(CompactArc(a.src, a.dst, a.word, weight(a.weight, a.word)) for a in lat.arcs)
    finals = {s: weight(w, 0) for s, w in lat.finals.items()}
    return CompactLattice(lat.start, lat.num_states, arcs, finals)


def _graph(lat: CompactLattice) -> _Graph:
    """Step 1: super-final state, topological numbering from 1, float32 arc loglikes."""
    if not lat.finals:
        raise DataError("lattice has no final state")
    arcs = [(a.src, a.dst, a.word, a.weight.graph, a.weight.acoustic) for a in lat.arcs]
    final = next(iter(lat.finals))
    if len(lat.finals) > 1 or lat.finals[final] != CompactWeight(0.0, 0.0, ()) \
            or any(a[0] == final for a in arcs):
        final = lat.num_states
        arcs += [(s, final, 0, w.graph, w.acoustic) for s, w in sorted(lat.finals.items())]
    order = topological_order(((a[0], a[1]) for a in arcs), lat.start)
    if order[-1] != final and final in order:
        order.remove(final)
        order.append(final)
    if final not in order:
        raise DataError("lattice has no successful path")
    number = {s: i + 1 for i, s in enumerate(order)}
    kept = sorted((a for a in arcs if a[0] in number), key=lambda a: number[a[0]])
    pre: List[List[int]] = [[] for _ in range(len(order) + 1)]
    for i, a in enumerate(kept):
        pre[number[a[1]]].append(i)
    loglike = np.array([-float(np.float32(np.float32(a[3]) + np.float32(a[4]))) for a in kept])
    return _Graph(len(order), np.array([number[a[0]] for a in kept], dtype=np.int64),
                  np.array([a[2] for a in kept], dtype=np.int64), loglike, pre)


def _log_add(x: float, y: float) -> float:
    """Kaldi's ``LogAdd`` for doubles (the larger one alone below exp(-36))."""
    if x < y:
        x, y = y, x
    diff = y - x
    return x + math.log1p(math.exp(diff)) if diff >= math.log(np.finfo(np.float64).eps) else x


def _normalize_eps(words: Sequence[int]) -> np.ndarray:
    """``(0, w1, 0, ..., wK, 0)`` from the words of ``words`` (Kaldi's ``NormalizeEps``)."""
    out = np.zeros(2 * sum(1 for w in words if w) + 1, dtype=np.int64)
    out[1::2] = [w for w in words if w]
    return out


def _choices(first: np.ndarray, a1: np.ndarray, a2: np.ndarray,
             step: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Step 3 for the arcs into one state: ``alpha'_arc`` (arcs x Q+1) and the choices.

    Kaldi takes, for q = 1..Q in turn, the least of ``a1``, ``a2`` and ``a3 = alpha'_arc(q-1)
    + step(q)`` (ties: a1, then a2). Where no deletion wins, ``alpha'_arc(q) = min(a1, a2)`` for
    every q, computed at once; only from the first q where ``min(a1, a2)(q-1) + step(q)`` is
    strictly smaller does the scan run element by element, with Kaldi's additions in its order.
    """
    best = np.minimum(a1, a2)
    x = np.concatenate([first[:, None], best], axis=1)
    pick = np.concatenate([np.zeros((len(first), 1), np.int8),
                           np.where(a1 <= a2, 1, 2).astype(np.int8)], axis=1)
    hits = x[:, :-1] + step < best
    steps = step.tolist()
    for row in np.flatnonzero(hits.any(axis=1)).tolist():
        xs, bs = x[row].tolist(), best[row].tolist()
        chain = []
        for q in range(int(np.argmax(hits[row])) + 1, len(xs)):
            x3 = xs[q - 1] + steps[q - 1]
            if x3 < bs[q - 1]:
                xs[q] = x3
                chain.append(q)
        x[row] = xs
        pick[row, chain] = 3
    return x, pick


def _forward(g: _Graph, r: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Step 3: ``alpha``, ``alpha'``, the per-arc choices (1/2/3 per q) and the Bayes risk."""
    n_pos = len(r)  # Q; r[q-1] is r_q
    alpha = np.full(g.num_states + 1, -math.inf)
    alpha[1] = 0.0
    alpha_dash = np.zeros((g.num_states + 1, n_pos + 1))
    alpha_dash[1, 1:] = np.cumsum((r != 0).astype(np.float64))  # line 7: exact small integers
    choice = np.zeros((len(g.word), n_pos + 1), dtype=np.int8)
    step = (r != 0).astype(np.float64)  # l(0, r_q)
    for n in range(2, g.num_states + 1):
        arcs = g.pre[n]
        total = -math.inf
        for i in arcs:
            total = _log_add(total, alpha[g.src[i]] + g.loglike[i])
        alpha[n] = total
        src, word = g.src[arcs], g.word[arcs]
        ins = np.where(word != 0, INSERTION, 0.0)[:, None]  # l(w, 0, penalize=true)
        a1 = alpha_dash[src, :-1] + (r[None, :] != word[:, None])  # q = 1..Q
        a2 = alpha_dash[src, 1:] + ins
        rows, choice[arcs] = _choices(alpha_dash[src, 0] + ins[:, 0], a1, a2, step)
        for i, row in zip(arcs, rows):  # Kaldi's order of additions; libm's exp
            alpha_dash[n] += math.exp(alpha[g.src[i]] + g.loglike[i] - alpha[n]) * row
    return alpha, alpha_dash, choice, float(alpha_dash[g.num_states, n_pos])


def _backward(g: _Graph, r: np.ndarray, alpha: np.ndarray,
              choice: np.ndarray) -> Dict[int, np.ndarray]:
    """Step 4: ``gamma[word][q]`` (q = 1..Q at index q) from the choices of step 3."""
    n_pos = len(r)
    beta_dash = np.zeros((g.num_states + 1, n_pos + 1))
    beta_dash[g.num_states, n_pos] = 1.0
    gamma: Dict[int, np.ndarray] = defaultdict(lambda: np.zeros(n_pos + 1))
    for n in range(g.num_states, 1, -1):
        for i in g.pre[n]:
            s, w, pick = g.src[i], g.word[i], choice[i]
            share = math.exp(alpha[s] + g.loglike[i] - alpha[n])
            arc = (share * beta_dash[n]).tolist()
            threes = pick == 3
            for q in np.flatnonzero(threes)[::-1]:  # lines 20-25: deletions pass mass down q
                arc[q - 1] += arc[q]
            arc = np.array(arc)
            ones, twos = pick == 1, pick == 2
            beta_dash[s, :-1][ones[1:]] += arc[ones]
            gamma[int(w)][ones] += arc[ones]
            beta_dash[s][twos] += arc[twos]
            gamma[0][threes] += arc[threes]
            beta_dash[s, 0] += arc[0]
    tail = np.zeros(n_pos + 1)  # lines 29-33: what is left at the start state
    for q in range(n_pos, 0, -1):
        tail[q] += beta_dash[1, q]
        tail[q - 1] += tail[q]
    gamma[0][1:] += tail[1:]
    return gamma


def _update(r: np.ndarray, gamma: Dict[int, np.ndarray]) -> Tuple[np.ndarray, float]:
    """Step 5: every position's most probable entry, and the change of the objective."""
    words = np.array(sorted(gamma), dtype=np.int64)
    post = np.stack([gamma[int(w)][1:] for w in words]).astype(np.float32)  # (words, Q)
    new = np.empty_like(r)
    delta_q = 0.0
    for q in range(len(r)):
        col = post[:, q]
        present = col != 0  # Kaldi's map holds no zero entries
        best = max(zip(col[present], words[present]))  # GammaCompare: posterior, then word id
        old = col[words == r[q]]
        delta_q += (float(old[0]) if old.size and old[0] != 0 else 0.0) - float(best[0])
        new[q] = best[1]
    return new, delta_q


def mbr_words(lat: CompactLattice) -> Tuple[List[int], float]:
    """The MBR word sequence of an already scaled lattice, and its Bayes risk (steps 1-5)."""
    g = _graph(lat)
    r = _normalize_eps(best_path(lat, 1.0)[0])
    risk = 0.0
    for _ in range(MAX_ROUNDS):
        alpha, _, choice, risk = _forward(g, r)
        r, delta_q = _update(r, _backward(g, r, alpha, choice))
        if delta_q == 0:
            break
        r = _normalize_eps(r)
    return [int(w) for w in r if w], risk


def mbr_decode(lat: CompactLattice, acoustic_scale: float, wip: float = 0.0) -> List[int]:
    """``lattice-scale --acoustic-scale | lattice-add-penalty | lattice-mbr-decode``: words."""
    return mbr_words(scaled(lat, acoustic_scale, wip))[0]
