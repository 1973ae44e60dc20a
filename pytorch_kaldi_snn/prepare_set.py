"""Turn any Kaldi data dir into a train, dev or test set of an existing built-in recipe folder::

    python -m pytorch_kaldi_snn.prepare_set /path/to/mydata --dir recipes/synth --name mydata

The source dir needs ``wav.scp``, ``utt2spk``, ``spk2utt`` and one phone
reference, read in this order: a frame-level ``ali.txt``, a ``phones.ctm`` (both in the 39-class
phones, see docs/corpus.md), or a ``text`` whose tokens are the recipe's phones. With a
``segments`` file (``utt recording start end``, seconds) ``wav.scp`` is keyed by recording and the
features are those of each segment, as Kaldi's ``extract-segments`` cuts it. An ``ali.txt`` must
have its audio's frame count, give or take ``FRAME_SLACK`` frames. Nothing is retrained;
everything reuses what the recipe made for its ``train`` set:

* ``<dir>/data/<name>/``: the phone transcript ``text``, fbank features with the training set's
  ``conf/fbank.conf``, per-speaker CMVN (``cmvn.scp``, ``cmvn_speaker.ark``);
* ``<dir>/data/mfcc/<name>/``: the GMM's MFCCs with the training set's ``conf/mfcc.conf``;
* ``<dir>/exp/mono_ali_<name>/``: alignments with the recipe's trained ``exp/mono`` GMM.

These are the paths a cfg dataset names (``fea_lst``, ``lab_folder``, ``lab_data_folder``), as for
the recipe's own sets. Bad input (an unknown phone, a word transcript, another sample rate, an
utterance without speaker, an empty utterance) stops before anything is written, with one line
naming the file and the utterance.

``--name`` is one folder name (letters, digits, ``_``, ``-``, ``.``; not a path). Each of the three
folders gets the project's ``.pytorch_kaldi_snn`` marker (io/ownership.py) when it is made; a folder without it (the recipe's own
``train``, ``dev``, ``test``, ``lang``, ``mfcc``...) is never replaced, and ``--overwrite``
removes only folders that carry it.
"""
from __future__ import annotations

import logging
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import soundfile

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.corpus.alignment import num_frames, read_phone_alignment
from pytorch_kaldi_snn.corpus.phones import PHONES
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.features.audio import check_wav_table, kaldi_special
from pytorch_kaldi_snn.features.extract import FeatureConf, make_pytorch_kaldi_feats
from pytorch_kaldi_snn.gmm.align import align_set
from pytorch_kaldi_snn.io.ownership import MARKER, is_ours, mark
from pytorch_kaldi_snn.graph.lang import read_inventory
from pytorch_kaldi_snn.io.data_dir import DataDir
from pytorch_kaldi_snn.io.tables import read_kaldi_map, write_kaldi_map

