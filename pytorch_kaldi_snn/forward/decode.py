"""Decode the forwarded test set and score it: Kaldi's latgen-faster-mapped when installed,
else the built-in decoder (both through the decoding package's bridge)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict

from pytorch_kaldi_snn.config.experiment import DecodingSettings, Experiment
from pytorch_kaldi_snn.decoding import DecodeOptions, decode_and_score
from pytorch_kaldi_snn.scoring import timit_fold_map

DECODE_DIR = "decode_test"


def decode_options(settings: DecodingSettings) -> DecodeOptions:
    """The cfg's ``[decoding]`` beams and acoustic scale as the decoders take them."""
    return DecodeOptions(acoustic_scale=settings.acwt, beam=settings.beam,
                         max_active=settings.max_active, min_active=settings.min_active,
                         lattice_beam=settings.latbeam)


def decode_test(exp: Experiment, ark: Path, out: Path, log: logging.Logger) -> Dict[str, Any]:
    """PER of the test set against ``lab_data_folder/text`` with the label set's graph and model."""
    test = exp.datasets[exp.data_use.forward_with]
    lab = next(lab for lab in test.labels if lab.name == exp.forward.normalize_with_counts_from)
    settings = exp.decoding
    fold = timit_fold_map(settings.scoring_fold) if settings.scoring_fold else None
    run = decode_and_score(ark, lab.graph, lab.folder / "final.mdl", out / DECODE_DIR,
                           decode_options(settings),
                           ref_text=lab.data_folder / "text", mode=settings.scoring_mode,
                           phone_map=fold)
    counts = run.counts
    which = "latgen-faster-mapped" if run.decoder == "kaldi" else "no Kaldi binaries found"
    summary = counts.kaldi_report().splitlines()[0].replace("%WER", "PER")
    log.info(f"decoding: {run.decoder} decoder ({which}), graph {lab.graph}; {summary}")
    return {"per": counts.error_rate, "decoder": run.decoder, "ins": counts.ins,
            "del": counts.dels, "sub": counts.subs, "ref_phones": counts.ref_words,
            "decode_dir": str(out / DECODE_DIR)}
