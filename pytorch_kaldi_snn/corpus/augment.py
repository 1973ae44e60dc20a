"""Signal processing from the 22.05 kHz synthesizer output to a 16 kHz "recording".

All steps keep the labels exact: labels are computed on the clean synthesizer output, the
resampler scales every boundary by its exact rational factor, and channel, noise and level act
on the waveform only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from scipy.signal import butter, lfilter, resample_poly, sosfilt

from .phones import SIL
from .segments import Segment
from .speakers import RESAMPLE_UP, SpeakerSpec

RATE = 16000
NOISE_TYPES = ("none", "white", "pink", "babble")
SNR_DB = (10.0, 30.0)
# Every utterance also gets a white noise floor this far below its speech, like a microphone,
# so no wav holds digital silence (log filterbank energies of exact zeros are degenerate).
NOISE_FLOOR_DB = 50.0
PEAK_DBFS = (-6.0, -1.0)
PAD_S = (0.10, 0.35)
BABBLE_TALKERS = 3
# Paul Kellet's 3-pole approximation of a 1/f (pink) spectrum, applied to white noise.
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)


@dataclass(frozen=True)
class UtteranceAugment:
    """Per-utterance randomness: silence padding, noise and level."""

    pad_before_s: float
    pad_after_s: float
    noise: str
    snr_db: float
    peak_dbfs: float


def draw_augment(rng: np.random.Generator) -> UtteranceAugment:
    """Uniform padding, noise type, SNR and peak level."""
    return UtteranceAugment(
        pad_before_s=round(float(rng.uniform(*PAD_S)), 3),
        pad_after_s=round(float(rng.uniform(*PAD_S)), 3),
        noise=NOISE_TYPES[rng.integers(len(NOISE_TYPES))],
        snr_db=round(float(rng.uniform(*SNR_DB)), 2),
        peak_dbfs=round(float(rng.uniform(*PEAK_DBFS)), 2),
    )


def pad(
    samples: np.ndarray, segments: Sequence[Segment], before: int, after: int
) -> Tuple[np.ndarray, List[Segment]]:
    """Add ``before``/``after`` zero samples, labelled sil, around a labelled signal."""
    zeros = np.zeros(max(before, after), samples.dtype)
    padded = np.concatenate((zeros[:before], samples, zeros[:after]))
    moved = [Segment(s.start + before, s.end + before, s.label) for s in segments]
    end = padded.size
    return padded, [Segment(0, before, SIL)] + moved + [Segment(end - after, end, SIL)]


def resample(samples: np.ndarray, speed_down: int) -> np.ndarray:
    """22.05 kHz -> 16 kHz with speed perturbation ``speed_down / 441`` in one polyphase filter."""
    return resample_poly(samples.astype(np.float64), RESAMPLE_UP, speed_down)


def scale_segments(segments: Sequence[Segment], speed_down: int, n_out: int) -> List[Segment]:
    """Move boundaries by the resampler's exact factor 320/down; drop segments that vanish."""
    def scaled(b: int) -> int:
        return min(n_out, (b * RESAMPLE_UP + speed_down // 2) // speed_down)

    moved = [Segment(scaled(s.start), scaled(s.end), s.label) for s in segments]
    moved[-1] = moved[-1]._replace(end=n_out)  # resample_poly rounds its length up
    return [s for s in moved if s.end > s.start]


def channel(x: np.ndarray, spk: SpeakerSpec) -> np.ndarray:
    """The speaker's 2nd-order Butterworth band-pass followed by a first-order spectral tilt."""
    sos = butter(2, [spk.band_low_hz, spk.band_high_hz], btype="bandpass", fs=RATE, output="sos")
    return lfilter([1.0, -spk.tilt], [1.0], sosfilt(sos, x))


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by filtering white noise."""
    return lfilter(_PINK_B, _PINK_A, rng.standard_normal(n))


def babble(talkers: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of other talkers, each looped to ``n`` samples from a random offset, equal power."""
    mix = np.zeros(n)
    for talker in talkers:
        talker = talker / (np.sqrt(np.mean(talker ** 2)) + 1e-12)
        looped = np.tile(talker, n // talker.size + 2)
        offset = int(rng.integers(talker.size))
        mix += looped[offset:offset + n]
    return mix


def add_noise(
    x: np.ndarray, active: np.ndarray, noise: np.ndarray, snr_db: float
) -> np.ndarray:
    """Add ``noise`` so that speech power on the ``active`` samples is ``snr_db`` above it."""
    speech_power = np.mean(x[active] ** 2)
    noise_power = np.mean(noise ** 2) + 1e-12
    return x + noise * np.sqrt(speech_power / noise_power / 10 ** (snr_db / 10))


def to_int16(x: np.ndarray, peak_dbfs: float) -> np.ndarray:
    """Scale to the given peak level (dB full scale) and quantise."""
    peak = np.max(np.abs(x)) + 1e-12
    return np.round(x * (32767 * 10 ** (peak_dbfs / 20) / peak)).astype(np.int16)


def active_mask(segments: Sequence[Segment], n: int) -> np.ndarray:
    """True on samples inside non-sil segments: where the SNR is measured."""
    mask = np.zeros(n, dtype=bool)
    for s in segments:
        if s.label != SIL:
            mask[s.start:s.end] = True
    return mask
