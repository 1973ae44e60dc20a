"""A data dir's ``segments`` file, and the audio of each segment as Kaldi's ``extract-segments``
cuts it.

``segments`` lines are ``<utt> <recording> <start> <end>`` in seconds; ``wav.scp`` is then keyed
by recording. An end of ``-1`` means the end of the recording. Sample ranges are rounded as
``extract-segments`` rounds them, and an end up to 0.5 s beyond the recording is cut at its end
(Kaldi's ``--max-overshoot``). Where ``extract-segments`` warns and drops a segment (a start
beyond the audio, an end further beyond, start >= end), the segment is refused by name instead.
"""
from __future__ import annotations

import math
import os
from typing import Iterator, List, Mapping, NamedTuple, Optional, Tuple

import kaldi_native_io as kio
import numpy as np

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.tables import PathLike, read_table_lines

MAX_OVERSHOOT_S = 0.5


class UttSegment(NamedTuple):
    """One ``segments`` line: the utterance is ``recording`` from ``start`` to ``end`` seconds."""

    recording: str
    start: float
    end: float  # -1: to the end of the recording

    def samples(self, rate: float, n_samples: int, where: str, utt: str) -> Tuple[int, int]:
        """``(first, end)`` sample of the segment in a recording of ``n_samples`` at ``rate``."""
        length = n_samples / rate
        if self.start > length or (self.end != -1 and self.end - length > MAX_OVERSHOOT_S):
            raise DataError(f"segment {self.start:g}-{self.end:g} s is beyond recording "
                            f"{self.recording} ({length:g} s)", file=where, utt=utt)
        end = length if self.end == -1 else min(self.end, length)
        return _round(self.start * rate), _round(end * rate)


def _round(value: float) -> int:
    """C's std::round (half away from zero), as extract-segments rounds; not Python's round."""
    return int(math.floor(value + 0.5))


def read_segments(path: PathLike) -> dict[str, UttSegment]:
    """``utt -> UttSegment`` in file order; a malformed line raises :class:`DataError`."""
    name = os.fspath(path)
    table: dict[str, UttSegment] = {}
    for number, line in enumerate(read_table_lines(name), 1):
        fields = line.split()
        if len(fields) != 4:
            raise DataError(f"line {number}: expected '<utt> <recording> <start> <end>' (seconds)",
                            file=name)
        utt, recording = fields[:2]
        try:
            start, end = float(fields[2]), float(fields[3])
        except ValueError:
            raise DataError(f"line {number}: start and end must be seconds", file=name,
                            utt=utt) from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or \
                (end != -1 and end <= start):
            raise DataError(f"line {number}: needs 0 <= start < end (or end -1), got {start:g} "
                            f"{end:g}", file=name, utt=utt)
        if utt in table:
            raise DataError(f"line {number}: duplicate key", file=name, utt=utt)
        table[utt] = UttSegment(recording, start, end)
    return table


Ranges = List[Tuple[str, Tuple[int, int]]]  # (utt, (first, end sample)) of a recording


def recording_utterances(segments: Optional[Mapping[str, UttSegment]], recording: str,
                         n_samples: int, rate: float, where: str) -> Ranges:
    """The utterances of ``wav.scp`` entry ``recording`` (``n_samples`` at ``rate``) with their
    sample ranges: the whole recording without ``segments``, else each of its segments as
    ``extract-segments`` cuts it (``where``: the segments file, named by a refusal)."""
    if segments is None:
        return [(recording, (0, n_samples))]
    return [(utt, seg.samples(rate, n_samples, where, utt))
            for utt, seg in segments.items() if seg.recording == recording]


def read_segment_waves(
    wav_scp: PathLike, segments: Mapping[str, UttSegment], segments_file: PathLike
) -> Iterator[Tuple[str, Tuple[float, np.ndarray]]]:
    """Yield ``(utt, (rate, samples))`` for each segment, in ``segments`` order, like
    ``extract-segments scp:wav.scp segments ark:- |``; a recording is read once per run of
    segments that use it (``wav.scp`` lines may be ``cmd |`` pipes)."""
    scp, where = os.fspath(wav_scp), os.fspath(segments_file)
    reader = kio.RandomAccessWaveReader(f"scp:{scp}")
    try:
        loaded: Tuple[str, float, np.ndarray] = ("", 0.0, np.zeros((1, 0), np.float32))
        for utt, seg in segments.items():
            if seg.recording != loaded[0]:
                loaded = (seg.recording, *_recording(reader, scp, seg.recording, utt))
            _, rate, samples = loaded
            first, end = seg.samples(rate, samples.shape[1], where, utt)
            yield utt, (rate, samples[:, first:end])
    finally:
        reader.close()


def _recording(reader: kio.RandomAccessWaveReader, scp: str, recording: str,
               utt: str) -> Tuple[float, np.ndarray]:
    try:
        wave = reader[recording]
    except (RuntimeError, KeyError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot read recording {recording} of utterance {utt} ({reason})",
                        file=scp) from None
    return wave.sample_freq, np.array(wave.data.numpy(), np.float32)
