"""Phone segments from eSpeak NG phoneme events, with the fixes for its alignment artefacts.

eSpeak's PHONEME event marks the exact sample where the synthesizer switched phoneme, but three
conventions of its generator would mislabel frames if taken literally (see docs/corpus.md):

1. A stop's closure silence is emitted *before* the stop's event, at the end of the previous
   phone. Every run of exact-zero samples of 10 ms or more becomes ``sil``, which is also where
   TIMIT-39 folds closures (pcl, tcl, ... -> sil).
2. A post-vocalic dark /l/ is realised as a formant transition inside the preceding vowel; its own
   segment is silent or empty. Such an /l/ takes the last 35% of the previous phone's voiced part
   (25-70 ms). This is the one heuristic boundary.
3. r-coloured and compound vowels are single phonemes; they are split 60/40 (the second half is
   dropped when a linking r follows, since espeak then omits the r colouring).

A glottal stop is a short silence and maps to ``sil`` (TIMIT deletes q).
"""
from __future__ import annotations

from typing import List, NamedTuple, Sequence, Tuple

import numpy as np

from .phones import LINKING_R, PHONES, SIL, phone_id, strip_stress, to_timit

MIN_ZERO_RUN_S = 0.010
DARK_L_MAX_SOUND_S = 0.010  # an /l/ segment with less non-zero audio than this is "silent"
DARK_L_SHARE = 0.35
DARK_L_MIN_S, DARK_L_MAX_S = 0.025, 0.070
DARK_L_MAX_SHARE = 0.6  # the vowel keeps at least 40% of its voiced part
COMPOUND_SPLIT = 0.6


class Segment(NamedTuple):
    """A labelled half-open sample interval ``[start, end)``."""

    start: int
    end: int
    label: str


class _Unit(NamedTuple):
    start: int
    end: int
    labels: Tuple[str, ...]


def _raw_units(events: Sequence[Tuple[int, str]], n: int) -> List[_Unit]:
    """One unit per event, ending where the next begins; samples before the first event are sil."""
    marks = sorted((min(max(s, 0), n), strip_stress(name)) for s, name in events)
    units: List[_Unit] = [_Unit(0, marks[0][0], (SIL,))] if marks and marks[0][0] > 0 else []
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else n
        labels = to_timit(name)
        if end == start and labels != ("l",):  # empty pauses; an empty /l/ is fixed below
            continue
        next_name = marks[i + 1][1] if i + 1 < len(marks) else ""
        if len(labels) == 2 and labels[1] == "r" and next_name in LINKING_R:
            labels = labels[:1]
        units.append(_Unit(start, end, labels))
    return units


def _fix_dark_l(units: List[_Unit], samples: np.ndarray, rate: int) -> List[_Unit]:
    """Give an /l/ with (almost) no sound of its own the tail of the previous voiced phone."""
    min_sound = int(round(DARK_L_MAX_SOUND_S * rate))
    fixed: List[_Unit] = []
    for unit in units:
        silent = np.count_nonzero(samples[unit.start:unit.end]) < min_sound
        prev = fixed[-1] if fixed else None
        if unit.labels != ("l",) or not silent or prev is None or prev.labels[-1] == SIL:
            fixed.append(unit)
            continue
        voiced = np.flatnonzero(samples[prev.start:prev.end])
        if voiced.size == 0:
            fixed.append(unit)
            continue
        voiced_len = int(voiced[-1]) + 1
        take = min(max(DARK_L_SHARE * voiced_len, DARK_L_MIN_S * rate), DARK_L_MAX_S * rate,
                   DARK_L_MAX_SHARE * voiced_len)
        cut = prev.start + voiced_len - int(round(take))
        fixed[-1] = prev._replace(end=cut)
        fixed.append(_Unit(cut, unit.end, unit.labels))
    return fixed


def _label_samples(units: Sequence[_Unit], n: int) -> np.ndarray:
    """Per-sample label ids; compound units are split 60/40."""
    ids = np.full(n, phone_id(SIL), dtype=np.int8)
    for unit in units:
        if len(unit.labels) == 1:
            ids[unit.start:unit.end] = phone_id(unit.labels[0])
        else:
            cut = unit.start + int(round(COMPOUND_SPLIT * (unit.end - unit.start)))
            ids[unit.start:cut] = phone_id(unit.labels[0])
            ids[cut:unit.end] = phone_id(unit.labels[1])
    return ids


def _silence_zero_runs(ids: np.ndarray, samples: np.ndarray, min_run: int) -> None:
    """Relabel every run of at least ``min_run`` exact-zero samples as sil (stop closures)."""
    zero = np.concatenate(([0], (samples == 0).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(zero))
    for start, end in zip(edges[0::2], edges[1::2]):
        if end - start >= min_run:
            ids[start:end] = phone_id(SIL)


def runs(ids: np.ndarray) -> List[Segment]:
    """Run-length encode per-sample label ids into segments."""
    if ids.size == 0:
        return []
    change = np.flatnonzero(np.diff(ids)) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [ids.size]))
    return [Segment(int(s), int(e), PHONES[ids[s]]) for s, e in zip(starts, ends)]


def espeak_segments(
    samples: np.ndarray, events: Sequence[Tuple[int, str]], rate: int
) -> List[Segment]:
    """Contiguous 39-class segments covering ``samples``, from eSpeak PHONEME events.

    Adjacent segments always differ in label; all boundaries are sample indices at ``rate``.
    """
    units = _fix_dark_l(_raw_units(events, samples.size), samples, rate)
    ids = _label_samples(units, samples.size)
    _silence_zero_runs(ids, samples, int(round(MIN_ZERO_RUN_S * rate)))
    return runs(ids)
