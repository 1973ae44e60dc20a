"""Recipe step: align a new data dir with an already trained monophone GMM (``steps/align_si.sh``).

No retraining: the GMMs and transition probabilities are read from ``<model>/final.mdl``::

    python -m pytorch_kaldi_snn.gmm.align --lang data/lang --model exp/mono \\
        --feats data/mfcc/mine --text data/mine/text --out exp/mono_ali_mine

Inputs: the lang dir the model was trained with, the model dir (``final.mdl``, ``tree``), a
data dir of 13-dim MFCCs with ``cmvn.scp`` (the GMM's features, made with the training set's
``conf/mfcc.conf``) and a phone transcript ``text``. Output: an alignment dir
(``ali.1.gz``, ``final.mdl``, ``tree``, ``num_jobs``) that a cfg's ``lab_folder`` names.
Utterances whose alignment fails even with the retry beam are left out and named in one log
line, as Kaldi does (prepare_set names them in its own line, with what becomes of them).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Set

import numpy as np

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.corpus.alignment import run_labels
from pytorch_kaldi_snn.decoding.transition_model import read_transition_model
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.gmm.labels import frame_labels, write_ali_dir
from pytorch_kaldi_snn.gmm.model_io import load_trans_model, read_am_diag_gmm
from pytorch_kaldi_snn.gmm.topology import build_hmm_system
from pytorch_kaldi_snn.gmm.train import Aligner, MonoConfig, MonoModel, log_failed
from pytorch_kaldi_snn.gmm.train_mono import gmm_features, phone_transcripts
from pytorch_kaldi_snn.gmm.lexicon_fst import SIL_PROB, ConnectedSpeech, lexicon_fst
from pytorch_kaldi_snn.gmm.pron_probs import PronProbs
from pytorch_kaldi_snn.io.tables import read_kaldi_map, read_symbol_table

log = logging.getLogger("align")


def load_model(lang: Path, model_dir: Path) -> MonoModel:
    """The trained monophone system of ``model_dir`` over ``lang``'s topology."""
    topo_text = (Path(lang) / "topo").read_text(encoding="utf-8")
    hmm = build_hmm_system(topo_text)
    hmm.trans_model = load_trans_model(Path(model_dir) / "final.mdl", topo_text)
    return MonoModel(hmm, read_am_diag_gmm(Path(model_dir) / "final.mdl"))


def _checked_features(model: MonoModel, feats_dir: Path, utts_with_text: Set[str], text: str) -> Dict[str, np.ndarray]:
    feats = gmm_features(feats_dir)
    missing = sorted(set(feats) - utts_with_text)
    if missing:
        raise DataError("has features but no transcript", file=text, utt=missing[0])
    dim = next(iter(feats.values())).shape[1]
    if dim != model.am.dim:
        raise DataError(f"features have {dim} dims, the GMM {model.am.dim}", file=str(feats_dir))
    return feats


def _align_and_write(model: MonoModel, aligner: Aligner, feats: Mapping[str, np.ndarray],
                     transcripts: Mapping[str, Sequence[int]], model_dir: Path, out: Path) -> Dict[str, np.ndarray]:
    alignments = aligner.align_all(model, feats, transcripts)
    if not alignments:
        raise DataError("no utterance could be aligned", file=str(out))
    write_ali_dir(Path(out), alignments, Path(model_dir))
    log.info("aligned %d of %d utterances -> %s", len(alignments), len(feats), out)
    return alignments


def align_set(lang: Path, model_dir: Path, feats_dir: Path, text: Path, out: Path,
              config: MonoConfig = MonoConfig()) -> Dict[str, np.ndarray]:
    """Align every utterance of ``feats_dir`` to its phone ``text``; returns the alignments
    (transition-ids) of those that aligned."""
    model = load_model(lang, model_dir)
    transcripts = phone_transcripts(text, read_symbol_table(Path(lang) / "phones.txt"))
    feats = _checked_features(model, feats_dir, set(transcripts), str(text))
    aligner = Aligner(model.hmm, model.hmm.topo.phones, config)
    return _align_and_write(model, aligner, feats, transcripts, model_dir, out)


def align_words(lang: Path, model_dir: Path, feats_dir: Path, words: Mapping[str, Sequence[str]],
                lexicon: Mapping[str, Sequence[Sequence[str]]], out: Path, text: str,
                sil_prob: float = SIL_PROB, speech: ConnectedSpeech = ConnectedSpeech(),
                config: MonoConfig = MonoConfig(), pron_probs: PronProbs = PronProbs()) -> Dict[str, List[str]]:
    """Align every utterance of ``feats_dir`` to its ``words`` through ``lexicon`` (every word in
    it, each alternative with its ``pron_probs``), with optional silence between words and the
    closures and glides of ``speech``; returns each aligned utterance's phones, runs collapsed
    (the pronunciations, silences and glides the audio chose). ``text`` names the transcript."""
    model = load_model(lang, model_dir)
    phone_ids = read_symbol_table(Path(lang) / "phones.txt")
    vocabulary = sorted({w for line in words.values() for w in line})
    word_ids = {w: i for i, w in enumerate(vocabulary, 1)}
    lexicon_ids = {word_ids[w]: lexicon[w] for w in vocabulary}
    said = {word_ids[w]: pron_probs.of(w, lexicon[w]) for w in vocabulary}
    probabilities = {i: p for i, p in said.items() if p is not None}  # words the training set said
    feats = _checked_features(model, feats_dir, set(words), text)
    aligner = Aligner(model.hmm, model.hmm.topo.phones, config,
                      lexicon=lexicon_fst(lexicon_ids, phone_ids, sil_prob, speech, probabilities))
    transcripts = {utt: [word_ids[w] for w in line] for utt, line in words.items()}
    alignments = _align_and_write(model, aligner, feats, transcripts, model_dir, out)
    symbols = {i: p for p, i in phone_ids.items()}
    phones = frame_labels(alignments, read_transition_model(Path(model_dir) / "final.mdl"), "phone")
    return {utt: [symbols[int(i)] for i in run_labels(ids)] for utt, ids in phones.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.gmm.align", __doc__)
    parser.add_argument("--lang", type=Path, required=True, help="lang dir the model was trained with")
    parser.add_argument("--model", type=Path, required=True, help="dir with final.mdl and tree")
    parser.add_argument("--feats", type=Path, required=True, help="MFCC data dir (feats.scp, cmvn.scp)")
    parser.add_argument("--text", type=Path, required=True, help="phone transcripts")
    parser.add_argument("--out", type=Path, required=True, help="alignment dir to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_reporting_errors("align", lambda: _align_command(args))


def _align_command(args: argparse.Namespace) -> None:
    """Align, then name in one log line the utterances of ``feats.scp`` that failed."""
    alignments = align_set(args.lang, args.model, args.feats, args.text, args.out)
    log_failed(read_kaldi_map(args.feats / "feats.scp"), alignments)


if __name__ == "__main__":
    sys.exit(main())