log = logging.getLogger("prepare_set")
TRAIN_SET = "train"  # the recipe set whose feature confs and GMM a new set reuses
COPIED = ("wav.scp", "segments", "utt2spk", "spk2utt", "spk2gender")
FRAME_SLACK = 2  # frames an ali.txt may differ from its audio (framing conventions of other tools)
_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class RecipeDir:
    """The folders of a built-in recipe run (``--dir`` of ``recipes/synth/run.sh``)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def fbank_conf(self) -> Path:
        return self.data / TRAIN_SET / "conf" / "fbank.conf"

    def mfcc_conf(self) -> Path:
        return self.data / "mfcc" / TRAIN_SET / "conf" / "mfcc.conf"

    def outputs(self, name: str) -> List[Path]:
        return [self.data / name, self.data / "mfcc" / name, self.root / "exp" / f"mono_ali_{name}"]

    def made_outputs(self, name: str) -> List[Path]:
        """The outputs of ``name`` that exist; any not made by prepare_set is refused by name."""
        existing = [p for p in self.outputs(name) if p.exists() or p.is_symlink()]
        for path in existing:
            if not _made_here(path):
                raise DataError(f"exists and was not made by prepare_set (no {MARKER} in it); "
                                "choose another --name", file=str(path))
        return existing

    def check(self) -> None:
        needed = [self.fbank_conf(), self.mfcc_conf(), self.data / "lang" / "topo",
                  self.root / "exp" / "mono" / "final.mdl"]
        for path in needed:
            if not path.is_file():
                raise DataError("missing: run the recipe first (its train set, lang and GMM)",
                                file=str(path))


def check_set_name(name: str) -> None:
    """A set name is one folder name: it becomes ``data/<name>`` and ``exp/mono_ali_<name>``."""
    if not _SET_NAME.fullmatch(name):
        raise DataError(f"{name!r} is not a set name: use one folder name of letters, digits, "
                        "'_', '-' and '.' that starts with a letter or digit", key="--name")


def _made_here(path: Path) -> bool:
    """Whether prepare_set made ``path`` (it never makes links, and marks every folder it makes)."""
    return not path.is_symlink() and path.is_dir() and is_ours(path)


def _make_folder(path: Path, src: Path) -> None:
    path.mkdir(parents=True)
    mark(path, f"prepare_set, from {src}")


def _source_dir(src: Path) -> DataDir:
    """Load and validate the source dir (an utterance without speaker is an error there)."""
    if not (src / "wav.scp").is_file():
        raise DataError("missing (needed to compute features)", file=str(src / "wav.scp"))
    return DataDir.load(src)


def _audio_frames(data: DataDir, rate: int) -> Dict[str, int]:
    """The frame count of every utterance in a plain-file wav (checked by check_wav_table);
    commands are measured once their features exist."""
    wav_scp, frames = str(data.root / "wav.scp"), {}
    for key, wav in (data.wav or {}).items():
        if kaldi_special(wav):
            continue
        info = soundfile.info(wav)
        for utt, (first, end) in _utterances(data, key, info.frames, rate):
            frames[utt] = num_frames(end - first, rate)
            if frames[utt] == 0:
                where = wav_scp if data.segments is None else str(data.root / "segments")
                raise DataError(f"empty utterance: {end - first} samples, shorter than one frame",
                                file=where, utt=utt)
    return frames


def _utterances(data: DataDir, key: str, n_samples: int, rate: int) -> List[Tuple[str, Tuple[int, int]]]:
    """The utterances in wav.scp entry ``key`` with their sample ranges (segments of a recording)."""
    if data.segments is None:
        return [(key, (0, n_samples))]
    where = str(data.root / "segments")
    return [(utt, seg.samples(rate, n_samples, where, utt))
            for utt, seg in data.segments.items() if seg.recording == key]


def check_alignment_frames(data: DataDir, frames: Mapping[str, int]) -> None:
    """An ``ali.txt`` labels its audio's frames: further off than FRAME_SLACK it belongs to other
    audio (or framing), and its phone runs would be cut or invented. Utterances absent from
    ``frames`` are not checked."""
    ali = data.root / "ali.txt"
    if not ali.is_file():
        return
    for utt, ids in read_phone_alignment(data.root).items():
        if utt in frames and abs(len(ids) - frames[utt]) > FRAME_SLACK:
            raise DataError(f"{len(ids)} frames, but its audio has {frames[utt]} (25 ms frames every "
                            f"10 ms; up to {FRAME_SLACK} apart is accepted)", file=str(ali), utt=utt)


def _runs(ids: np.ndarray) -> List[str]:
    """A frame labelling as its phone sequence (runs collapsed, ``sil`` kept, as text.phn)."""
    keep = np.concatenate([[True], ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, bool)
    return [PHONES[i] for i in ids[keep]]


def phone_reference(data: DataDir, phones: Sequence[str]) -> Dict[str, str]:
    """The phone transcript of every utterance, from ali.txt, phones.ctm or text (in that order)."""
    src = data.root
    if (src / "ali.txt").is_file() or (src / "phones.ctm").is_file():
        where = src / ("ali.txt" if (src / "ali.txt").is_file() else "phones.ctm")
        reference = {utt: " ".join(_runs(ids)) for utt, ids in read_phone_alignment(src).items()}
    elif data.text is not None:
        where, reference = src / "text", dict(data.text)
        allowed = set(phones)
        for utt, line in reference.items():
            unknown = [p for p in line.split() if p not in allowed]
            if unknown:
                raise DataError(f"{unknown[0]!r} is not a phone of the recipe (a word transcript? "
                                "give phones, a phones.ctm or an ali.txt)", file=str(where), utt=utt)
    else:
        raise DataError("no phone reference: needs ali.txt, phones.ctm or a phone text", file=str(src))
    for utt in data.utts:
        if not reference.get(utt, "").split():
            raise DataError("empty utterance: no phones in the reference", file=str(where), utt=utt)
    return {utt: reference[utt] for utt in data.utts}


def _write_set(data: DataDir, text: Dict[str, str], dest: Path) -> None:
    _make_folder(dest, data.root)
    for name in COPIED:
        if (data.root / name).is_file():
            shutil.copyfile(data.root / name, dest / name)
    write_kaldi_map(dest / "text", text)


def prepare_set(src: Path, recipe_dir: Path, name: str, overwrite: bool = False) -> int:
    """Import ``src`` as set ``name`` of the recipe run in ``recipe_dir``; returns utterances aligned."""
    check_set_name(name)
    recipe = RecipeDir(Path(recipe_dir))
    recipe.check()
    existing = recipe.made_outputs(name)
    if existing and not overwrite:
        raise DataError("exists; choose another --name or pass --overwrite", file=str(existing[0]))
    data = _source_dir(Path(src))
    rate = FeatureConf.from_file("fbank", recipe.fbank_conf()).sample_rate
    check_wav_table(data.wav or {}, str(data.root / "wav.scp"), rate)  # pipes: while extracting
    frames = _audio_frames(data, rate)
    text = phone_reference(data, read_inventory(recipe.data / "lang" / "phones.txt"))
    check_alignment_frames(data, frames)
    for path in existing:
        shutil.rmtree(path)
    try:
        return _build(recipe, data, text, name)
    except BaseException:
        for path in recipe.outputs(name):  # no half-made set that a cfg could name
            if _made_here(path):
                shutil.rmtree(path, ignore_errors=True)
        raise


def _build(recipe: RecipeDir, data: DataDir, text: Dict[str, str], name: str) -> int:
    fbank_dir, mfcc_dir, ali_dir = recipe.outputs(name)
    _write_set(data, text, fbank_dir)
    _write_set(data, text, mfcc_dir)
    log.info("%s: %d utterances, %d speakers; fbank and MFCC features", name, len(data.utts),
             len(data.spk2utt))
    make_pytorch_kaldi_feats(fbank_dir, "fbank", recipe.fbank_conf(), recipe.data / "ark" / "fbank")
    # Audio from pipes is measured only now, by its features.
    check_alignment_frames(data, {utt: int(n) for utt, n in read_kaldi_map(fbank_dir / "utt2num_frames").items()})
    make_pytorch_kaldi_feats(mfcc_dir, "mfcc", recipe.mfcc_conf(), recipe.data / "ark" / "mfcc")
    _make_folder(ali_dir, data.root)
    aligned = align_set(recipe.data / "lang", recipe.root / "exp" / "mono", mfcc_dir,
                        fbank_dir / "text", ali_dir)
    if aligned < len(data.utts):
        log.warning("%d of %d utterances could not be aligned and are left out",
                    len(data.utts) - aligned, len(data.utts))
    print(f"{name}: {aligned} of {len(data.utts)} utterances -> {fbank_dir} (features), {ali_dir} (alignments)")
    return aligned


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.prepare_set", __doc__)
    parser.add_argument("src", type=Path, help="Kaldi data dir: wav.scp, utt2spk, a phone reference")
    parser.add_argument("--dir", type=Path, required=True, help="the recipe run (holds data/ and exp/)")
    parser.add_argument("--name", required=True, help="name of the new set (data/<name>): one folder name")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a set of that name that prepare_set made before")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_reporting_errors("prepare_set", lambda: prepare_set(
        args.src, args.dir, args.name, args.overwrite))


if __name__ == "__main__":
    sys.exit(main())
