"""``python tests/support/dying_run.py DIE_AT CFG [--set ...]``: run_exp that dies like kill -9
in training.

A test-side fault, outside the training loop: ``AcousticModel.forward`` is wrapped so that the
DIE_AT-th training forward pass of this process (counted from 1; 0 = never) calls
``os._exit(9)``: no cleanup, no ``finally``, as a SIGKILL in the middle of a batch. At a normal
exit it prints ``training batches run: N`` (forward passes in training mode), so a test can see
that a resumed run skipped the batches its checkpoint had done.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, before any install

from pytorch_kaldi_snn import run_exp  # noqa: E402
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel  # noqa: E402

DIED = 9


def die_at(number: int) -> dict:
    """Wrap the model's forward; returns the counter it keeps."""
    forward = AcousticModel.forward
    seen = {"batches": 0}

    def dying(self, features, labels):
        if self.training:
            seen["batches"] += 1
            if seen["batches"] == number:
                sys.stdout.flush()
                os._exit(DIED)
        return forward(self, features, labels)
    AcousticModel.forward = dying
    return seen


if __name__ == "__main__":
    counter = die_at(int(sys.argv[1]))
    status = run_exp.main(sys.argv[2:])
    print(f"training batches run: {counter['batches']}")
    sys.exit(status)
