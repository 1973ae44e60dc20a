"""Decode the forwarded test set and score it as Kaldi's egs do.

Decoding: Kaldi's latgen-faster-mapped when installed, else the built-in decoder (both through
the decoding package's bridge), at the cfg's ``acwt``. Scoring: the 1-best at that ``acwt`` is
kept for reference, and the reported figure is the best over the ``scoring_opts`` sweep of LM
weights (and word insertion penalties) on the lattices (:mod:`pytorch_kaldi_snn.scoring.lm_sweep`),
of the best path or, with ``--decode-mbr true``, of MBR decoding, rescored by Kaldi's lattice
binaries when they are installed and built in otherwise. The figure is named PER when the
graph's words are phones, else WER. With ``[decoding] save_lattices = False`` no lattices are
written and the 1-best at ``acwt`` is the reported figure (logged, and named in ``scored_on``).
``[decoding] nj`` decodes in parallel jobs.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from pytorch_kaldi_snn.config.datasets import DatasetSpec
from pytorch_kaldi_snn.config.experiment import DecodingSettings
from pytorch_kaldi_snn.config.scoring_opts import ScoringOptions
from pytorch_kaldi_snn.decoding import DecodeOptions, decode_and_score
from pytorch_kaldi_snn.decoding.kaldi_bridge import DecodeRun, kaldi_search_path
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.scoring import ErrorCounts, read_transcripts, timit_fold_map
from pytorch_kaldi_snn.scoring.decoded import DecodeResult, Score, metric_of
from pytorch_kaldi_snn.scoring.lm_sweep import (
    builtin_hypotheses, kaldi_hypotheses, rescoring_binaries, sweep,
    write_hypotheses,
)

DECODE_DIR = "decode_test"
BEST_HYP = "hyp_best.txt"  # the hypotheses of the reported (best) sweep row
# Its compute-wer report, beside ``score.txt`` (the bridge's report of ``hyp.txt``, the 1-best
# at acwt), so that each file scores the hypotheses it is named for.
BEST_SCORE = "score_best.txt"


def _rescorer(lattices: List[Path], words_txt: Path, opts: ScoringOptions):
    path = kaldi_search_path()
    if all(shutil.which(b, path=path) for b in rescoring_binaries(opts.decode_mbr)):
        return "kaldi", kaldi_hypotheses(lattices, words_txt, path, opts.decode_mbr)
    return "builtin", builtin_hypotheses(lattices, words_txt, opts.decode_mbr)


def decode_options(settings: DecodingSettings) -> DecodeOptions:
    """The cfg's ``[decoding]`` beams and acoustic scale as the decoders take them."""
    return DecodeOptions(acoustic_scale=settings.acwt, beam=settings.beam,
                         max_active=settings.max_active, min_active=settings.min_active,
                         lattice_beam=settings.latbeam, max_mem=settings.max_mem)


def _one_best_only(settings: DecodingSettings, metric: str, one_best: ErrorCounts, run: DecodeRun,
                   out: Path, log: logging.Logger) -> Score:
    """With ``save_lattices = False`` there is nothing to sweep: the 1-best at ``acwt`` is the
    reported figure, and the log and the results say so (``scored_on``)."""
    log.info(f"scoring: save_lattices = False: no lattices, so no LM-weight sweep over "
             f"{settings.scoring.as_opts()}; the reported {metric} is the 1-best at acwt {settings.acwt:g}")
    for stale in (BEST_HYP, BEST_SCORE):  # an earlier decode's sweep: not this decode's figure
        (run.out_dir / stale).unlink(missing_ok=True)
    return _score(metric, one_best, settings, one_best, run.out_dir / "hyp.txt", out,
                  scored_on=f"1-best at acwt {settings.acwt:g} (save_lattices = False: no LM-weight sweep)")


