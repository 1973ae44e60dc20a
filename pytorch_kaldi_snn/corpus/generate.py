"""Generate the built-in TIMIT-like corpus as Kaldi data dirs with frame-level phone references.

Usage::

    python -m pytorch_kaldi_snn.corpus.generate --out data/synth --size default --seed 0 --nj 2

writes ``OUT/phones.txt``, ``OUT/corpus.json`` and ``OUT/{train,dev,test}/`` (layout and file
formats in docs/corpus.md). Speakers and sentences are disjoint between the three sets, as in
TIMIT. Everything is planned up front from one seeded generator; workers only render, each
speaker in a fresh process (see :mod:`.espeak` for why), so the output is identical for any
``--nj``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
import soundfile

from ..cli import command_parser, run_reporting_errors
from ..errors import ConfigError, DataError
from ..io.atomic import atomic_outputs
from ..io.ownership import NotOurFolder, mark, removal_refused
from . import augment, espeak
from .alignment import ctm_lines, ensure_frames, frame_labels
from .augment import RATE, UtteranceAugment
from .phones import PHONES
from .segments import Segment, espeak_segments
from .speakers import RESAMPLE_DOWN, SpeakerSpec, draw_speakers
from .text import SENTENCES_RESOURCE, load_sentences, split_sentences, words


@dataclass(frozen=True)
class CorpusSize:
    """Speakers per set and utterances per speaker."""

    train: int
    dev: int
    test: int
    utts_per_speaker: int


SIZES: Dict[str, CorpusSize] = {
    "tiny": CorpusSize(train=4, dev=2, test=2, utts_per_speaker=2),
    "default": CorpusSize(train=160, dev=20, test=12, utts_per_speaker=8),
    "timit": CorpusSize(train=462, dev=50, test=24, utts_per_speaker=8),
}
SPLITS: Tuple[Tuple[str, str], ...] = (("train", "tr"), ("dev", "dv"), ("test", "te"))
# The command-line option behind each CorpusSize field, and the least value it takes: a test
# set alone (train and dev 0 speakers) is what scoring a finished model on new speakers needs.
OPTIONS = {"train": ("--train-speakers", 0), "dev": ("--dev-speakers", 0),
           "test": ("--test-speakers", 1), "utts_per_speaker": ("--utts-per-speaker", 1)}
MAKER = "pytorch_kaldi_snn.corpus.generate"  # in the marker of each set: the sets it removes
TOP_FILES = ("phones.txt", "corpus.json")  # written beside the sets
KALDI_FILES = (
    "wav.scp", "text", "utt2spk", "spk2utt", "spk2gender", "utt2dur", "utt2num_frames",
    "spk2info", "utt2info", "text.phn", "phones.ctm", "ali.txt",
)


@dataclass(frozen=True)
class UttPlan:
    """Everything random about one utterance, fixed before any rendering."""

    utt: str
    sentence: str
    seed: int
    augment: UtteranceAugment
    babble: Tuple[Tuple[espeak.Voice, str], ...]  # background talkers when noise == "babble"


@dataclass(frozen=True)
class SpeakerJob:
    """One unit of parallel work: a speaker's utterances, rendered in order in one process."""

    spec: SpeakerSpec
    utts: Tuple[UttPlan, ...]
    wav_dir: str


@dataclass(frozen=True)
class UttResult:
    """What the writer needs back from a worker."""

    utt: str
    n_samples: int
    segments: Tuple[Segment, ...]


# ---------------------------------------------------------------------------------------------
# Planning (main process, sequential, seeded)


def _plan_utt(
    spec: SpeakerSpec, sentence: str, index: int, pool: Sequence[str],
    others: Sequence[SpeakerSpec], rng: np.random.Generator,
) -> UttPlan:
    aug = augment.draw_augment(rng)
    babble: Tuple[Tuple[espeak.Voice, str], ...] = ()
    if aug.noise == "babble":
        talkers = rng.integers(len(others), size=augment.BABBLE_TALKERS)
        texts = rng.integers(len(pool), size=augment.BABBLE_TALKERS)
        babble = tuple((others[t].voice, pool[s]) for t, s in zip(talkers, texts))
    return UttPlan(
        utt=f"{spec.spk}_{index:05d}",
        sentence=sentence,
        seed=int(rng.integers(2**31 - 1)),
        augment=aug,
        babble=babble,
    )


