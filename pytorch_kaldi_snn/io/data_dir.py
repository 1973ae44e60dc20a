"""Kaldi data directories (``data/<set>/``), loaded and checked like ``utils/validate_data_dir.sh``.

Checks: every file's keys are sorted in C-locale (byte) order and unique, ``utt2spk`` and
``spk2utt`` describe the same mapping, and ``wav.scp`` / ``text`` / ``feats.scp`` cover
exactly the utterances of ``utt2spk`` (``cmvn.scp`` exactly its speakers). ``wav.scp`` is
keyed by recording when a ``segments`` file exists, as in Kaldi: ``segments`` then covers the
utterances and names only recordings of ``wav.scp``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.segments import UttSegment, read_segments
from pytorch_kaldi_snn.io.tables import read_kaldi_map


@dataclass(frozen=True)
class DataDir:
    """A loaded, validated data directory. Optional files are ``None`` when absent."""

    root: Path
    utt2spk: dict[str, str]
    spk2utt: dict[str, list[str]]
    wav: Optional[dict[str, str]] = None
    text: Optional[dict[str, str]] = None
    feats: Optional[dict[str, str]] = None
    cmvn: Optional[dict[str, str]] = None
    segments: Optional[dict[str, UttSegment]] = None

    @property
    def utts(self) -> list[str]:
        """Utterance ids in Kaldi's sorted order."""
        return list(self.utt2spk)

    @classmethod
    def load(cls, root: Path) -> "DataDir":
        """Read ``root``'s files and validate them; problems raise :class:`DataError`."""
        root = Path(root)
        utt2spk = _sorted_map(root / "utt2spk")
        spk2utt = {spk: utts.split() for spk, utts in _sorted_map(root / "spk2utt").items()}
        _check_spk2utt(root / "spk2utt", utt2spk, spk2utt)
        loaded = cls(
            root=root,
            utt2spk=utt2spk,
            spk2utt=spk2utt,
            wav=_optional_map(root / "wav.scp"),
            text=_optional_map(root / "text", allow_empty=True),
            feats=_optional_map(root / "feats.scp"),
            cmvn=_optional_map(root / "cmvn.scp"),
            segments=_optional_segments(root / "segments"),
        )
        loaded._check_coverage()
        return loaded

    def _check_coverage(self) -> None:
        utts = list(self.utt2spk)
        if self.segments is not None:
            _same_keys(self.root / "segments", self.segments, utts, self.root / "utt2spk")
            _check_recordings(self.root / "segments", self.segments, self.wav)
        elif self.wav is not None:
            _same_keys(self.root / "wav.scp", self.wav, utts, self.root / "utt2spk")
        if self.text is not None:
            _same_keys(self.root / "text", self.text, utts, self.root / "utt2spk")
        if self.feats is not None:
            _same_keys(self.root / "feats.scp", self.feats, utts, self.root / "utt2spk")
        if self.cmvn is not None:
            _same_keys(self.root / "cmvn.scp", self.cmvn, list(self.spk2utt), self.root / "spk2utt")


def _c_order(key: str) -> bytes:
    """Kaldi data dirs are sorted with LC_ALL=C, i.e. by UTF-8 bytes."""
    return key.encode("utf-8")


def _sorted_map(path: Path, allow_empty: bool = False) -> dict[str, str]:
    if not path.is_file():
        raise DataError("missing (required in a Kaldi data directory)", file=str(path))
    table = read_kaldi_map(path, allow_empty=allow_empty)
    _check_sorted(path, list(table))
    return table


def _check_sorted(path: Path, keys: list[str]) -> None:
    for before, after in zip(keys, keys[1:]):
        if _c_order(before) > _c_order(after):
            message = f"not sorted (LC_ALL=C sort): {after} comes after {before}"
            raise DataError(message, file=str(path), utt=after)


def _optional_map(path: Path, allow_empty: bool = False) -> Optional[dict[str, str]]:
    return _sorted_map(path, allow_empty) if path.is_file() else None


def _optional_segments(path: Path) -> Optional[dict[str, UttSegment]]:
    if not path.is_file():
        return None
    segments = read_segments(path)
    _check_sorted(path, list(segments))
    return segments


def _check_recordings(path: Path, segments: dict[str, UttSegment], wav: Optional[dict[str, str]]) -> None:
    for utt, segment in segments.items():
        if wav is None or segment.recording not in wav:
            raise DataError(f"recording {segment.recording} is not in wav.scp", file=str(path), utt=utt)


def _check_spk2utt(path: Path, utt2spk: dict[str, str], spk2utt: dict[str, list[str]]) -> None:
    seen: set[str] = set()
    for spk, utts in spk2utt.items():
        for utt in utts:
            if utt2spk.get(utt) != spk:
                message = f"lists {utt} under speaker {spk}, utt2spk says {utt2spk.get(utt)}"
                raise DataError(message, file=str(path), utt=utt)
            seen.add(utt)
    missing = [utt for utt in utt2spk if utt not in seen]
    if missing:
        raise DataError("in utt2spk but not in spk2utt", file=str(path), utt=missing[0])


def _same_keys(path: Path, table: dict[str, str], expected: Iterable[str], reference: Path) -> None:
    expected_set = set(expected)
    extra = [key for key in table if key not in expected_set]
    if extra:
        raise DataError(f"not in {reference.name}", file=str(path), utt=extra[0])
    missing = [key for key in expected if key not in table]
    if missing:
        raise DataError(f"missing (listed in {reference.name})", file=str(path), utt=missing[0])
