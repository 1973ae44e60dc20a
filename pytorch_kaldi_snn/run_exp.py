"""``run_exp.sh CFG [--set section.key=value ...]``: train, forward, decode, score, report.

Stages, each resumable (rerun the same command after an interruption):

1. validate the cfg (prepare the built-in corpus first if ``[exp] prepare`` says how);
2. train with validation each epoch, an atomic checkpoint per epoch (and, with ``[exp]
   checkpoint_every_batches`` / ``checkpoint_every_minutes``, inside epochs);
3. forward the test set (log-posteriors minus log-priors into ``forward_test.ark``);
4. decode and score (Kaldi's ``latgen-faster-mapped`` when present, else the built-in decoder);
5. write ``results.json``, ``results.md`` and the plots.

Bad input (cfg or data) prints one line naming the file, section and key (or utterance) and
exits with code 2.

``torchrun --standalone --nproc_per_node=N -m pytorch_kaldi_snn.run_exp CFG`` with ``[exp]
multi_gpu = True`` trains data-parallel (:mod:`pytorch_kaldi_snn.train.distributed`): rank 0
runs every stage above and alone writes; the other ranks wait for it, train and evaluate their
shares, and stop after training.
"""
from __future__ import annotations

if __name__ == "__main__":  # before `import torch` loads OpenMP, which reads its wait policy once
    from pytorch_kaldi_snn.threads import bootstrap
    bootstrap()

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from pytorch_kaldi_snn.cli import command_parser, run_interruptible
from pytorch_kaldi_snn.pipeline.runner import run_experiment


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = command_parser("pytorch_kaldi_snn.run_exp",
                            "Train, forward, decode and score one cfg experiment (./run_exp.sh "
                            "runs this same command).")
    parser.add_argument("cfg", type=Path, help="experiment cfg (PyTorch-Kaldi format)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a cfg option (repeatable)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    return run_interruptible("error", lambda: run_experiment(args.cfg, args.overrides))


if __name__ == "__main__":
    sys.exit(main())
