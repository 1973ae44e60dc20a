"""Turn any Kaldi data dir into a train, dev or test set of an existing built-in recipe folder::

    python -m pytorch_kaldi_snn.prepare_set /path/to/mydata --dir recipes/synth --name mydata

The source dir needs ``wav.scp``, ``utt2spk``, ``spk2utt`` and one phone
reference, read in this order: a frame-level ``ali.txt``, a ``phones.ctm`` (both in the 39-class
phones, see docs/corpus.md), or a ``text`` whose tokens are the recipe's phones. Nothing is
retrained; everything reuses what the recipe made for its ``train`` set:

* ``<dir>/data/<name>/``: the phone transcript ``text``, fbank features with the training set's
  ``conf/fbank.conf``, per-speaker CMVN (``cmvn.scp``, ``cmvn_speaker.ark``);
* ``<dir>/data/mfcc/<name>/``: the GMM's MFCCs with the training set's ``conf/mfcc.conf``;
* ``<dir>/exp/mono_ali_<name>/``: alignments with the recipe's trained ``exp/mono`` GMM.

These are the paths a cfg dataset names (``fea_lst``, ``lab_folder``, ``lab_data_folder``), as for
the recipe's own sets. Bad input (an unknown phone, a word transcript, another sample rate, an
utterance without speaker, an empty utterance) stops before anything is written, with one line
naming the file and the utterance.
"""
from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import soundfile

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.corpus.alignment import num_frames, read_phone_alignment
from pytorch_kaldi_snn.corpus.phones import PHONES
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.features.extract import FeatureConf, make_pytorch_kaldi_feats
from pytorch_kaldi_snn.gmm.align import align_set
from pytorch_kaldi_snn.graph.lang import read_inventory
from pytorch_kaldi_snn.io.data_dir import DataDir
from pytorch_kaldi_snn.io.tables import write_kaldi_map

log = logging.getLogger("prepare_set")
TRAIN_SET = "train"  # the recipe set whose feature confs and GMM a new set reuses
COPIED = ("wav.scp", "utt2spk", "spk2utt", "spk2gender")


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

    def check(self) -> None:
        needed = [self.fbank_conf(), self.mfcc_conf(), self.data / "lang" / "topo",
                  self.root / "exp" / "mono" / "final.mdl"]
        for path in needed:
            if not path.is_file():
                raise DataError("missing: run the recipe first (its train set, lang and GMM)",
                                file=str(path))


def _source_dir(src: Path) -> DataDir:
    """Load and validate the source dir (an utterance without speaker is an error there)."""
    if not (src / "wav.scp").is_file():
        raise DataError("missing (needed to compute features)", file=str(src / "wav.scp"))
    return DataDir.load(src)


def _check_audio(data: DataDir, rate: int) -> None:
    """Sample rate and length of every plain-file wav (pipes are checked while extracting)."""
    for utt, wav in (data.wav or {}).items():
        if wav.endswith("|"):
            continue
        info = soundfile.info(wav)
        if info.samplerate != rate:
            raise DataError(f"sample rate {info.samplerate} Hz, the recipe's features need {rate} Hz",
                            file=str(data.root / "wav.scp"), utt=utt)
        if num_frames(info.frames, rate) == 0:
            raise DataError(f"empty utterance: {info.frames} samples, shorter than one frame",
                            file=str(data.root / "wav.scp"), utt=utt)


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
    dest.mkdir(parents=True)
    for name in COPIED:
        if (data.root / name).is_file():
            shutil.copyfile(data.root / name, dest / name)
    write_kaldi_map(dest / "text", text)


def prepare_set(src: Path, recipe_dir: Path, name: str, overwrite: bool = False) -> int:
    """Import ``src`` as set ``name`` of the recipe run in ``recipe_dir``; returns utterances aligned."""
    recipe = RecipeDir(Path(recipe_dir))
    recipe.check()
    data = _source_dir(Path(src))
    rate = int(float(FeatureConf.from_file("fbank", recipe.fbank_conf()).options.get("sample-frequency", 16000)))
    _check_audio(data, rate)
    text = phone_reference(data, read_inventory(recipe.data / "lang" / "phones.txt"))
    existing = [p for p in recipe.outputs(name) if p.exists()]
    if existing and not overwrite:
        raise DataError("exists; choose another --name or pass --overwrite", file=str(existing[0]))
    for path in existing:
        shutil.rmtree(path)
    try:
        return _build(recipe, data, text, name)
    except BaseException:
        for path in recipe.outputs(name):  # no half-made set that a cfg could name
            shutil.rmtree(path, ignore_errors=True)
        raise


def _build(recipe: RecipeDir, data: DataDir, text: Dict[str, str], name: str) -> int:
    fbank_dir, mfcc_dir, ali_dir = recipe.outputs(name)
    _write_set(data, text, fbank_dir)
    _write_set(data, text, mfcc_dir)
    log.info("%s: %d utterances, %d speakers; fbank and MFCC features", name, len(data.utts),
             len(data.spk2utt))
    make_pytorch_kaldi_feats(fbank_dir, "fbank", recipe.fbank_conf(), recipe.data / "ark" / "fbank")
    make_pytorch_kaldi_feats(mfcc_dir, "mfcc", recipe.mfcc_conf(), recipe.data / "ark" / "mfcc")
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
    parser.add_argument("--name", required=True, help="name of the new set (data/<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing set of that name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_reporting_errors("prepare_set", lambda: prepare_set(
        args.src, args.dir, args.name, args.overwrite))


if __name__ == "__main__":
    sys.exit(main())
