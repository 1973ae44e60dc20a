"""Turn any Kaldi data dir into a train, dev or test set of an existing built-in recipe folder::

    python -m pytorch_kaldi_snn.prepare_set /path/to/mydata --dir recipes/synth --name mydata

The source dir needs ``wav.scp``, ``utt2spk``, ``spk2utt`` and a reference: a word ``text``
(the usual case), or phones, read in this order: a frame-level ``ali.txt``, a ``phones.ctm``
(both in the 39-class phones, see docs/corpus.md), or a ``text`` whose tokens are all the
recipe's phones. With a ``segments`` file (``utt recording start end``, seconds) ``wav.scp`` is
keyed by recording and the features are those of each segment, as Kaldi's ``extract-segments``
cuts it. An ``ali.txt`` must have its audio's frame count, give or take ``FRAME_SLACK`` frames.

A word ``text`` is normalised as Kaldi's LibriSpeech/TIMIT data preparation does (words/normalise.py;
the dropped punctuation is counted in one log line) and pronounced with ``--lexicon``: ``cmudict``
(the CMU Pronouncing Dictionary in the recipe's phones, with eSpeak NG's pronunciation as one
more alternative of each word) or a Kaldi ``lexicon.txt``. Words the lexicon lacks get eSpeak
NG's pronunciation, listed in ``data/<name>/oov_lexicon.txt`` and in one log line, or with
``--oov error`` are refused by name. Each utterance is aligned with the recipe's GMM through an
L.fst of its words' pronunciations, with optional silence between words, closure silence before
stops, ``dx`` for intervocalic t/d and glides that link vowels, silences and glides as often as
the recipe's training ``text`` has them and each pronunciation as often as the training set said
it (gmm/lexicon_fst.py, gmm/pron_probs.py; ``--sil-prob`` for the leading and trailing silence
and for phone pairs the training text lacks); the set's phone
``text`` (the scoring reference) is what the alignment chose. Utterances that cannot be aligned
are listed in one log line and in ``data/<name>/unaligned.txt``: from words they are left out of
the set (they have no reference), from phones they stay for scoring, without frame labels.
Nothing is retrained; everything reuses what the recipe made for its ``train`` set:

* ``<dir>/data/<name>/``: the phone transcript ``text``, fbank features with the training set's
  ``conf/fbank.conf``, per-speaker CMVN (``cmvn.scp``, ``cmvn_speaker.ark``);
* ``<dir>/data/mfcc/<name>/``: the GMM's MFCCs with the training set's ``conf/mfcc.conf``;
* ``<dir>/exp/mono_ali_<name>/``: alignments with the recipe's trained ``exp/mono`` GMM.

These are the paths a cfg dataset names (``fea_lst``, ``lab_folder``, ``lab_data_folder``), as for
the recipe's own sets. Bad input (an unknown phone, a character without a
pronunciation rule, an empty transcript, another sample rate, an utterance without speaker, an
empty utterance) stops before anything is written, with one line naming the file and the
utterance.

``--name`` is one folder name (letters, digits, ``_``, ``-``, ``.``; not a path). Each of the three
folders gets the project's ``.pytorch_kaldi_snn`` marker (io/ownership.py) when it is made; a folder without it (the recipe's own
``train``, ``dev``, ``test``, ``lang``, ``mfcc``...) is never replaced, and ``--overwrite``
removes only folders whose marker names prepare_set (the corpus generator marks its sets as its own).
"""
from __future__ import annotations

import functools
import logging
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Dict, List, Mapping, Sequence, Union

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.corpus.alignment import FRAME_SLACK, num_frames, read_phone_alignment, run_labels
from pytorch_kaldi_snn.corpus.phones import PHONES
from pytorch_kaldi_snn.errors import DataError, UserInputError
from pytorch_kaldi_snn.features.audio import check_wav_table
from pytorch_kaldi_snn.features.extract import FeatureConf, make_pytorch_kaldi_feats
from pytorch_kaldi_snn.gmm.align import align_set, align_words
from pytorch_kaldi_snn.gmm.lexicon_fst import SIL_PROB, ConnectedSpeech
from pytorch_kaldi_snn.gmm.pron_probs import PronProbs, count_pronunciations
from pytorch_kaldi_snn.io.ownership import mark, removal_refused
from pytorch_kaldi_snn.graph.lang import read_inventory
from pytorch_kaldi_snn.io.data_dir import DataDir
from pytorch_kaldi_snn.io.segments import recording_utterances
from pytorch_kaldi_snn.io.tables import read_kaldi_map, read_symbol_table, read_table_lines, write_kaldi_map
from pytorch_kaldi_snn.words.lexicon import CMUDICT, load_lexicon
from pytorch_kaldi_snn.words.transcripts import OOV_CHOICES, WordTranscripts, word_transcripts

