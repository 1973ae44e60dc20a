"""Corpus-shaped fixtures: a TIMIT tree and a LibriSpeech tree made from the built-in synthesizer.

Nothing here is licensed or downloaded: the audio, phone times and words come from
:mod:`pytorch_kaldi_snn.corpus.generate` (eSpeak NG), re-filed in the layout of the real corpora
so that Kaldi's own data-prep scripts (``egs/timit/s5/local/timit_data_prep.sh``,
``egs/librispeech/s5/local/data_prep.sh``) read them as they read the originals.

* :func:`write_timit_tree`: ``TRAIN/DR<n>/<SPK>/`` and ``TEST/DR<n>/<SPK>/`` (or lower case),
  NIST SPHERE ``.WAV``, ``.PHN`` in TIMIT's 61-phone set with sample-exact times, ``.TXT``,
  ``.WRD``, utterances named SA1, SA2, SI<n>, SX<n>; dev/test speakers carry names from Kaldi's
  ``conf/dev_spk.list`` / ``conf/test_spk.list`` and are listed in ``dev_spk.list`` /
  ``test_spk.list`` next to the tree.
* :func:`write_librispeech_tree`: ``LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac``
  with ``<spk>-<chapter>.trans.txt`` and ``SPEAKERS.TXT``, plus an LM folder in the names of
  openslr.org/resources/11 that the recipe links instead of downloading (a lexicon from eSpeak
  NG's isolated-word pronunciations, a word bigram of the fixture's transcripts).

Both signatures are kept stable: other recipes' tests (the built-in TIMIT recipe) reuse them.
"""
from __future__ import annotations

import gzip
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import soundfile

from pytorch_kaldi_snn.corpus import espeak
from pytorch_kaldi_snn.corpus.augment import RATE
from pytorch_kaldi_snn.corpus.generate import CorpusSize, generate_corpus
from pytorch_kaldi_snn.corpus.segments import Segment, espeak_segments
from pytorch_kaldi_snn.corpus.speakers import usable_variants
from pytorch_kaldi_snn.graph.lm import bigram_arpa

SETS = ("train", "dev", "test")
# Speaker names of Kaldi's egs/timit/s5/conf/{dev,test}_spk.list (TIMIT's core test set), by
# gender, so that the recipe's unmodified speaker lists select the fixture's dev/test speakers.
TIMIT_DEV_SPEAKERS = {"f": ("faks0", "fdac1", "fjem0", "fcmh0"), "m": ("mgwt0", "mjar0", "mmdb1", "mmdm2")}
TIMIT_TEST_SPEAKERS = {"f": ("felc0", "fpas0", "fpkt0", "fjlm0"), "m": ("mdab0", "mwbt0", "mtas1", "mwew0")}
# 39-class stops that TIMIT transcribes as closure + release.
CLOSURES = {"b": "bcl", "d": "dcl", "g": "gcl", "p": "pcl", "t": "tcl", "k": "kcl"}
LIBRI_SUBSETS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
# What recipes/librispeech/run.sh --lm-dir reads (openslr.org/resources/11 names, as Kaldi's
# local/download_lm.sh links them).
LIBRI_LMS = ("lm_tgsmall", "lm_tgmed", "lm_tglarge", "lm_fglarge")


@dataclass(frozen=True)
class SynthUtt:
    """One generated utterance, as the writers need it."""

    spk: str
    gender: str
    utt: str
    wav: Path
    sentence: str
    words: Tuple[str, ...]
    segments: Tuple[Segment, ...]


@dataclass(frozen=True)
class TimitTree:
    root: Path
    dev_spk_list: Path
    test_spk_list: Path
    speakers: Dict[str, Tuple[str, ...]]  # set -> speaker dir names
    utterances: Dict[str, int]  # set -> number of SI/SX utterances (what Kaldi keeps)


