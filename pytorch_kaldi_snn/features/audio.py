"""The user's audio files, checked with soundfile before Kaldi's wave reader sees them.

Kaldi's reader (kaldi-native-io) takes only 16-bit PCM wav and reports a bad file as a failed
read of the ``wav.scp`` line, with the real reason in its C++ output. Here every plain-file
entry is opened first, and a bad one is refused in one line naming that file and the reason
(missing, a folder, not audio, another sample rate, stereo, too short), with the ``sox``
command that converts it where one does. Wavs given on transcribe's command line are read
here and converted (24-bit, float, FLAC: anything libsndfile reads) to 16-bit PCM.

A ``wav.scp`` entry ending in ``|`` (a command), ``-`` (stdin) or ``:<digits>`` (an offset
into a file) means something to Kaldi: such entries come only from a ``wav.scp`` the user
wrote, and Kaldi reads them itself.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np
import soundfile

from pytorch_kaldi_snn.corpus.alignment import num_frames
from pytorch_kaldi_snn.errors import DataError

_KALDI_SPECIAL = re.compile(r"(\|\s*|:\d+)$|^-$")
_KALDI_FORMATS = {"WAV", "WAVEX"}  # with subtype PCM_16: what Kaldi's WaveData reads


def kaldi_special(entry: str) -> bool:
    """Whether Kaldi reads this ``wav.scp`` entry as a command, stdin or a file offset."""
    return _KALDI_SPECIAL.search(entry) is not None


class AudioProblem(ValueError):
    """Why a file cannot give features, in the user's words (the caller names the file)."""


def checked_info(path: str, rate: int, kaldi_reads_it: bool) -> Any:
    """soundfile's header of ``path`` (one read, whose ``frames`` callers use too), or
    :class:`AudioProblem` when it cannot give features at ``rate`` Hz. With ``kaldi_reads_it``
    the file must also be 16-bit PCM wav, the only audio Kaldi reads."""
    file = Path(path)
    if not file.exists():
        raise AudioProblem("no such file")
    if file.is_dir():
        raise AudioProblem("a folder, not an audio file")
    if file.stat().st_size == 0:
        raise AudioProblem("empty file (0 bytes)")
    try:
        info = soundfile.info(path)
    except (soundfile.LibsndfileError, OSError) as err:
        raise AudioProblem(f"not an audio file libsndfile reads ({_reason(err)})") from None
    convert = f"; convert it, e.g. sox {shlex.quote(path)} -r {rate} -c 1 -b 16 out.wav"
    if info.samplerate != rate:
        raise AudioProblem(f"sample rate {info.samplerate} Hz, the features need {rate} Hz{convert}")
    if info.channels != 1:
        raise AudioProblem(f"{info.channels} channels, the features need mono{convert}")
    if kaldi_reads_it and (info.format not in _KALDI_FORMATS or info.subtype != "PCM_16"):
        raise AudioProblem(f"{info.format} {info.subtype} audio, Kaldi's wave reader takes only "
                           f"16-bit PCM wav{convert}")
    if num_frames(info.frames, rate) == 0:
        raise AudioProblem(f"empty utterance: {info.frames} samples, shorter than one frame")
    return info


def _reason(err: Exception) -> str:
    text = getattr(err, "error_string", None) or str(err)
    return text.rstrip(".").lower()


def check_wav_table(table: Mapping[str, str], source: str, rate: int) -> Dict[str, int]:
    """Refuse the first plain-file entry of a user's ``wav.scp`` that Kaldi could not read,
    naming ``source``, the utterance and the audio file as written there; return the number of
    samples of every plain-file entry (commands are measured once their features exist)."""
    samples = {}
    for utt, entry in table.items():
        if kaldi_special(entry):
            continue
        try:
            samples[utt] = checked_info(entry, rate, kaldi_reads_it=True).frames
        except AudioProblem as problem:
            raise DataError(f"{entry}: {problem}", file=source, utt=utt) from None
    return samples


def pcm16_samples(path: str, rate: int) -> np.ndarray:
    """The mono samples of ``path`` as 16-bit integers, converted from any format libsndfile
    reads; a file that cannot give features raises :class:`DataError` naming ``path``."""
    try:
        info = checked_info(path, rate, kaldi_reads_it=False)
    except AudioProblem as problem:
        raise DataError(str(problem), file=path) from None
    try:
        if info.subtype == "PCM_16":
            return soundfile.read(path, dtype="int16")[0]  # exactly as Kaldi reads it
        samples = soundfile.read(path, dtype="float64")[0]
    except (soundfile.LibsndfileError, OSError) as err:
        raise DataError(f"cannot read the samples ({_reason(err)})", file=path) from None
    bad = np.flatnonzero(~np.isfinite(samples))
    if len(bad):
        raise DataError(f"{len(bad)} NaN/Inf samples (first at sample {bad[0]})", file=path)
    return np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)