def _score(metric: str, counts: ErrorCounts, settings: DecodingSettings, one_best: ErrorCounts,
           hyp: Path, out: Path, *, scored_on: str, rescoring: Optional[str] = None,
           decode_mbr: Optional[bool] = None, best_lmwt: Optional[int] = None,
           best_wip: Optional[float] = None, sweep: Sequence[Dict[str, float]] = ()) -> Score:
    """The reported figure ``counts`` (the sweep's best, or the 1-best without a sweep)."""
    return Score(metric=metric, error_rate=counts.error_rate, ins=counts.ins, dels=counts.dels,
                 subs=counts.subs, ref_tokens=counts.ref_words, scored_on=scored_on,
                 rescoring=rescoring, decode_mbr=decode_mbr, best_lmwt=best_lmwt,
                 best_wip=best_wip, sweep=list(sweep), one_best_acwt=settings.acwt,
                 one_best_error_rate=one_best.error_rate, hyp=str(hyp),
                 decode_dir=str(out / DECODE_DIR))


def decode_test(settings: DecodingSettings, test: DatasetSpec, counts_from: str, ark: Path,
                out: Path, log: logging.Logger) -> DecodeResult:
    """Decode the forward ``ark`` of ``test`` over the graph of its ``counts_from`` label set,
    then the Kaldi-style sweep."""
    lab = test.label_set(counts_from)  # its graph, final.mdl and reference text
    fold = timit_fold_map(settings.scoring_fold) if settings.scoring_fold else None
    ref = None if settings.skip_scoring else lab.data_folder / "text"
    log.info(f"decoding {test.name} over {lab.graph} (beam {settings.beam:g}, "
             f"{settings.nj} job{'s' if settings.nj > 1 else ''}; a minute or more on a CPU)")
    start = time.monotonic()
    run = decode_and_score(ark, lab.graph, lab.folder / "final.mdl", out / DECODE_DIR,
                           decode_options(settings), ref_text=ref, mode=settings.scoring_mode,
                           phone_map=fold, save_lattices=settings.save_lattices, nj=settings.nj)
    which = "latgen-faster-mapped" if run.decoder == "kaldi" else "no Kaldi binaries found"
    log.info(f"decoding: {run.decoder} decoder ({which}), graph {lab.graph} "
             f"({time.monotonic() - start:.0f} s)")
    if run.counts is None:
        log.info("scoring: skipped (skip_scoring = True)")
        return DecodeResult(run.decoder)
    metric = metric_of(lab.graph)
    one_best = run.counts
    log.info(f"scoring: 1-best at acwt {settings.acwt:g}: "
             + one_best.kaldi_report().splitlines()[0].replace("%WER", metric))
    if not run.lattices:
        return DecodeResult(run.decoder, _one_best_only(settings, metric, one_best, run, out, log))
    log.info(f"scoring: LM-weight sweep {settings.scoring.as_opts()} on the lattices")
    start = time.monotonic()
    rescorer, hyps = _rescorer(list(run.lattices), lab.graph / "words.txt", settings.scoring)
    result = sweep(read_transcripts(ref), hyps, settings.scoring, settings.scoring_mode, fold)
    best = result.best
    write_hypotheses(run.out_dir / BEST_HYP, best.hypotheses)
    atomic_write(run.out_dir / BEST_SCORE,
                 lambda tmp: tmp.write_text(best.counts.kaldi_report(), encoding="utf-8"))
    log.info(f"scoring: best over {settings.scoring.as_opts()} ({rescorer} rescoring): "
             f"{metric} {best.counts.error_rate:.2f} at LMWT {best.lmwt}, WIP {best.wip:g} "
             f"({time.monotonic() - start:.0f} s)")
    return DecodeResult(run.decoder, _score(
        metric, best.counts, settings, one_best, run.out_dir / BEST_HYP, out,
        scored_on=f"best of the LM-weight sweep {settings.scoring.as_opts()}", rescoring=rescorer,
        decode_mbr=settings.scoring.decode_mbr, best_lmwt=best.lmwt, best_wip=best.wip,
        sweep=result.table()))