@dataclass(frozen=True)
class LibriTree:
    root: Path  # holds LibriSpeech/<subset>/ (the recipe's --corpus-dir)
    lm_dir: Path  # the recipe's --lm-dir
    words: Tuple[str, ...]
    utterances: Dict[str, int]  # set -> number of utterances


# ---------------------------------------------------------------- the synthesizer's output

def _table(path: Path) -> Dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split(" ", 1) for line in lines if line)


def _ctm_segments(path: Path) -> Dict[str, List[Segment]]:
    segments: Dict[str, List[Segment]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        utt, _, start, dur, label = line.split()
        begin = round(float(start) * RATE)  # the CTM's 10 us resolution recovers each sample
        segments.setdefault(utt, []).append(Segment(begin, begin + round(float(dur) * RATE), label))
    return segments


def synthesize(out: Path, size: CorpusSize, seed: int, nj: int) -> Dict[str, List[SynthUtt]]:
    """Generate the built-in corpus into ``out``; its utterances per set, in speaker order."""
    generate_corpus(out, size, seed=seed, nj=nj)
    result: Dict[str, List[SynthUtt]] = {}
    for name in SETS:
        d = out / name
        wavs, texts, spk = _table(d / "wav.scp"), _table(d / "text"), _table(d / "utt2spk")
        gender, info = _table(d / "spk2gender"), _table(d / "utt2info")
        segments = _ctm_segments(d / "phones.ctm")
        result[name] = [
            SynthUtt(spk[u], gender[spk[u]], u, Path(wavs[u]), json.loads(info[u])["sentence"],
                     tuple(texts[u].split()), tuple(segments[u]))
            for u in sorted(wavs, key=lambda u: (spk[u], u))
        ]
    return result


def _by_speaker(utts: Sequence[SynthUtt]) -> Dict[str, List[SynthUtt]]:
    groups: Dict[str, List[SynthUtt]] = {}
    for u in utts:
        groups.setdefault(u.spk, []).append(u)
    return groups


# ---------------------------------------------------------------- TIMIT

def timit_phones(segments: Sequence[Segment]) -> List[Segment]:
    """The 39-class segments in TIMIT's 61-phone set: ``h#`` at the ends, ``pau`` inside,
    stops split into closure and release (the boundaries stay sample-exact)."""
    out: List[Segment] = []
    last = len(segments) - 1
    for i, s in enumerate(segments):
        if s.label == "sil":
            out.append(Segment(s.start, s.end, "h#" if i in (0, last) else "pau"))
        elif s.label in CLOSURES and s.end - s.start >= 2:
            middle = (s.start + s.end) // 2
            out += [Segment(s.start, middle, CLOSURES[s.label]), Segment(middle, s.end, s.label)]
        else:
            out.append(s)
    return out


def timit_words(words: Sequence[str], segments: Sequence[Segment]) -> List[Tuple[int, int, str]]:
    """Word times for ``.WRD``. The synthesizer gives phone times only, so the words share the
    speech span (first to last non-silence sample) in proportion to their letters: APPROXIMATE
    times (Kaldi's TIMIT recipe, like ours, reads only ``.PHN`` and ``.WAV``)."""
    speech = [s for s in segments if s.label != "sil"]
    begin, end = speech[0].start, speech[-1].end
    weights = np.cumsum([0] + [len(w) for w in words])
    edges = [begin + int(round((end - begin) * c / weights[-1])) for c in weights]
    return [(edges[i], edges[i + 1], w) for i, w in enumerate(words)]


def _timit_names(n: int) -> List[str]:
    """TIMIT's utterance names for a speaker's ``n`` sentences: SA1, SA2, then SI/SX."""
    names = ["SA1", "SA2"][:n]
    for k in range(n - len(names)):
        names.append(f"SI{1000 + k}" if k % 3 == 0 else f"SX{100 + k}")
    return names


def _timit_speaker_names(name: str, speakers: Sequence[Tuple[str, str]]) -> List[str]:
    """Speaker dir names: Kaldi's dev/test list entries (matching gender), made-up train ones."""
    taken: Dict[str, int] = {"f": 0, "m": 0}
    names = []
    for k, (_, gender) in enumerate(speakers):
        if name == "train":
            names.append(f"{gender}tr{chr(ord('a') + k % 26)}{k // 26}")
            continue
        pool = (TIMIT_DEV_SPEAKERS if name == "dev" else TIMIT_TEST_SPEAKERS)[gender]
        if taken[gender] >= len(pool):
            raise ValueError(f"at most {len(pool)} {gender} {name} speakers in a TIMIT fixture")
        names.append(pool[taken[gender]])
        taken[gender] += 1
    return names


def _write_timit_utt(spk_dir: Path, name: str, utt: SynthUtt, case) -> None:
    samples, rate = soundfile.read(str(utt.wav), dtype="int16")
    assert rate == RATE, f"{utt.wav}: {rate} Hz"
    soundfile.write(str(spk_dir / case(f"{name}.WAV")), samples, RATE, format="NIST", subtype="PCM_16")
    phn = [f"{s.start} {s.end} {s.label}" for s in timit_phones(utt.segments)]
    wrd = [f"{a} {b} {w}" for a, b, w in timit_words(utt.words, utt.segments)]
    (spk_dir / case(f"{name}.PHN")).write_text("\n".join(phn) + "\n")
    (spk_dir / case(f"{name}.WRD")).write_text("\n".join(wrd) + "\n")
    (spk_dir / case(f"{name}.TXT")).write_text(f"0 {samples.size} {utt.sentence}\n")


def write_timit_tree(
    root: Path, *, train_speakers: int = 6, dev_speakers: int = 2, test_speakers: int = 2,
    utts_per_speaker: int = 5, seed: int = 0, lower_case: bool = False, nj: int = 1,
) -> TimitTree:
    """Write a TIMIT-layout corpus under ``root`` (the dir holding ``TRAIN/`` and ``TEST/``).

    Each speaker has ``utts_per_speaker`` sentences named SA1, SA2, SI…, SX… (Kaldi's data prep
    drops the SA ones). Dev and test speakers both go under ``TEST/``, as in TIMIT.
    """
    root = Path(root)
    case = str.lower if lower_case else str.upper
    size = CorpusSize(train=train_speakers, dev=dev_speakers, test=test_speakers,
                      utts_per_speaker=utts_per_speaker)
    speakers: Dict[str, Tuple[str, ...]] = {}
    with tempfile.TemporaryDirectory(prefix="timit-synth-") as tmp:
        synth = synthesize(Path(tmp), size, seed, nj)
        for name in SETS:
            groups = _by_speaker(synth[name])
            spk_names = _timit_speaker_names(name, [(s, g[0].gender) for s, g in groups.items()])
            speakers[name] = tuple(case(n) for n in spk_names)
            top = case("TRAIN" if name == "train" else "TEST")
            for k, (spk_name, utts) in enumerate(zip(spk_names, groups.values())):
                spk_dir = root / top / case(f"DR{k % 8 + 1}") / case(spk_name)
                spk_dir.mkdir(parents=True)
                for utt_name, utt in zip(_timit_names(len(utts)), utts):
                    _write_timit_utt(spk_dir, utt_name, utt, case)
    lists = {}
    for name in ("dev", "test"):
        lists[name] = root / f"{name}_spk.list"
        lists[name].write_text("".join(f"{s.lower()}\n" for s in speakers[name]))
    kept = max(utts_per_speaker - 2, 0)
    return TimitTree(root, lists["dev"], lists["test"], speakers,
                     {name: kept * len(speakers[name]) for name in SETS})


# ---------------------------------------------------------------- LibriSpeech

def _isolated_pronunciations(words: Sequence[str]) -> Dict[str, str]:
    """Each word spoken alone by eSpeak NG, as upper-case 39-class phones (runs in a fresh
    process: the synthesizer must stay pristine in the generating one)."""
    voice = espeak.Voice(variant=usable_variants()["m"][0], rate=160, pitch=50, pitch_range=50)
    pronunciations = {}
    for word in words:
        syn = espeak.engine().synthesize(word, voice, 0)
        phones = [s.label.upper() for s in espeak_segments(syn.samples, syn.events, espeak.SAMPLE_RATE)
                  if s.label != "sil"]
        if not phones:
            raise ValueError(f"eSpeak NG gave no phones for {word!r}")
        pronunciations[word] = " ".join(phones)
    return pronunciations


def librispeech_lexicon(words: Sequence[str]) -> Dict[str, str]:
    with espeak.pristine_context().Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_isolated_pronunciations, (list(words),))


