"""Synthetic speakers: an eSpeak NG voice variant with prosody, speed and a recording channel.

A speaker is everything that stays fixed across its utterances, drawn from a seeded generator:
variant x pitch x pitch range x rate (the engine), speed perturbation (a VTLN-like shift done in
the resampler) and a band-pass + tilt channel. Genders are stratified at 30% female as in TIMIT;
uniform sampling over the variants would give only 15%.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Set, Tuple

import numpy as np

from .espeak import Voice

FEMALE_SHARE = 0.3
# Variants that do not sound like a talker: whispers, robots, and heavy echo (checked by ear in
# the feasibility probe, docs/corpus.md). Echo amplitude is the second field of ``echo``.
_EXCLUDED_PREFIXES = ("whisper", "robosoft")
_EXCLUDED_SUFFIXES = ("Robot",)
_MAX_ECHO_AMPLITUDE = 20
RATE_WPM = (135, 205)
PITCH = (25, 75)
PITCH_RANGE = (20, 90)
# Speed perturbation x0.92..1.08 is resample_poly(x, 320, down): 22.05 kHz -> 16 kHz is exactly
# 320/441, so speed = down / 441 keeps the up/down factors small integers and boundaries exact.
RESAMPLE_UP, RESAMPLE_DOWN = 320, 441
SPEED_DOWN = (406, 476)
BANDPASS_LOW_HZ = (60.0, 250.0)
BANDPASS_HIGH_HZ = (3400.0, 7600.0)
TILT = (-0.6, 0.6)


@dataclass(frozen=True)
class SpeakerSpec:
    """One synthetic speaker. ``speed_down`` is the resampler's down factor (speed = down/441)."""

    spk: str
    gender: str  # "m" or "f", Kaldi spk2gender style
    voice: Voice
    speed_down: int
    band_low_hz: float
    band_high_hz: float
    tilt: float

    @property
    def speed(self) -> float:
        """The speed factor: >1 is faster and higher-pitched."""
        return self.speed_down / RESAMPLE_DOWN

    def to_json_dict(self) -> Dict[str, object]:
        """Flat parameters for ``spk2info``."""
        info = asdict(self)
        info.update(info.pop("voice"))
        info["speed"] = round(self.speed, 6)
        return info


def _voice_attributes(path: Path) -> Tuple[str, int]:
    """(gender, echo amplitude) from one eSpeak variant file; missing lines mean male, no echo."""
    gender, echo = "m", 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "gender":
            gender = "f" if words[1].lower() == "female" else "m"
        elif len(words) >= 3 and words[0] == "echo":
            echo = int(words[2])
    return gender, echo


def _is_usable(name: str, echo: int) -> bool:
    return (
        not name.startswith(_EXCLUDED_PREFIXES)
        and not name.endswith(_EXCLUDED_SUFFIXES)
        and echo <= _MAX_ECHO_AMPLITUDE
    )


@functools.lru_cache(maxsize=1)
def usable_variants() -> Dict[str, Tuple[str, ...]]:
    """Usable variant names by gender (``"m"``, ``"f"``), sorted, from the pinned wheel's data."""
    import espeakng_loader

    by_gender: Dict[str, List[str]] = {"m": [], "f": []}
    for path in sorted((Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir()):
        gender, echo = _voice_attributes(path)
        if _is_usable(path.name, echo):
            by_gender[gender].append(path.name)
    return {g: tuple(names) for g, names in by_gender.items()}


def _draw_speaker(spk: str, gender: str, rng: np.random.Generator) -> SpeakerSpec:
    variants = usable_variants()[gender]
    voice = Voice(
        variant=variants[rng.integers(len(variants))],
        rate=int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
        pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
        pitch_range=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
    )
    return SpeakerSpec(
        spk=spk,
        gender=gender,
        voice=voice,
        speed_down=int(rng.integers(SPEED_DOWN[0], SPEED_DOWN[1] + 1)),
        band_low_hz=round(float(rng.uniform(*BANDPASS_LOW_HZ)), 1),
        band_high_hz=round(float(rng.uniform(*BANDPASS_HIGH_HZ)), 1),
        tilt=round(float(rng.uniform(*TILT)), 3),
    )


def draw_speakers(
    prefix: str, count: int, rng: np.random.Generator, taken: Set[Tuple[Voice, int]]
) -> List[SpeakerSpec]:
    """``count`` speakers named ``<g><prefix><nnn>``, 30% female, none repeating one in ``taken``.

    ``taken`` holds the (voice, speed) pairs already used by other splits and is updated, so
    speakers are distinct across train/dev/test even though they share the variant pool.
    """
    n_female = int(round(FEMALE_SHARE * count))
    genders = ["f"] * n_female + ["m"] * (count - n_female)
    rng.shuffle(genders)
    speakers = []
    for i, gender in enumerate(genders):
        spec = _draw_speaker(f"{gender}{prefix}{i:03d}", gender, rng)
        while (spec.voice, spec.speed_down) in taken:
            spec = _draw_speaker(spec.spk, gender, rng)
        taken.add((spec.voice, spec.speed_down))
        speakers.append(spec)
    return speakers
