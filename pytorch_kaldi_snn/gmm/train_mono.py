"""Recipe step: train the monophone GMM from the synthesizer's alignment and realign every set.

The equivalent of ``steps/train_mono.sh`` + ``steps/align_si.sh`` for the synthetic corpus::

    python -m pytorch_kaldi_snn.gmm.train_mono --lang data/lang --feats data/mfcc \\
        --data data --exp exp --sets train,dev,test

Inputs: ``<feats>/<set>/{feats.scp,cmvn.scp,utt2spk}`` (13-dim MFCC and per-speaker CMVN
stats), ``<data>/<set>/text`` (phone transcripts) and ``<data>/train/ali.txt`` (the
synthesizer's frame labels). GMM features are MFCC + per-speaker mean normalisation +
deltas (order 2, window 2), train_mono's defaults (``cmvn_opts`` empty).
Outputs: ``<exp>/mono/{final.mdl,tree,ali.1.gz,num_jobs,cmvn_opts}`` and
``<exp>/mono_ali_<set>/{ali.1.gz,final.mdl,tree,num_jobs}``.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.features.transforms import add_deltas, apply_cmvn
from pytorch_kaldi_snn.gmm.agreement import read_reference
from pytorch_kaldi_snn.gmm.labels import write_ali_dir
from pytorch_kaldi_snn.gmm.model_io import write_model
from pytorch_kaldi_snn.gmm.topology import build_hmm_system
from pytorch_kaldi_snn.gmm.train import MonoConfig, log_failed, train_mono
from pytorch_kaldi_snn.io.tables import read_symbol_table
from pytorch_kaldi_snn.io.data_dir import DataDir
from pytorch_kaldi_snn.io.tables import atomic_outputs, read_double_matrices, read_kaldi_map, read_matrices

log = logging.getLogger("train_mono")


def gmm_features(feats_dir: Path) -> dict[str, np.ndarray]:
    """``apply-cmvn --utt2spk`` (means only) then ``add-deltas`` over a data dir's feats.scp."""
    data = DataDir.load(Path(feats_dir))
    if data.feats is None or data.cmvn is None:
        raise DataError("needs feats.scp and cmvn.scp", file=str(feats_dir))
    cmvn = dict(read_double_matrices(Path(feats_dir) / "cmvn.scp"))
    feats = read_matrices(Path(feats_dir) / "feats.scp")
    return {utt: add_deltas(apply_cmvn(mat, cmvn[data.utt2spk[utt]])) for utt, mat in feats}


def phone_transcripts(text: Path, phone_ids: dict[str, int]) -> dict[str, list[int]]:
    """``text`` (phone symbols, TIMIT style) as phone ids."""
    transcripts = {}
    for utt, line in read_kaldi_map(text).items():
        unknown = [p for p in line.split() if p not in phone_ids]
        if unknown:
            message = f"not phones of the lang dir: {unknown[:3]} (is text still the word transcript?)"
            raise DataError(message, file=str(text), utt=utt)
        transcripts[utt] = [phone_ids[p] for p in line.split()]
    return transcripts


def _write_text(path: Path, text: str) -> None:
    with atomic_outputs(path) as (temp,):
        Path(temp).write_text(text, encoding="utf-8")


def run(lang: Path, feats_root: Path, data_root: Path, exp: Path, sets: Sequence[str], config: MonoConfig) -> None:
    """Train on ``train``, write exp/mono, then align each of ``sets`` into exp/mono_ali_<set>."""
    phone_ids = read_symbol_table(lang / "phones.txt")
    topo_text = (lang / "topo").read_text(encoding="utf-8")
    hmm = build_hmm_system(topo_text)
    feats = gmm_features(feats_root / "train")
    reference = read_reference(data_root / "train" / "ali.txt", phone_ids)
    log.info("training on %d utterances, %d frames", len(feats), sum(len(m) for m in feats.values()))
    model, aligner = train_mono(hmm, feats, {u: reference[u] for u in feats}, config)
    mono = exp / "mono"
    mono.mkdir(parents=True, exist_ok=True)
    write_model(mono / "final.mdl", model.trans_model, model.am, topo_text)
    with atomic_outputs(mono / "tree") as (temp,):
        hmm.tree.write(True, temp)  # Kaldi's binary tree (byte-identical to gmm-init-mono's)
    _write_text(mono / "cmvn_opts", "\n")
    log.info("model: %d pdfs, %d Gaussians; log-like/frame by iteration %s",
             model.am.num_pdfs, model.am.num_gauss, " ".join(f"{x:.2f}" for x in model.history))
    for name in sets:
        set_feats = feats if name == "train" else gmm_features(feats_root / name)
        transcripts = phone_transcripts(data_root / name / "text", phone_ids)
        alignments = aligner.align_all(model, set_feats, transcripts)
        log_failed(set_feats, alignments)
        log.info("%s: aligned %d of %d utterances", name, len(alignments), len(set_feats))
        write_ali_dir(exp / f"mono_ali_{name}", alignments, mono)
        if name == "train":
            write_ali_dir(mono, alignments, mono)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.gmm.train_mono", __doc__)
    parser.add_argument("--lang", type=Path, required=True, help="lang dir")
    parser.add_argument("--feats", type=Path, required=True, help="root of the MFCC data dirs (<feats>/<set>/)")
    parser.add_argument("--data", type=Path, required=True, help="root of the data dirs (text, ali.txt)")
    parser.add_argument("--exp", type=Path, required=True, help="exp dir to write (mono/, mono_ali_<set>/)")
    parser.add_argument("--sets", default="train,dev,test", help="comma-separated sets to realign")
    parser.add_argument("--num-iters", type=int, default=MonoConfig.num_iters,
                        help="EM iterations")
    parser.add_argument("--tot-gauss", type=int, default=MonoConfig.tot_gauss,
                        help="target number of Gaussians")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_reporting_errors("train_mono", lambda: run(
        args.lang, args.feats, args.data, args.exp, args.sets.split(","),
        MonoConfig(num_iters=args.num_iters, tot_gauss=args.tot_gauss)))


if __name__ == "__main__":
    sys.exit(main())
