"""The built-in decoder: Kaldi's LatticeFasterDecoder on pdf log-likelihoods, plus lattices.

What ``latgen-faster-mapped`` does, with pip packages:

* scores: ``DecodableMatrixScaledMapped`` gives transition-id ``t`` at frame ``i`` the score
  ``acoustic_scale * loglikes[i, tid2pdf[t]]``. We build that (T, num_tids) matrix once and
  hand it to kaldi-hmm-gmm's ``DecodableCtc``, whose ``LogLikelihood(i, t) = M[i, t - 1]``.
* 1-best: kaldi-hmm-gmm's ``LatticeFasterDecoder`` (Kaldi's own code) with ``beam``,
  ``max_active``, ``min_active`` and ``lattice_beam``; its best path gives the words, the
  transition-id alignment and the likelihood ``-(graph + scaled acoustic cost)`` exactly as
  ``DecodeUtteranceLatticeFaster`` logs it. On Kaldi's golden system it reproduces
  ``latgen-faster-mapped``'s words and alignments for every utterance.
* lattice, only when asked (``with_lattice`` / ``save_lattices``; without, decoding runs at
  the C++ decoder's speed and gives the same 1-best): kaldi-hmm-gmm does not return
  LatticeFasterDecoder's lattice, so the lattice comes from kaldi-decoder's
  ``LatticeSimpleDecoder`` (same beam and lattice beam, no max/min active: no pip decoder has
  both) and is pruned and compacted by :mod:`pytorch_kaldi_snn.io.lattice` (not
  determinized; see there).
* jobs: :func:`decode_ark` with ``nj > 1`` decodes contiguous parts of the input in worker
  processes, one ``lat.J.gz`` each (:mod:`pytorch_kaldi_snn.decoding.jobs`).
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from pytorch_kaldi_snn.decoding.graph import load_graph
from pytorch_kaldi_snn.decoding.jobs import LoglikeSource, clear_lattices, lattice_name, split_loglikes
from pytorch_kaldi_snn.config.latgen_opts import DecodeOptions
from pytorch_kaldi_snn.io.lattice import CompactLattice, RawArc, compact_from_raw, write_lattices
from pytorch_kaldi_snn.decoding.transition_model import TransitionModel, read_transition_model
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io import atomic_outputs, read_matrices, write_int_vectors
from pytorch_kaldi_snn.io.commands import worker_pool
from pytorch_kaldi_snn.kaldi_ports import kaldi_decoder, kaldi_hmm_gmm, kaldifst

import _kaldifst  # noqa: E402  (kaldifst's iterator.py does not cover Lattice; its C class does)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hypothesis:
    """One decoded utterance.

    ``likelihood`` is Kaldi's ``-(graph cost + acoustic_scale * acoustic cost)`` of the best
    path (latgen-faster-mapped logs ``likelihood / num_frames`` as "Log-like per frame").
    """

    words: list[int]
    alignment: list[int]
    likelihood: float
    lattice: Optional[CompactLattice]

    @property
    def num_frames(self) -> int:
        """Frames decoded (one transition-id per frame)."""
        return len(self.alignment)


def mapped_scores(loglikes: np.ndarray, tm: TransitionModel, acoustic_scale: float) -> np.ndarray:
    """``M[i, tid - 1] = acoustic_scale * loglikes[i, tid2pdf[tid]]`` (DecodableMatrixScaledMapped)."""
    if loglikes.ndim != 2 or loglikes.shape[1] != tm.num_pdfs:
        raise DataError(f"log-likelihoods have shape {loglikes.shape}, expected (frames, {tm.num_pdfs} pdfs)")
    if loglikes.shape[0] == 0:
        raise DataError("log-likelihood matrix has no frames")
    if not np.isfinite(loglikes).all():
        raise DataError("log-likelihoods contain NaN or infinity")
    scaled = np.float32(acoustic_scale) * loglikes.astype(np.float32, copy=False)
    return np.ascontiguousarray(scaled[:, tm.tid2pdf[1:]])


def _one_best(scores: np.ndarray, graph: "kaldifst.StdVectorFst", opts: DecodeOptions) -> tuple:
    config = kaldi_hmm_gmm.LatticeFasterDecoderConfig(
        beam=opts.beam, max_active=opts.max_active, min_active=opts.min_active, lattice_beam=opts.lattice_beam
    )
    decoder = kaldi_hmm_gmm.LatticeFasterDecoderStdVectorFst(graph, config)
    # The wrapper never reads the transition model (it only traces back the best path).
    return kaldi_hmm_gmm.decode_utterance_lattice_faster(
        decoder, kaldi_hmm_gmm.DecodableCtc(scores), kaldi_hmm_gmm.TransitionModel(), "", opts.allow_partial
    )


def _raw_lattice(scores: np.ndarray, graph: "kaldifst.StdVectorFst", opts: DecodeOptions) -> Optional[CompactLattice]:
    config = kaldi_decoder.LatticeSimpleDecoderConfig(beam=opts.beam, lattice_beam=opts.lattice_beam)
    decoder = kaldi_decoder.LatticeSimpleDecoder(graph, config)
    decoder.decode(kaldi_decoder.DecodableCtc(scores))
    # Like Kaldi's GetRawLattice: with no final state reached, every last-frame token is final.
    ok, lat = decoder.get_raw_lattice(use_final_probs=True)
    if not ok or lat.num_states == 0:
        return None
    arcs, finals = [], {}
    for state in range(lat.num_states):
        final = lat.final(state)
        if not math.isinf(final.value1):
            finals[state] = (final.value1, final.value2)
        it = _kaldifst._ArcIteratorLattice(lat, state)
        while not it.done:
            a = it.value
            arcs.append(RawArc(state, a.nextstate, a.ilabel, a.olabel, a.weight.value1, a.weight.value2))
            it.next()
    return compact_from_raw(arcs, finals, lat.start, opts.acoustic_scale, opts.lattice_beam)


def decode_utterance(
    loglikes: np.ndarray,
    graph: "kaldifst.StdVectorFst",
    tm: TransitionModel,
    opts: DecodeOptions = DecodeOptions(),
    with_lattice: bool = True,
) -> Optional[Hypothesis]:
    """Decode one utterance's pdf log-likelihoods ``(T, num_pdfs)`` with HCLG ``graph``.

    Returns None when no final state is reached and ``allow_partial`` is False (Kaldi
    skips such utterances). DataError for a wrong number of pdf columns or non-finite input.
    """
    scores = mapped_scores(loglikes, tm, opts.acoustic_scale)
    ok, alignment, words, likelihood = _one_best(scores, graph, opts)
    if not ok:
        return None
    lattice = _raw_lattice(scores, graph, opts) if with_lattice else None
    return Hypothesis(list(words), list(alignment), float(likelihood), lattice)


def write_hyp_text(path: Path, words: Mapping[str, Sequence[int]], symbol_table: Path) -> None:
    """Write ``utt word word ...`` lines (``utils/int2sym.pl -f 2-``) atomically.

    DataError when a word id is not in ``symbol_table`` (a ``words.txt``).
    """
    if not symbol_table.is_file():
        raise DataError("no word symbol table", file=str(symbol_table))
    symbols = kaldifst.SymbolTable.read_text(str(symbol_table))
    lines = []
    for utt, ids in words.items():
        names = [symbols.find(int(w)) for w in ids]
        if "" in names:
            unknown = ids[names.index("")]
            raise DataError(f"word id {unknown} is not in the symbol table", file=str(symbol_table), utt=utt)
        # utils/int2sym.pl keeps the trailing space of Kaldi's int-vector text lines.
        lines.append("".join(f"{field} " for field in [utt, *names]) + "\n")
    with atomic_outputs(path) as (temp,):
        Path(temp).write_text("".join(lines), encoding="utf-8")


def decode_job(
    loglikes: LoglikeSource,
    graph_dir: Path,
    model_path: Path,
    opts: DecodeOptions,
    lattices: Optional[Path],
    name: Optional[str] = None,
) -> tuple[dict[str, Hypothesis], int]:
    """One decoding job: its hypotheses (without lattices) and how many utterances failed.

    Writes the lattices to ``lattices`` (a ``lat.J.gz``) when it is given, else builds none.
    ``name`` is the input named in errors (the forward ark a split part came from).
    """
    graph = load_graph(graph_dir / "HCLG.fst")
    tm = read_transition_model(model_path)
    source = os.fspath(loglikes) if isinstance(loglikes, (str, os.PathLike)) else None
    items = read_matrices(source) if source is not None else loglikes
    hyps: dict[str, Hypothesis] = {}
    failed = 0
    for utt, matrix in items:
        try:
            hyp = decode_utterance(np.asarray(matrix), graph, tm, opts, with_lattice=lattices is not None)
        except DataError as err:
            raise DataError(err.message, file=name or source, utt=utt) from None
        if hyp is None:
            log.warning("decoder: no final state reached for %s and allow_partial is false; skipped", utt)
            failed += 1
            continue
        hyps[utt] = hyp
    if lattices is not None:
        write_lattices(lattices, ((u, h.lattice) for u, h in hyps.items() if h.lattice is not None))
    return {u: replace(h, lattice=None) for u, h in hyps.items()}, failed


def _run_jobs(
    loglikes: LoglikeSource, graph_dir: Path, model_path: Path, out: Path, opts: DecodeOptions,
    save_lattices: bool, nj: int,
) -> list[tuple[dict[str, Hypothesis], int]]:
    """Run ``nj`` jobs on contiguous parts of ``loglikes``, in worker processes when nj > 1."""
    lattices = [out / lattice_name(j) if save_lattices else None for j in range(1, nj + 1)]
    if nj == 1:
        return [decode_job(loglikes, graph_dir, model_path, opts, lattices[0])]
    name = os.fspath(loglikes) if isinstance(loglikes, (str, os.PathLike)) else None
    with tempfile.TemporaryDirectory(prefix="split.", dir=out) as tmp:
        parts = split_loglikes(loglikes, nj, Path(tmp))
        with worker_pool(nj) as pool:
            futures = [pool.submit(decode_job, part, graph_dir, model_path, opts, lat, name)
                       for part, lat in zip(parts, lattices)]
            return [f.result() for f in futures]


def decode_ark(
    loglikes: LoglikeSource,
    graph_dir: Union[str, os.PathLike],
    model_path: Union[str, os.PathLike],
    out_dir: Union[str, os.PathLike],
    opts: DecodeOptions = DecodeOptions(),
    save_lattices: bool = True,
    nj: int = 1,
) -> Path:
    """Decode every utterance of ``loglikes`` and write what latgen-faster-mapped writes.

    ``loglikes`` is an rspecifier or path of pdf log-likelihood matrices (``ark:``, ``scp:``,
    ``.gz``, pipes) or an iterable of ``(utt, (T, num_pdfs) array)``. ``graph_dir`` holds
    ``HCLG.fst`` and ``words.txt``; ``model_path`` is a Kaldi ``final.mdl`` (binary or text).
    Writes into ``out_dir`` (created if needed), each file atomically:
    ``lat.J.gz`` per job (binary CompactLattice archive, gzipped; only with ``save_lattices``,
    which otherwise skips building lattices: the 1-best runs at the C++ decoder's speed),
    ``num_jobs``, ``best_words.txt`` and ``best_ali.txt`` (int-vector text arks) and
    ``hyp.txt`` (``utt word word ...``). ``nj > 1`` decodes contiguous parts of ``loglikes``
    in that many worker processes (same hypotheses as one job). Utterances that fail (no
    final state with ``allow_partial=False``) are logged and left out, as Kaldi does;
    DataError if none succeeds. Returns ``out_dir``.
    """
    graph_dir, out = Path(graph_dir), Path(out_dir)
    if nj < 1:
        raise ValueError("nj must be at least 1")
    out.mkdir(parents=True, exist_ok=True)
    clear_lattices(out)
    hyps: dict[str, Hypothesis] = {}
    failed = 0
    for job_hyps, job_failed in _run_jobs(loglikes, graph_dir, Path(model_path), out, opts, save_lattices, nj):
        hyps.update(job_hyps)
        failed += job_failed
    if not hyps:
        raise DataError(f"no utterance could be decoded ({failed} failed)", file=str(graph_dir / "HCLG.fst"))
    _log_likelihoods(hyps, failed)
    with atomic_outputs(out / "num_jobs") as (temp,):
        Path(temp).write_text(f"{nj}\n", encoding="utf-8")
    write_int_vectors(out / "best_words.txt", ((u, h.words) for u, h in hyps.items()), text=True)
    write_int_vectors(out / "best_ali.txt", ((u, h.alignment) for u, h in hyps.items()), text=True)
    write_hyp_text(out / "hyp.txt", {u: h.words for u, h in hyps.items()}, graph_dir / "words.txt")
    return out


def _log_likelihoods(hyps: Mapping[str, Hypothesis], failed: int) -> None:
    """latgen-faster-mapped's per-utterance and overall "Log-like per frame" lines."""
    total_like = total_frames = 0.0
    for utt, hyp in hyps.items():
        per_frame = hyp.likelihood / max(hyp.num_frames, 1)
        log.info("Log-like per frame for utterance %s is %.6g over %d frames.", utt, per_frame, hyp.num_frames)
        total_like += hyp.likelihood
        total_frames += hyp.num_frames
    log.info(
        "Done %d utterances, failed for %d; overall log-likelihood per frame is %.6g over %d frames.",
        len(hyps), failed, total_like / max(total_frames, 1), total_frames,
    )
