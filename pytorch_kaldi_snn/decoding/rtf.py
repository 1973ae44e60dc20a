"""Real-time factor of the built-in decoder on plausible log-likelihoods (for benchmarks).

``measure_rtf`` loads a graph, draws utterances and times :func:`decode_utterance` on one core:
RTF = decoding seconds / audio seconds at ``frame_rate`` frames per second (Kaldi's 100).

"Plausible" log-likelihoods: a random word sequence from the graph's ``lexicon.int`` (written
by :func:`pytorch_kaldi_snn.graph.synthetic.synthetic_word_graph`; without it, random phones),
each phone's 3 HMM states held for a geometric number of frames (mean ``MEAN_STATE_FRAMES``),
and per frame ``N(-10, NOISE_STD)`` noise on every pdf with ``margin`` added to the pdf of the
state being spoken: the beam then has a right answer to follow and competitors close to it.
The spread (std 4, margin 8) is a chosen stand-in for a trained network's log-posteriors minus
log-priors, not measured from one; flatter scores (kaldi's GMM golden loglikes are far more
spread, pure noise far less) make the search slower. ``kind="random"`` gives pure noise.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from pytorch_kaldi_snn.decoding.decoder import decode_utterance
from pytorch_kaldi_snn.decoding.graph import load_graph
from pytorch_kaldi_snn.config.latgen_opts import DecodeOptions
from pytorch_kaldi_snn.decoding.transition_model import TransitionModel, read_transition_model

FRAME_RATE = 100.0  # frames per second (10 ms shift)
NOISE_MEAN, NOISE_STD, MARGIN = -10.0, 4.0, 8.0
HMM_STATES, MEAN_STATE_FRAMES = 3, 3.0  # the built-in topology's states per phone; frames per state


@dataclass(frozen=True)
class RtfResult:
    """What one measurement found; ``rtf`` = ``decode_s / (frames / frame_rate)``."""

    rtf: float
    frames: int
    utterances: int
    decode_s: float
    load_s: float  # load_graph of HCLG.fst
    save_lattices: bool
    kind: str


def _lexicon(graph_dir: Path) -> Optional[list[list[int]]]:
    path = graph_dir / "lexicon.int"
    if not path.is_file():
        return None
    return [[int(p) for p in line.split()[1:]] for line in path.read_text(encoding="utf-8").splitlines() if line]


def _noise(rng: np.random.Generator, frames: int, pdfs: int) -> np.ndarray:
    return rng.normal(NOISE_MEAN, NOISE_STD, size=(frames, pdfs)).astype(np.float32)


def spoken_loglikes(tm: TransitionModel, phones: list[int], rng: np.random.Generator,
                    margin: float = MARGIN, mean_state_frames: float = MEAN_STATE_FRAMES) -> np.ndarray:
    """Log-likelihoods of ``phones`` spoken in order: each of a phone's HMM states held for a
    geometric number of frames, its pdf ``margin`` above the noise. Shape (frames, num_pdfs)."""
    pdf_of = {(int(p), int(s)): int(d) for p, s, d in zip(tm.tid2phone[1:], tm.tid2hmm_state[1:], tm.tid2pdf[1:])}
    states = [pdf_of[(phone, s)] for phone in phones for s in range(HMM_STATES) if (phone, s) in pdf_of]
    spoken = np.repeat(states, rng.geometric(1.0 / mean_state_frames, size=len(states)))
    loglikes = _noise(rng, len(spoken), tm.num_pdfs)
    loglikes[np.arange(len(spoken)), spoken] += margin
    return loglikes


def plausible_loglikes(tm: TransitionModel, num_frames: int, rng: np.random.Generator,
                       lexicon: Optional[list[list[int]]] = None, margin: float = MARGIN) -> np.ndarray:
    """(num_frames, num_pdfs) log-likelihoods of random words of ``lexicon`` (or random phones)."""
    phones: list[int] = []
    choices = np.unique(tm.tid2phone[1:])
    while len(phones) * HMM_STATES * MEAN_STATE_FRAMES < 2 * num_frames:  # twice enough, then cut
        phones += lexicon[int(rng.integers(len(lexicon)))] if lexicon else [int(rng.choice(choices))]
    loglikes = spoken_loglikes(tm, phones, rng, margin)
    while len(loglikes) < num_frames:  # durations fell short: more of the same
        loglikes = np.concatenate([loglikes, spoken_loglikes(tm, phones, rng, margin)])
    return loglikes[:num_frames]


def measure_rtf(graph_dir: Path, model: Path, utterances: int = 5, frames: int = 500,
                opts: DecodeOptions = DecodeOptions(), save_lattices: bool = False,
                kind: str = "plausible", seed: int = 0, frame_rate: float = FRAME_RATE,
                margin: float = MARGIN) -> RtfResult:
    """Decode ``utterances`` of ``frames`` frames each over ``graph_dir/HCLG.fst`` and time it.

    Runs in this process (one core: the C++ decoders are single-threaded; set OMP_NUM_THREADS=1).
    ``save_lattices`` also builds each lattice, as ``[decoding] save_lattices = True`` does.
    """
    if kind not in ("plausible", "random"):
        raise ValueError(f"kind must be plausible or random, got {kind!r}")
    graph_dir = Path(graph_dir)
    start = time.perf_counter()
    graph = load_graph(graph_dir / "HCLG.fst")
    load_s = time.perf_counter() - start
    tm = read_transition_model(model)
    lexicon = _lexicon(graph_dir)
    rng = np.random.default_rng(seed)
    decode_s = 0.0
    for _ in range(utterances):
        if kind == "plausible":
            loglikes = plausible_loglikes(tm, frames, rng, lexicon, margin)
        else:
            loglikes = _noise(rng, frames, tm.num_pdfs)
        start = time.perf_counter()
        decode_utterance(loglikes, graph, tm, opts, with_lattice=save_lattices)
        decode_s += time.perf_counter() - start
    total = utterances * frames
    return RtfResult(decode_s / (total / frame_rate), total, utterances, decode_s, load_s, save_lattices, kind)