def plan_corpus(size: CorpusSize, seed: int, out: Path) -> Dict[str, List[SpeakerJob]]:
    """The whole corpus as render jobs: speakers, sentences and augmentation, per set."""
    rng = np.random.default_rng(seed)
    counts = {name: getattr(size, name) * size.utts_per_speaker for name, _ in SPLITS}
    pools = split_sentences(counts, rng)
    index = {s: i for i, s in enumerate(load_sentences())}
    taken: Set[Tuple[espeak.Voice, int]] = set()
    plan: Dict[str, List[SpeakerJob]] = {}
    for name, prefix in SPLITS:
        speakers = draw_speakers(prefix, getattr(size, name), rng, taken)
        jobs = []
        for k, spec in enumerate(speakers):
            # Babble talkers are the set's other speakers (any, if the set has only one).
            others = [s for s in speakers if s is not spec] or speakers
            mine = pools[name][k * size.utts_per_speaker:(k + 1) * size.utts_per_speaker]
            utts = tuple(
                _plan_utt(spec, s, index[s], pools[name], others, rng) for s in mine
            )
            jobs.append(SpeakerJob(spec, utts, str((out / name / "wav").resolve())))
        plan[name] = jobs
    return plan


# ---------------------------------------------------------------------------------------------
# Rendering (worker processes)


def _noise(plan: UttPlan, n: int, rng: np.random.Generator) -> Optional[np.ndarray]:
    kind = plan.augment.noise
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        return augment.pink_noise(n, rng)
    if kind == "babble":
        synth = espeak.engine().synthesize
        talkers = [  # background talkers are not speed-perturbed
            augment.resample(synth(text, voice, plan.seed + k).samples, RESAMPLE_DOWN)
            for k, (voice, text) in enumerate(plan.babble, 1)
        ]
        return augment.babble(talkers, n, rng)
    return None


def _atomic_wav(path: Path, samples: np.ndarray) -> None:
    with atomic_outputs(path) as (tmp,):
        soundfile.write(tmp, samples, RATE, subtype="PCM_16", format="WAV")


def render_utt(spec: SpeakerSpec, plan: UttPlan, wav_dir: Path) -> UttResult:
    """Synthesize, label, pad, resample with speed, add noise and channel, write the wav."""
    syn = espeak.engine().synthesize(plan.sentence, spec.voice, plan.seed)
    if not np.any(syn.samples):
        raise DataError(f"eSpeak NG produced no audio for {plan.sentence!r}", utt=plan.utt)
    segments = espeak_segments(syn.samples, syn.events, espeak.SAMPLE_RATE)
    before, after = (int(round(s * espeak.SAMPLE_RATE))
                     for s in (plan.augment.pad_before_s, plan.augment.pad_after_s))
    raw, segments = augment.pad(syn.samples, segments, before, after)
    x = augment.resample(raw, spec.speed_down)
    segments = augment.scale_segments(segments, spec.speed_down, x.size)
    segments = ensure_frames(segments, x.size, RATE)
    rng = np.random.default_rng(plan.seed)
    active = augment.active_mask(segments, x.size)
    noise = _noise(plan, x.size, rng)
    if noise is not None:
        x = augment.add_noise(x, active, noise, plan.augment.snr_db)
    x = augment.add_noise(x, active, rng.standard_normal(x.size), augment.NOISE_FLOOR_DB)
    wav = augment.to_int16(augment.channel(x, spec), plan.augment.peak_dbfs)
    _atomic_wav(wav_dir / f"{plan.utt}.wav", wav)
    return UttResult(plan.utt, wav.size, tuple(segments))


def render_speaker(job: SpeakerJob) -> List[UttResult]:
    """Render a speaker's utterances in order; must run in a process with a pristine engine."""
    if espeak.has_been_used():
        raise RuntimeError("eSpeak NG state is not pristine: render a speaker in a fresh process")
    wav_dir = Path(job.wav_dir)
    return [render_utt(job.spec, plan, wav_dir) for plan in job.utts]


def render(jobs: Sequence[SpeakerJob], nj: int,
           done: Callable[[int], None] = lambda n: None) -> List[List[UttResult]]:
    """Render every job, each in a process of its own with a pristine engine
    (:func:`~.espeak.pristine_context`); ``done(n)`` is called after each of the ``n`` first
    speakers is written."""
    context = espeak.pristine_context([__name__])
    results: List[List[UttResult]] = []
    with context.Pool(nj, maxtasksperchild=1) as pool:
        for result in pool.imap(render_speaker, jobs, chunksize=1):
            results.append(result)
            done(len(results))
    return results


