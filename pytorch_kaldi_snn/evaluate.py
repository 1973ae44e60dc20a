"""Score a finished experiment on another prepared test set, without retraining::

    python -m pytorch_kaldi_snn.evaluate exp/synth_snn_v2 --data recipes/synth/data/mydata \\
        --ali recipes/synth/exp/mono_ali_mydata

The set is one made by :mod:`pytorch_kaldi_snn.prepare_set` (or any data dir with feats.scp,
cmvn_speaker.ark, utt2spk and a phone ``text``, and an alignment dir made with the experiment's
GMM). The experiment's checkpoint, priors, feature pipe, graph and scoring settings are reused.
Outputs: ``<exp>/eval_<name>/`` (``forward_test.ark``, ``decode_test/``, ``log.log``) and
``<exp>/results_<name>.json`` beside the experiment's own ``results.json``: the test metrics of
that set only (no training history or wall time, which belong to the training run).
"""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from pytorch_kaldi_snn.cli import command_parser, run_interruptible
from pytorch_kaldi_snn.data.streamed import open_source
from pytorch_kaldi_snn.errors import DataError, UserInputError
from pytorch_kaldi_snn.forward import forward_test
from pytorch_kaldi_snn.forward.decode import decode_test
from pytorch_kaldi_snn.io.lock import FolderInUse, folder_lock
from pytorch_kaldi_snn.report.results import test_metrics
from pytorch_kaldi_snn.scoring.decoded import NOT_DECODED
from pytorch_kaldi_snn.pipeline.logs import errors_logged, open_log
from pytorch_kaldi_snn.pipeline.stages import labels_read, main_arch
from pytorch_kaldi_snn.train.checkpoint import save_json
from pytorch_kaldi_snn.trained import check_finished, dataset_at, load_trained


def results_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"results_{name}.json"


def evaluate_set(folder: Path, data_dir: Path, ali_dir: Path, name: Optional[str] = None) -> Dict[str, Any]:
    """Forward, decode and score the set in ``data_dir``; returns what results_<name>.json holds.

    Holds the experiment folder's lock (run_exp's): a second evaluate, or a run, on the same
    folder is refused while this one writes there."""
    name = name or Path(data_dir).resolve().name
    if not re.fullmatch(r"\w[\w.-]*", name):
        raise DataError(f"set name {name!r} is not a plain file name; pass --name", file=str(data_dir))
    check_finished(Path(folder))
    try:
        with folder_lock(Path(folder)):
            log = open_log(Path(folder) / f"eval_{name}")
            with errors_logged(log):
                return _evaluate_locked(Path(folder), Path(data_dir), Path(ali_dir), name, log)
    except FolderInUse as busy:
        raise UserInputError(f"{busy}; wait for it to finish") from None


def _evaluate_locked(folder: Path, data_dir: Path, ali_dir: Path, name: str,
                     log: logging.Logger) -> Dict[str, Any]:
    out = folder / f"eval_{name}"
    log.info(f"evaluate {folder} on {data_dir} (alignments {ali_dir})")
    trained = load_trained(folder, log)
    spec = dataset_at(trained, data_dir, ali_dir, name)
    exp = trained.exp
    data = open_source(spec, exp.features_used(), labels_read(exp), log)
    forwarded = forward_test(exp, trained.model, data, trained.offsets, trained.device, out)
    decoded = (NOT_DECODED if not exp.forward.require_decoding
               else decode_test(exp.decoding, spec, exp.forward.normalize_with_counts_from,
                                forwarded.ark, out, log))
    results = {
        "set": name,
        **test_metrics(arch=main_arch(exp), frame_err=forwarded.frame_err,
                       report=forwarded.report, decoded=decoded),
        "utterances": len(data.utts),
        "data": str(data_dir),
        "alignments": str(ali_dir),
        "test_loss": forwarded.loss,
        **decoded.results_fields(),
    }
    save_json(results_path(folder, name), results)
    rate = decoded.error_rate
    score = "not decoded" if rate is None else f"{decoded.metric} {rate:.2f}%"
    log.info(f"{name}: {score}, frame accuracy {results['frame_acc']:.2f}% "
             f"-> {results_path(folder, name)}")
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.evaluate", __doc__)
    parser.add_argument("exp", type=Path, help="finished experiment folder (its out_folder)")
    parser.add_argument("--data", type=Path, required=True, help="prepared data dir of the set")
    parser.add_argument("--ali", type=Path, required=True, help="its alignment dir")
    parser.add_argument("--name", help="set name for results_<name>.json (default: the data dir's name)")
    args = parser.parse_args(argv)
    return run_interruptible("evaluate", lambda: evaluate_set(args.exp, args.data, args.ali, args.name))


if __name__ == "__main__":
    sys.exit(main())
