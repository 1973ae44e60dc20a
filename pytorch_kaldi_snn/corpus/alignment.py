"""Frame-level phone alignments in Kaldi's framing, and their files in a data dir.

Framing is Kaldi's default (25 ms window, 10 ms shift, snip-edges): a wav of N samples at rate r
has ``1 + (N - 0.025 r) // (0.010 r)`` frames, and frame t is labelled by the phone that covers
its centre sample ``t * shift + window // 2`` (t*160 + 200 at 16 kHz).

Two interchangeable files hold an alignment (the contract of docs/corpus.md):

* ``ali.txt``: ``utt p0 p1 ...``, one 39-class phone symbol per frame;
* ``phones.ctm``: ``utt channel start duration phone`` in seconds; frames whose centre no line
  covers are ``sil``. The frame count comes from ``utt2num_frames``, else from the wav file (of
  each segment, where the data dir has a ``segments`` file).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from ..errors import DataError
from ..io.segments import read_segments, recording_utterances
from ..io.tables import read_table_lines
from .phones import PHONE_ID, SIL
from .segments import Segment

WINDOW_S, SHIFT_S = 0.025, 0.010
_CENTRE_US, _SHIFT_US = 12_500, 10_000  # frame-centre times in integer microseconds
_WINDOW_US = 25_000
FRAME_SLACK = 2  # frames an alignment may overrun its audio (framing conventions of other tools)


def frame_geometry(rate: int) -> Tuple[int, int]:
    """(window, shift) in samples at ``rate``; Kaldi needs both to be whole samples."""
    window, shift = WINDOW_S * rate, SHIFT_S * rate
    if window != int(window) or shift != int(shift):
        raise DataError(f"sample rate {rate} Hz does not give whole-sample 25/10 ms frames")
    return int(window), int(shift)


def num_frames(n_samples: int, rate: int) -> int:
    """Kaldi's snip-edges frame count of a wav with ``n_samples`` samples."""
    window, shift = frame_geometry(rate)
    return 0 if n_samples < window else 1 + (n_samples - window) // shift


def frame_centres(n_samples: int, rate: int) -> np.ndarray:
    """The sample index that decides each frame's label."""
    window, shift = frame_geometry(rate)
    return np.arange(num_frames(n_samples, rate)) * shift + window // 2


def frame_labels(segments: Sequence[Segment], n_samples: int, rate: int) -> List[str]:
    """The label of each frame: the segment covering its centre (segments must be contiguous)."""
    starts = np.array([s.start for s in segments])
    owner = np.searchsorted(starts, frame_centres(n_samples, rate), side="right") - 1
    return [segments[i].label for i in owner]


def run_labels(ids: np.ndarray) -> np.ndarray:
    """The label of each run of equal frame labels, in order: a frame alignment as its phone
    sequence (``sil`` kept), as ``ali-to-phones`` gives it."""
    ids = np.asarray(ids)
    return ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids


def ensure_frames(segments: Sequence[Segment], n_samples: int, rate: int) -> List[Segment]:
    """Merge every segment that holds no frame centre into its left neighbour (else the right).

    Without this a phone shorter than a frame (about 1 in 10,000 after the eSpeak fixes) would be
    in the reference but in no frame. Merging moves no frame, so every kept segment keeps its
    frames; neighbours that end up with equal labels are joined.
    """
    centres = frame_centres(n_samples, rate)
    kept: List[Segment] = []
    orphan_start = None  # start of frameless segments before the first segment with a frame
    for seg in segments:
        has_frame = np.searchsorted(centres, seg.start) < np.searchsorted(centres, seg.end)
        if has_frame:
            kept.append(seg if orphan_start is None else seg._replace(start=orphan_start))
            orphan_start = None
        elif kept:
            kept[-1] = kept[-1]._replace(end=seg.end)
        elif orphan_start is None:
            orphan_start = seg.start
    return _join_equal(kept)


def _join_equal(segments: Iterable[Segment]) -> List[Segment]:
    joined: List[Segment] = []
    for seg in segments:
        if joined and joined[-1].label == seg.label:
            joined[-1] = joined[-1]._replace(end=seg.end)
        else:
            joined.append(seg)
    return joined


def ctm_lines(utt: str, segments: Sequence[Segment], rate: int) -> List[str]:
    """CTM lines with 5 decimals (10 us), enough to recover every boundary's frame exactly."""
    return [
        f"{utt} 1 {s.start / rate:.5f} {(s.end - s.start) / rate:.5f} {s.label}" for s in segments
    ]


def _ids(labels: Sequence[str], where: str, utt: str) -> np.ndarray:
    unknown = sorted(set(labels) - PHONE_ID.keys())
    if unknown:
        raise DataError(f"phone {unknown[0]!r} is not in the 39-phone set", file=where, utt=utt)
    return np.array([PHONE_ID[p] for p in labels], dtype=np.int32)