def quarter_reporter(name: str, total: int, start: float,
                     report: Callable[[str], None]) -> Callable[[int], None]:
    """A ``done`` callback for :func:`render` that reports a set of over 20 speakers at each
    quarter (the default corpus's train set takes half a minute), a small set not at all."""
    marks = {total * k // 4 for k in (1, 2, 3)} if total > 20 else set()

    def done(n: int) -> None:
        if n in marks:
            report(f"{name}: {n}/{total} speakers rendered ({time.time() - start:.0f} s)")
    return done


# ---------------------------------------------------------------------------------------------
# Writing (main process)


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write text lines atomically (temporary file in the same folder, then rename)."""
    with atomic_outputs(path) as (tmp,), open(tmp, "w", encoding="utf-8") as f:
        f.writelines(f"{line}\n" for line in lines)


def _set_tables(
    jobs: Sequence[SpeakerJob], results: Sequence[List[UttResult]]
) -> Dict[str, List[str]]:
    """The lines of every Kaldi file of one set, sorted by key as Kaldi requires."""
    tables: Dict[str, List[str]] = {name: [] for name in KALDI_FILES}
    for job, utt_results in zip(jobs, results):
        spk = job.spec.spk
        tables["spk2utt"].append(f"{spk} {' '.join(sorted(p.utt for p in job.utts))}")
        tables["spk2gender"].append(f"{spk} {job.spec.gender}")
        tables["spk2info"].append(f"{spk} {json.dumps(job.spec.to_json_dict(), sort_keys=True)}")
        for plan, res in zip(job.utts, utt_results):
            labels = frame_labels(res.segments, res.n_samples, RATE)
            info = {"sentence": plan.sentence, "seed": plan.seed, **asdict(plan.augment)}
            tables["wav.scp"].append(f"{res.utt} {job.wav_dir}/{res.utt}.wav")
            tables["text"].append(f"{res.utt} {' '.join(words(plan.sentence))}")
            tables["utt2spk"].append(f"{res.utt} {spk}")
            tables["utt2dur"].append(f"{res.utt} {res.n_samples / RATE:.4f}")
            tables["utt2num_frames"].append(f"{res.utt} {len(labels)}")
            tables["utt2info"].append(f"{res.utt} {json.dumps(info, sort_keys=True)}")
            tables["text.phn"].append(f"{res.utt} {' '.join(s.label for s in res.segments)}")
            tables["phones.ctm"].extend(ctm_lines(res.utt, res.segments, RATE))
            tables["ali.txt"].append(f"{res.utt} {' '.join(labels)}")
    # Stable sort by key: CTM lines of one utterance keep their time order.
    return {name: sorted(lines, key=lambda line: line.split(" ", 1)[0])
            for name, lines in tables.items()}


def _prepare_out(out: Path, overwrite: bool, names: Sequence[str]) -> None:
    """Make the set folders ``names``, marked as the generator's; ``overwrite`` first removes the
    existing sets, but only ones the generator made: anything else is refused before any is."""
    sets = [out / name for name, _ in SPLITS]
    existing = [path for path in sets if path.exists() or path.is_symlink()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} exists; remove it or pass --overwrite")
    for path in existing:
        refused = removal_refused(path, MAKER)
        if refused:
            raise NotOurFolder(path, f"was not made by the corpus generator ({refused}); "
                                     "--overwrite removes only the generator's own sets")
    _check_top_files(out, existing)
    for path in existing:
        shutil.rmtree(path)
    for name in names:
        (out / name / "wav").mkdir(parents=True)
        mark(out / name, MAKER)


def _check_top_files(out: Path, sets: Sequence[Path]) -> None:
    """``phones.txt`` and ``corpus.json`` are replaced only beside the generator's own sets (a
    user's ``phones.txt`` in a folder named by ``--out`` is never overwritten)."""
    if sets:
        return  # every set in ``sets`` was checked to be the generator's
    for path in (out / name for name in TOP_FILES):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path} exists and no set of the corpus generator is beside it; "
                              f"remove it or name a new or empty folder for --out")