log = logging.getLogger("prepare_set")
TRAIN_SET = "train"  # the recipe set whose feature confs and GMM a new set reuses
COPIED = ("wav.scp", "segments", "utt2spk", "spk2utt", "spk2gender")
_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAKER = "prepare_set"  # in the marker of the folders it makes: the only ones it removes
UNALIGNED = "unaligned.txt"  # in data/<name>: the utterances the GMM could not align
OOV_LEXICON = "oov_lexicon.txt"  # in data/<name>: eSpeak NG's pronunciations, lexicon.txt format
Reference = Union[Dict[str, str], WordTranscripts]  # phones per utterance, or words to align


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

    @functools.cached_property
    def training_phones(self) -> Dict[str, List[str]]:
        """The training set's phone ``text``, per utterance: what the GMM was trained on (read
        once: the lexicon, the connected speech and the pronunciation counts all use it)."""
        text = self.data / TRAIN_SET / "text"
        if not text.is_file():
            raise DataError("missing: run the recipe first (its train set's phone text)", file=str(text))
        return {utt: line.split() for utt, line in read_kaldi_map(text).items()}

    def spoken_phones(self) -> List[str]:
        """The phones the training transcripts use: CMUdict's ARPAbet becomes one of the
        recipe's own phones only if it is among these (words/lexicon.py), so TIMIT's ``ax`` for
        an unstressed AH needs an ``ax`` the GMM was trained on."""
        return sorted({p for phones in self.training_phones.values() for p in phones})

    def connected_speech(self) -> ConnectedSpeech:
        """How often closures and glides occur in the training set's phone ``text``."""
        return ConnectedSpeech.estimate(self.training_phones.values())

    def pron_probs(self, speech: ConnectedSpeech) -> PronProbs:
        """How often the training set said each CMUdict / eSpeak NG pronunciation of its words
        (its ``text.words`` matched to its phone ``text``); none without a word text."""
        words = self.data / TRAIN_SET / "text.words"
        if not words.is_file():
            return PronProbs()
        phone_ids = read_symbol_table(self.data / "lang" / "phones.txt")
        said = word_transcripts(read_kaldi_map(words), load_lexicon(CMUDICT, self.spoken_phones()), CMUDICT,
                                "espeak", words, espeak_alternatives=True)
        probs = count_pronunciations(said.words, self.training_phones, said.pronunciations, phone_ids, speech)
        log.info("pronunciation probabilities: counted in %d training utterances (%d whose phones "
                 "no pronunciation of their words gives left out)", len(said.words) - probs.unmatched,
                 probs.unmatched)
        return probs

    def outputs(self, name: str) -> List[Path]:
        return [self.data / name, self.data / "mfcc" / name, self.root / "exp" / f"mono_ali_{name}"]

    def made_outputs(self, name: str) -> List[Path]:
        """The outputs of ``name`` that exist; any not made by prepare_set is refused by name."""
        existing = [p for p in self.outputs(name) if p.exists() or p.is_symlink()]
        for path in existing:
            refused = removal_refused(path, MAKER)
            if refused:
                raise DataError(f"exists and was not made by prepare_set ({refused}); "
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


def _make_folder(path: Path, src: Path) -> None:
    path.mkdir(parents=True)
    mark(path, f"{MAKER}, from {src}")


def _source_dir(src: Path) -> DataDir:
    """Load and validate the source dir (an utterance without speaker is an error there)."""
    if not (src / "wav.scp").is_file():
        raise DataError("missing (needed to compute features)", file=str(src / "wav.scp"))
    return DataDir.load(src)


def _audio_frames(data: DataDir, samples: Mapping[str, int], rate: int) -> Dict[str, int]:
    """The frame count of every utterance in the plain-file wavs (``samples`` per wav.scp key,
    from check_wav_table); commands are measured once their features exist."""
    wav_scp, frames = str(data.root / "wav.scp"), {}
    for key, n_samples in samples.items():
        for utt, (first, end) in recording_utterances(data.segments, key, n_samples, rate,
                                                      str(data.root / "segments")):
            frames[utt] = num_frames(end - first, rate)
            if frames[utt] == 0:
                where = wav_scp if data.segments is None else str(data.root / "segments")
                raise DataError(f"empty utterance: {end - first} samples, shorter than one frame",
                                file=where, utt=utt)
    return frames


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


def is_phone_text(text: Mapping[str, str], phones: Sequence[str]) -> bool:
    """Whether every token of ``text`` is a phone of the recipe (else it is a word transcript)."""
    allowed = set(phones)
    return all(token in allowed for line in text.values() for token in line.split())


def reference(data: DataDir, phones: Sequence[str], options: Options, recipe: RecipeDir) -> Reference:
    """The phone transcript of every utterance, from ali.txt, phones.ctm or a phone text (in that
    order); else ``text`` is read as words, to be aligned (CMUdict in the phones the recipe's
    training transcripts use)."""
    src = data.root
    if (src / "ali.txt").is_file() or (src / "phones.ctm").is_file():
        where = src / ("ali.txt" if (src / "ali.txt").is_file() else "phones.ctm")
        transcript = {utt: " ".join(PHONES[i] for i in run_labels(ids))
                      for utt, ids in read_phone_alignment(src).items()}
    elif data.text is None:
        raise DataError("no reference: needs a word or phone text, a phones.ctm or an ali.txt", file=str(src))
    elif is_phone_text(data.text, phones):
        where, transcript = src / "text", dict(data.text)
    else:
        lexicon = load_lexicon(options.lexicon, recipe.spoken_phones() if options.lexicon == CMUDICT else phones)
        return word_transcripts(data.text, lexicon, options.lexicon, options.oov, src / "text",
                                espeak_alternatives=options.lexicon == CMUDICT)
    for utt in data.utts:
        if not transcript.get(utt, "").split():
            raise DataError("empty utterance: no phones in the reference", file=str(where), utt=utt)
    return {utt: transcript[utt] for utt in data.utts}


def _write_set(data: DataDir, dest: Path, keep: Collection[str]) -> None:
    """The source's tables for the utterances in ``keep`` (their lines as the user wrote them)."""
    _make_folder(dest, data.root)
    keep = set(keep)  # looked up once per table line: a list would make the filter quadratic
    recordings = {data.segments[u].recording for u in keep} if data.segments is not None else keep
    kept_keys = {"wav.scp": recordings, "segments": keep, "utt2spk": keep,
                 "spk2gender": {data.utt2spk[u] for u in keep}}
    for name, keys in kept_keys.items():
        if (data.root / name).is_file():
            lines = [line for line in read_table_lines(data.root / name)
                     if (line.split(maxsplit=1) or [""])[0] in keys]
            (dest / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    write_kaldi_map(dest / "spk2utt", {spk: " ".join(u for u in utts if u in keep)
                                       for spk, utts in data.spk2utt.items() if any(u in keep for u in utts)})


@dataclass(frozen=True)
class Options:
    """How a word transcript becomes phones: the lexicon, what to do with words it lacks, and
    the probability of optional silence between words."""

    lexicon: str = CMUDICT
    oov: str = "espeak"
    sil_prob: float = SIL_PROB

    def __post_init__(self) -> None:
        # its cost -log(p) and -log(1 - p) must be finite: 0 and 1 would end in a traceback
        if not 0.0 < self.sil_prob < 1.0:
            raise UserInputError(f"--sil-prob {self.sil_prob:g} is not a probability strictly "
                                 f"between 0 and 1")


def prepare_set(src: Path, recipe_dir: Path, name: str, overwrite: bool = False,
                options: Options = Options()) -> int:
    """Import ``src`` as set ``name`` of the recipe run in ``recipe_dir``; returns utterances aligned."""
    check_set_name(name)
    recipe = RecipeDir(Path(recipe_dir))
    recipe.check()
    existing = recipe.made_outputs(name)
    if existing and not overwrite:
        raise DataError("exists; choose another --name or pass --overwrite", file=str(existing[0]))
    data = _source_dir(Path(src))
    rate = FeatureConf.from_file("fbank", recipe.fbank_conf()).sample_rate
    samples = check_wav_table(data.wav or {}, str(data.root / "wav.scp"), rate)
    frames = _audio_frames(data, samples, rate)
    phones = read_inventory(recipe.data / "lang" / "phones.txt")
    ref = reference(data, phones, options, recipe)
    check_alignment_frames(data, frames)
    for path in existing:
        shutil.rmtree(path)
    try:
        return _build(recipe, data, ref, name, options.sil_prob)
    except BaseException:
        for path in recipe.outputs(name):  # no half-made set that a cfg could name
            if not removal_refused(path, MAKER):
                shutil.rmtree(path, ignore_errors=True)
        raise


def _align(recipe: RecipeDir, reference: Reference, mfcc_dir: Path, ali_dir: Path,
           sil_prob: float) -> tuple[dict[str, str], set[str]]:
    """Align the MFCC set; returns the phone reference of the set (for a word transcript, the
    phones the alignment chose, so only the utterances that aligned) and the aligned utterances."""
    lang, model = recipe.data / "lang", recipe.root / "exp" / "mono"
    if isinstance(reference, WordTranscripts):
        write_kaldi_map(mfcc_dir / "text.words", {u: " ".join(w) for u, w in reference.words.items()})
        speech = recipe.connected_speech()
        chosen = align_words(lang, model, mfcc_dir, reference.words, reference.pronunciations, ali_dir,
                             str(mfcc_dir / "text.words"), sil_prob, speech, pron_probs=recipe.pron_probs(speech))
        text = {utt: " ".join(phones) for utt, phones in chosen.items()}
        write_kaldi_map(mfcc_dir / "text", text)
        return text, set(text)
    write_kaldi_map(mfcc_dir / "text", reference)
    return reference, set(align_set(lang, model, mfcc_dir, mfcc_dir / "text", ali_dir))


def _report_unaligned(data: DataDir, aligned: set[str], fbank_dir: Path, reference: Reference) -> None:
    """Failed utterances, by name, in one log line (the only one: the aligner names none) and in
    ``unaligned.txt``."""
    failed = [utt for utt in data.utts if utt not in aligned]
    if not failed:
        return
    listing = fbank_dir / UNALIGNED
    listing.write_text("".join(f"{utt}\n" for utt in failed), encoding="utf-8")
    fate = ("left out of the set (no phone reference)" if isinstance(reference, WordTranscripts)
            else "kept for scoring, without frame labels")
    log.warning("%d of %d utterances could not be aligned, %s: %s (listed in %s)", len(failed),
                len(data.utts), fate, " ".join(failed), listing)


def _write_oov(reference: Reference, fbank_dir: Path, lexicon: str) -> None:
    if not isinstance(reference, WordTranscripts) or not reference.oov:
        return
    listing = fbank_dir / OOV_LEXICON
    write_kaldi_map(listing, {w: " ".join(p) for w, p in reference.oov.items()})
    log.info("%d words not in %s were pronounced by eSpeak NG: %s (listed in %s)", len(reference.oov),
             lexicon, " ".join(reference.oov), listing)


def _build(recipe: RecipeDir, data: DataDir, reference: Reference, name: str, sil_prob: float) -> int:
    """MFCCs and alignment first: a word transcript's reference is what the alignment chose."""
    fbank_dir, mfcc_dir, ali_dir = recipe.outputs(name)
    log.info("%s: %d utterances, %d speakers; MFCC features and alignment", name, len(data.utts),
             len(data.spk2utt))
    _write_set(data, mfcc_dir, data.utts)
    make_pytorch_kaldi_feats(mfcc_dir, "mfcc", recipe.mfcc_conf(), recipe.data / "ark" / "mfcc")
    # Audio from pipes is measured only now, by its features.
    check_alignment_frames(data, {utt: int(n) for utt, n in read_kaldi_map(mfcc_dir / "utt2num_frames").items()})
    _make_folder(ali_dir, data.root)
    text, aligned = _align(recipe, reference, mfcc_dir, ali_dir, sil_prob)
    _write_set(data, fbank_dir, set(text))
    write_kaldi_map(fbank_dir / "text", text)
    if isinstance(reference, WordTranscripts):
        write_kaldi_map(fbank_dir / "text.words", {u: " ".join(reference.words[u]) for u in text})
    _write_oov(reference, fbank_dir, "the lexicon")
    _report_unaligned(data, aligned, fbank_dir, reference)
    log.info("%s: fbank features", name)
    make_pytorch_kaldi_feats(fbank_dir, "fbank", recipe.fbank_conf(), recipe.data / "ark" / "fbank")
    print(f"{name}: {len(aligned)} of {len(data.utts)} utterances -> {fbank_dir} (features), {ali_dir} (alignments)")
    return len(aligned)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.prepare_set", __doc__)
    parser.add_argument("src", type=Path, help="Kaldi data dir: wav.scp, utt2spk, a word or phone reference")
    parser.add_argument("--dir", type=Path, required=True, help="the recipe run (holds data/ and exp/)")
    parser.add_argument("--name", required=True, help="name of the new set (data/<name>): one folder name")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a set of that name that prepare_set made before")
    parser.add_argument("--lexicon", default=CMUDICT,
                        help=f"for a word text: {CMUDICT!r} (the CMU Pronouncing Dictionary) or a Kaldi lexicon.txt")
    parser.add_argument("--oov", choices=OOV_CHOICES, default="espeak",
                        help="words the lexicon lacks: pronounced by eSpeak NG, or refused by name")
    parser.add_argument("--sil-prob", type=float, default=SIL_PROB,
                        help="probability of the optional leading and trailing silence, and of silence "
                        "between words where the training text has no count (as prepare_lang.sh)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_reporting_errors("prepare_set", lambda: prepare_set(
        args.src, args.dir, args.name, args.overwrite, Options(args.lexicon, args.oov, args.sil_prob)))


if __name__ == "__main__":
    sys.exit(main())
