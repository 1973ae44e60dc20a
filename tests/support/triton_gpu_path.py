"""Child process of tests/kernels/test_gpu_path.py, with TRITON_INTERPRET=1 set before triton loads.

``python tests/support/triton_gpu_path.py OUT.json``: the first-launch check under ``auto`` on CPU
tensors (AUTO_TRITON_DEVICES widened to the CPU, where the interpreter runs the kernels), the
gpu_check equality section on the Triton kernels, and int64 offsets in a kernel.
"""
from __future__ import annotations

import json
import logging
import os
import sys

if os.environ.get("TRITON_INTERPRET") != "1":
    raise SystemExit("set TRITON_INTERPRET=1 before running this (it must precede import)")

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from pytorch_kaldi_snn.kernels.triton_kernels import _wide  # noqa: E402


@triton.jit
def offsets(out, t, B, n):
    """The time offset as the kernels compute it (``t * _wide(B * n)``), and in int32."""
    tl.store(out, t * _wide(B * n))
    tl.store(out + 1, (t * (B * n)).to(tl.int64))


def wide_offsets() -> dict:
    """t·(B·2n) for T = 4096, B = 64, n = 4096 (past 2^31): int64 against int32."""
    out = torch.zeros(2, dtype=torch.int64)
    offsets[(1,)](out, 4096, 64, 2 * 4096)
    return {"wide": int(out[0]), "narrow": int(out[1])}


def main(path: str) -> int:
    from pytorch_kaldi_snn import gpu_check
    from pytorch_kaldi_snn.kernels import backend, fused

    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(  # type: ignore[method-assign]
        (record.levelname, record.getMessage()))
    logging.getLogger("pytorch_kaldi_snn.kernels").addHandler(handler)
    logging.getLogger("pytorch_kaldi_snn.kernels").setLevel(logging.INFO)
    backend.AUTO_TRITON_DEVICES = ("cuda", "cpu")
    report = {"auto": backend.choose(torch.zeros(1, 1, 8), fused.triton_check),
              "equality": gpu_check.equality(torch.device("cpu"), "triton",
                                             gpu_check.TINY["equal"]),
              "wide": wide_offsets(), "log": records}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