def _write_lm_dir(lm_dir: Path, synth: Dict[str, List[SynthUtt]]) -> Tuple[str, ...]:
    """Lexicon, vocabulary and a word bigram (under all four LM names) of the fixture."""
    lm_dir.mkdir(parents=True)
    words = tuple(sorted({w.upper() for utts in synth.values() for u in utts for w in u.words}))
    lexicon = librispeech_lexicon([w.lower() for w in words])
    (lm_dir / "librispeech-lexicon.txt").write_text(
        "".join(f"{w}\t{lexicon[w.lower()]}\n" for w in words))
    (lm_dir / "librispeech-vocab.txt").write_text("".join(f"{w}\n" for w in words))
    arpa = bigram_arpa([[w.upper() for w in u.words] for u in synth["train"]], words)
    for lm in LIBRI_LMS:
        with gzip.open(lm_dir / f"{lm}.arpa.gz", "wt") as f:
            f.write(arpa)
    return words


def write_librispeech_tree(
    root: Path, *, train_speakers: int = 4, dev_speakers: int = 2, test_speakers: int = 2,
    utts_per_speaker: int = 4, seed: int = 0, nj: int = 1,
) -> LibriTree:
    """Write ``root/LibriSpeech/{train-clean-100,dev-clean,test-clean}`` and ``root/lm``.

    Speaker ``k`` of a set gets the reader id ``<100|200|300> + k`` and one chapter
    (``<reader>0``); utterances are numbered ``0000``… within it.
    """
    root = Path(root)
    size = CorpusSize(train=train_speakers, dev=dev_speakers, test=test_speakers,
                      utts_per_speaker=utts_per_speaker)
    libri = root / "LibriSpeech"
    speakers_txt = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
    with tempfile.TemporaryDirectory(prefix="libri-synth-") as tmp:
        synth = synthesize(Path(tmp), size, seed, nj)
        for base, name in zip((100, 200, 300), SETS):
            subset = LIBRI_SUBSETS[name]
            for k, utts in enumerate(_by_speaker(synth[name]).values()):
                reader, chapter = base + k, (base + k) * 10
                speakers_txt.append(f"{reader:<5}| {utts[0].gender.upper()} | {subset:<17}| 1.00 | synth {utts[0].spk}")
                chapter_dir = libri / subset / str(reader) / str(chapter)
                chapter_dir.mkdir(parents=True)
                trans = []
                for j, utt in enumerate(utts):
                    utt_id = f"{reader}-{chapter}-{j:04d}"
                    samples, _ = soundfile.read(str(utt.wav), dtype="int16")
                    soundfile.write(str(chapter_dir / f"{utt_id}.flac"), samples, RATE, format="FLAC")
                    trans.append(f"{utt_id} {' '.join(w.upper() for w in utt.words)}")
                (chapter_dir / f"{reader}-{chapter}.trans.txt").write_text("\n".join(trans) + "\n")
        (libri / "SPEAKERS.TXT").write_text("\n".join(speakers_txt) + "\n")
        words = _write_lm_dir(root / "lm", synth)
    return LibriTree(root, root / "lm", words,
                     {name: len(synth[name]) for name in SETS})