def generate_corpus(
    out: str | Path, size: CorpusSize, seed: int = 0, nj: int = 1, overwrite: bool = False,
    report: Callable[[str], None] = lambda line: None,
) -> Dict[str, Dict[str, float]]:
    """Write the corpus under ``out``; return per-set speakers, utterances and hours of audio.
    ``report`` gets a progress line as each set is rendered (with the seconds since the start)."""
    start = time.time()
    if nj < 1:
        raise ConfigError(f"--nj must be at least 1, got {nj}")
    out = Path(out)
    # a set of 0 speakers (--train-speakers 0) is not written at all
    plan = {name: jobs for name, jobs in plan_corpus(size, seed, out).items() if jobs}
    _prepare_out(out, overwrite, list(plan))
    write_lines(out / "phones.txt", (f"{p} {i}" for i, p in enumerate(PHONES)))
    summary: Dict[str, Dict[str, float]] = {}
    for name, jobs in plan.items():
        results = render(jobs, nj, quarter_reporter(name, len(jobs), start, report))
        for file_name, lines in _set_tables(jobs, results).items():
            write_lines(out / name / file_name, lines)
        samples = sum(r.n_samples for rs in results for r in rs)
        stats = summary[name] = {"speakers": len(jobs), "utterances": sum(len(rs) for rs in results),
                                 "hours": round(samples / RATE / 3600, 4)}
        report(f"{name}: {stats['speakers']} speakers, {stats['utterances']} utterances, "
               f"{stats['hours']:.3f} h ({time.time() - start:.0f} s)")
    _write_manifest(out, size, seed, summary)
    return summary


def _write_manifest(out: Path, size: CorpusSize, seed: int, summary: Dict) -> None:
    """``corpus.json``: what produced this corpus (nothing time- or machine-dependent)."""
    from importlib.metadata import version

    manifest = {
        "seed": seed,
        "size": asdict(size),
        "sets": summary,
        "espeakng_loader": version("espeakng-loader"),
        "sentences": SENTENCES_RESOURCE,
        "phones": list(PHONES),
    }
    write_lines(out / "corpus.json", [json.dumps(manifest, indent=1, sort_keys=True)])


# ---------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "pytorch_kaldi_snn.corpus.generate",
        "Generate the synthetic TIMIT-like corpus (eSpeak NG) as Kaldi data dirs.")
    parser.add_argument("--out", required=True, help="output folder (gets train/ dev/ test/)")
    parser.add_argument("--size", choices=sorted(SIZES), default="default",
                        help="tiny: tests; default: the quick start's 192 speakers; timit: 462/50/24 "
                             "speakers")
    parser.add_argument("--seed", type=int, default=0, help="random seed of speakers and sentences")
    parser.add_argument("--nj", type=int, default=1, help="parallel worker processes")
    for name, _ in SPLITS:
        parser.add_argument(f"--{name}-speakers", type=int,
                            help=f"override the {name} speaker count"
                                 + (" (0: no such set)" if OPTIONS[name][1] == 0 else ""))
    parser.add_argument("--utts-per-speaker", type=int, help="override utterances per speaker")
    parser.add_argument("--overwrite", action="store_true", help="replace existing train/dev/test")
    return parser


def size_from_args(args: argparse.Namespace) -> CorpusSize:
    """The preset of ``--size`` with any explicit counts applied."""
    size = SIZES[args.size]
    overrides = {name: getattr(args, f"{name}_speakers") for name, _ in SPLITS}
    overrides["utts_per_speaker"] = args.utts_per_speaker
    size = replace(size, **{k: v for k, v in overrides.items() if v is not None})
    for key, value in asdict(size).items():
        option, least = OPTIONS[key]
        if value < least:
            raise ConfigError(f"{option} must be at least {least}, got {value}")
    return size


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point: prints one summary line per set; bad input prints one line, exit 2."""
    args = _parser().parse_args(argv)
    start = time.time()

    def generate() -> None:
        size = size_from_args(args)
        print(f"rendering {size.train}/{size.dev}/{size.test} train/dev/test speakers x "
              f"{size.utts_per_speaker} utterances with eSpeak NG ({args.nj} worker"
              f"{'s' if args.nj > 1 else ''})", flush=True)
        generate_corpus(args.out, size, args.seed, args.nj, args.overwrite,
                        report=lambda line: print(line, flush=True))
        print(f"wrote {args.out} in {time.time() - start:.1f} s (eSpeak NG via espeakng-loader)")
    return run_reporting_errors("generate", generate)


if __name__ == "__main__":
    sys.exit(main())