def _table(path: Path) -> Dict[str, str]:
    """A Kaldi ``key value...`` table; duplicate keys are an error."""
    table: Dict[str, str] = {}
    for line in read_table_lines(path):
        key, _, rest = line.strip().partition(" ")
        if not key:
            continue
        if key in table:
            raise DataError(f"duplicate key {key!r}", file=str(path))
        table[key] = rest.strip()
    return table


def _read_ali_txt(path: Path) -> Dict[str, np.ndarray]:
    return {utt: _ids(rest.split(), str(path), utt) for utt, rest in _table(path).items()}


def _frame_counts(data_dir: Path) -> Dict[str, int]:
    """Frames per utterance from utt2num_frames, else from the plain-file wavs of wav.scp, cut
    by ``segments`` where the data dir has one (the frames of each segment, as its features)."""
    counts = data_dir / "utt2num_frames"
    if counts.is_file():
        return {utt: int(n) for utt, n in _table(counts).items()}
    import soundfile

    wav_scp, segments_file = data_dir / "wav.scp", data_dir / "segments"
    segments = read_segments(segments_file) if segments_file.is_file() else None
    frames: Dict[str, int] = {}
    for key, wav in _table(wav_scp).items():
        if wav.endswith("|") or not Path(wav).is_file():
            raise DataError(f"{'recording' if segments else 'utterance'} {key}: its wav is not a "
                            "plain file, so phones.ctm's frames cannot be counted; add "
                            "utt2num_frames", file=str(wav_scp))
        info = soundfile.info(wav)
        for utt, (first, end) in recording_utterances(segments, key, info.frames,
                                                      info.samplerate, str(segments_file)):
            frames[utt] = num_frames(end - first, info.samplerate)
    return frames


def _read_ctm(path: Path, n_frames: Dict[str, int]) -> Dict[str, np.ndarray]:
    spans: Dict[str, List[Tuple[int, int, str]]] = {}
    for number, line in enumerate(read_table_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 5:
            raise DataError(f"line {number}: expected 'utt channel start dur phone'",
                            file=str(path))
        start_us, dur_us = round(float(fields[2]) * 1e6), round(float(fields[3]) * 1e6)
        spans.setdefault(fields[0], []).append((start_us, start_us + dur_us, fields[4], number))
    alignment: Dict[str, np.ndarray] = {}
    for utt, utt_spans in spans.items():
        if utt not in n_frames:
            raise DataError("no frame count (utt2num_frames, segments or wav.scp)", file=str(path),
                            utt=utt)
        _check_within_audio(utt_spans, n_frames[utt], path, utt)
        centres = _CENTRE_US + _SHIFT_US * np.arange(n_frames[utt])
        labels = np.full(centres.size, SIL, dtype=object)
        for start, end, phone, _ in sorted(utt_spans):
            labels[(centres >= start) & (centres < end)] = phone
        alignment[utt] = _ids(list(labels), str(path), utt)
    return alignment


def _check_within_audio(spans: Sequence[Tuple[int, int, str, int]], n_frames: int, path: Path,
                        utt: str) -> None:
    """A phone that starts past the audio's end (its last frame's window) by more than
    FRAME_SLACK frames labels no frame: it belongs to other audio, and would vanish unseen."""
    end_us = _SHIFT_US * (n_frames - 1) + _WINDOW_US if n_frames else 0
    for start, _, phone, number in spans:
        if start >= end_us + FRAME_SLACK * _SHIFT_US:
            raise DataError(f"line {number}: phone {phone!r} starts at {start / 1e6:.3f} s, after "
                            f"the end of its audio ({end_us / 1e6:.3f} s, {n_frames} frames; up to "
                            f"{FRAME_SLACK * _SHIFT_US // 1000} ms past it is accepted)",
                            file=str(path), utt=utt)


def read_phone_alignment(data_dir: str | Path) -> Dict[str, np.ndarray]:
    """Frame-level 39-class phone ids (index in ``phones.txt``) per utterance of a data dir.

    Reads ``ali.txt`` if present, else ``phones.ctm`` converted with the framing rule above, so
    any data dir with either file works downstream (GMM alignment, frame targets).
    """
    data_dir = Path(data_dir)
    if (data_dir / "ali.txt").is_file():
        return _read_ali_txt(data_dir / "ali.txt")
    if (data_dir / "phones.ctm").is_file():
        return _read_ctm(data_dir / "phones.ctm", _frame_counts(data_dir))
    raise DataError("neither ali.txt nor phones.ctm found", file=str(data_dir))
