"""TIMIT as LDC ships it -> Kaldi data dirs with 48-phone transcripts and frame labels, no Kaldi.

The tree holds ``TRAIN/`` and ``TEST/`` with ``DR1..DR8/<speaker>/`` folders of NIST SPHERE
``.WAV`` files and their ``.PHN`` (``start end phone``, samples, TIMIT's 61 phones), ``.WRD``
and ``.TXT``, in upper or lower case. As Kaldi's ``egs/timit/s5/local/timit_data_prep.sh``:

* the SA sentences (the same two for every speaker) are dropped;
* ``train`` is every ``TRAIN/`` speaker (462 in TIMIT), ``dev`` and ``test`` the ``TEST/``
  speakers named in the recipe's ``conf/dev_spk.list`` (50) and ``conf/test_spk.list`` (the 24
  speakers of the core test set);
* utterance ids are ``<speaker>_<sentence>`` in lower case; ``text`` is the ``.PHN`` phone
  sequence folded 61 -> 48 with ``q`` deleted (Kaldi's ``phones.60-48-39.map``, the one table in
  :func:`pytorch_kaldi_snn.scoring.timit_fold_map`); scoring folds 48 -> 39.

Beyond Kaldi's data prep, ``text.words`` holds each utterance's ``.WRD`` words (lower case), when
every utterance of the set has a ``.WRD``: with the phone ``text`` it is what prepare_set counts
pronunciation probabilities in when a set of recordings is aligned from its words.

SPHERE is read with libsndfile (``soundfile``, its NIST reader) and written as RIFF wavs under
``<out>/<set>/wav/`` so that every Kaldi wave reader takes ``wav.scp``. ``ali.txt`` labels each
frame (Kaldi's framing, docs/corpus.md) with the 48-class phone of the ``.PHN`` segment under its
centre sample; a ``q`` segment (a glottal stop, deleted by the map) lends its samples to the
phone before it (the one after it at the start). It starts the monophone GMM, as the
synthesizer's alignment does in the synthetic recipe.

Command line (the built-in TIMIT recipe's stage 0)::

    python -m pytorch_kaldi_snn.corpus.timit --corpus-dir /data/TIMIT --out data \\
        --dev-spk conf/dev_spk.list --test-spk conf/test_spk.list
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import soundfile

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.corpus.alignment import frame_labels
from pytorch_kaldi_snn.corpus.segments import Segment
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.atomic import atomic_outputs
from pytorch_kaldi_snn.scoring import timit_fold_map

RATE = 16000
SETS = ("train", "dev", "test")
FOLD_48 = timit_fold_map(61, 48)
PHONES_48 = tuple(["sil"] + sorted({p for p in FOLD_48.values() if p and p != "sil"}))


@dataclass(frozen=True)
class TimitUtt:
    utt: str  # <speaker>_<sentence>, lower case
    spk: str
    wav: Path  # the SPHERE file
    phn: Path


def child(parent: Path, name: str) -> Path:
    """``parent/name`` in whichever letter case the tree uses."""
    for candidate in (name.upper(), name.lower()):
        if (parent / candidate).exists():
            return parent / candidate
    raise DataError(f"no {name.upper()} or {name.lower()} here (not a TIMIT tree?)", file=str(parent))


def read_speaker_list(path: Path) -> List[str]:
    """One speaker id per line (Kaldi's conf/*_spk.list), lower-cased."""
    return [line.strip().lower() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def speaker_dirs(part: Path) -> Dict[str, Path]:
    """``speaker id -> DRn/<speaker>`` folder of ``TRAIN/`` or ``TEST/``."""
    return {spk.name.lower(): spk for region in sorted(part.iterdir()) if region.is_dir()
            for spk in sorted(region.iterdir()) if spk.is_dir()}


def speaker_utts(spk: str, folder: Path) -> List[TimitUtt]:
    """The SI/SX sentences of one speaker (SA dropped), each with its ``.PHN``."""
    utts = []
    for wav in sorted(folder.iterdir()):
        stem = wav.stem.lower()
        if wav.suffix.lower() != ".wav" or stem.startswith("sa"):
            continue
        phn = wav.with_suffix(".PHN" if wav.suffix == ".WAV" else ".phn")
        if not phn.is_file():
            raise DataError("no .PHN next to this .WAV", file=str(wav))
        utts.append(TimitUtt(f"{spk}_{stem}", spk, wav, phn))
    return utts


def list_sets(root: Path, dev_list: Sequence[str], test_list: Sequence[str]) -> Dict[str, List[TimitUtt]]:
    """Kaldi's TIMIT splits; a listed dev/test speaker missing from ``TEST/`` is an error."""
    train_dirs = speaker_dirs(child(Path(root), "train"))
    test_dirs = speaker_dirs(child(Path(root), "test"))
    chosen = {"train": sorted(train_dirs)}
    for name, listed in (("dev", dev_list), ("test", test_list)):
        missing = [spk for spk in listed if spk not in test_dirs]
        if missing:
            raise DataError(f"speaker {missing[0]} of the {name} list is not in TEST/", file=str(root))
        chosen[name] = sorted(listed)
    dirs = {"train": train_dirs, "dev": test_dirs, "test": test_dirs}
    return {name: [u for spk in chosen[name] for u in speaker_utts(spk, dirs[name][spk])] for name in SETS}


def read_wrd(path: Path) -> List[str]:
    """The words of a ``.WRD`` (``start end word`` per line), lower-cased."""
    words = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DataError(f"line {number}: expected 'start end word'", file=str(path))
        words.append(fields[2].lower())
    return words


def _wrd_path(utt: TimitUtt) -> Path:
    return utt.phn.with_suffix(".WRD" if utt.phn.suffix == ".PHN" else ".wrd")


def read_phn(path: Path) -> List[Segment]:
    """``.PHN`` lines ``start end phone`` (samples, 61-phone set)."""
    segments = []
    for number, line in enumerate(Path(path).read_text(encoding="latin-1").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise DataError(f"line {number}: expected 'start end phone'", file=str(path))
        if fields[2] not in FOLD_48:
            raise DataError(f"line {number}: {fields[2]!r} is not a TIMIT phone", file=str(path))
        segments.append(Segment(int(fields[0]), int(fields[1]), fields[2]))
    if not segments:
        raise DataError("empty utterance: no phones", file=str(path))
    return segments


def folded_transcript(segments: Sequence[Segment], fold: Mapping[str, Optional[str]] = FOLD_48) -> List[str]:
    """The phone sequence folded with ``fold`` (``q`` deleted), as Kaldi's timit_norm_trans.pl."""
    return [mapped for s in segments if (mapped := fold[s.label]) is not None]


def folded_segments(segments: Sequence[Segment], fold: Mapping[str, Optional[str]] = FOLD_48) -> List[Segment]:
    """Segments relabelled with ``fold``; a deleted phone's samples go to its left neighbour
    (to the right one at the start), so the segments stay contiguous for frame labelling."""
    out: List[Segment] = []
    pending_start: Optional[int] = None
    for seg in segments:
        label = fold[seg.label]
        if label is None:
            if out:
                out[-1] = out[-1]._replace(end=seg.end)
            elif pending_start is None:
                pending_start = seg.start
            continue
        start = seg.start if pending_start is None else pending_start
        out.append(Segment(start, seg.end, label))
        pending_start = None
    if not out:
        raise DataError("only deleted phones")
    return out


def _write(path: Path, lines: Sequence[str]) -> None:
    with atomic_outputs(path) as (temp,):
        Path(temp).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _convert(utt: TimitUtt, wav_dir: Path) -> tuple[Path, List[str], List[str]]:
    """Write the RIFF wav; return it, the 48-phone transcript and the frame labels."""
    samples, rate = soundfile.read(str(utt.wav), dtype="int16")
    if rate != RATE or samples.ndim != 1:
        raise DataError(f"expected 16 kHz mono, got {rate} Hz, shape {samples.shape}", file=str(utt.wav))
    out = wav_dir / f"{utt.utt}.wav"
    with atomic_outputs(out) as (temp,):
        soundfile.write(temp, samples, RATE, format="WAV", subtype="PCM_16")
    try:
        segments = read_phn(utt.phn)
        labels = frame_labels(folded_segments(segments), len(samples), RATE)
    except DataError as err:
        raise DataError(err.message, file=str(utt.phn), utt=utt.utt) from None
    if not labels:
        raise DataError("empty utterance: shorter than one frame", file=str(utt.wav), utt=utt.utt)
    return out, folded_transcript(segments), labels


def write_set(utts: Sequence[TimitUtt], out: Path) -> None:
    """One Kaldi data dir: wav/, wav.scp, utt2spk, spk2utt, spk2gender, text, ali.txt, utt2num_frames
    and, where every utterance has its ``.WRD``, text.words."""
    (out / "wav").mkdir(parents=True, exist_ok=True)
    tables: Dict[str, List[str]] = {n: [] for n in ("wav.scp", "utt2spk", "text", "ali.txt", "utt2num_frames")}
    for utt in sorted(utts, key=lambda u: u.utt.encode()):
        wav, text, labels = _convert(utt, out / "wav")
        tables["wav.scp"].append(f"{utt.utt} {wav.resolve()}")
        tables["utt2spk"].append(f"{utt.utt} {utt.spk}")
        tables["text"].append(f"{utt.utt} {' '.join(text)}")
        tables["ali.txt"].append(f"{utt.utt} {' '.join(labels)}")
        tables["utt2num_frames"].append(f"{utt.utt} {len(labels)}")
    if all(_wrd_path(u).is_file() for u in utts):
        tables["text.words"] = [f"{u.utt} {' '.join(read_wrd(_wrd_path(u)))}"
                                for u in sorted(utts, key=lambda u: u.utt.encode())]
    speakers = sorted({u.spk for u in utts}, key=str.encode)
    tables["spk2utt"] = [f"{s} {' '.join(sorted((u.utt for u in utts if u.spk == s), key=str.encode))}" for s in speakers]
    tables["spk2gender"] = [f"{s} {s[0]}" for s in speakers]  # TIMIT speaker ids start with f or m
    for name, lines in tables.items():
        _write(out / name, lines)


def prepare_timit(corpus: Path, out: Path, dev_spk: Path, test_spk: Path) -> Dict[str, int]:
    """Write ``out/phones.txt`` (48 phones) and ``out/{train,dev,test}/``; utterances per set."""
    sets = list_sets(corpus, read_speaker_list(dev_spk), read_speaker_list(test_spk))
    for name, utts in sets.items():
        if not utts:
            raise DataError(f"no {name} utterances", file=str(corpus))
        write_set(utts, Path(out) / name)
    _write(Path(out) / "phones.txt", [f"{p} {i}" for i, p in enumerate(PHONES_48)])
    counts = {name: len(utts) for name, utts in sets.items()}
    print(" ".join(f"{name}: {n} utterances, {len({u.spk for u in sets[name]})} speakers;"
                   for name, n in counts.items()))
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.corpus.timit", __doc__)
    parser.add_argument("--corpus-dir", type=Path, required=True, help="holds TRAIN/ and TEST/")
    parser.add_argument("--out", type=Path, required=True, help="output folder (gets train/ dev/ test/)")
    parser.add_argument("--dev-spk", type=Path, required=True, help="file listing the dev speakers")
    parser.add_argument("--test-spk", type=Path, required=True, help="file listing the test speakers")
    args = parser.parse_args(argv)
    return run_reporting_errors("timit", lambda: prepare_timit(args.corpus_dir, args.out, args.dev_spk, args.test_spk))


if __name__ == "__main__":
    sys.exit(main())
