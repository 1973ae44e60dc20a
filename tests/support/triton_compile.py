"""Compile every Triton kernel specialisation the fused recurrence and batch-1 streaming launch,
for a CUDA target, without a GPU; run in a subprocess by tests/kernels/test_triton_kernels.py.

``python tests/support/triton_compile.py OUT.json [ARCH]`` (ARCH default 90, the H100/H200)
compiles with the tiles and options of ``kernels.triton_fused`` / ``kernels.triton_streaming``
and Triton's bundled ptxas, then reads each cubin's registers and stack bytes with the bundled
``cuobjdump``. The interpreter tests check what
the kernels compute; this checks that the compiler accepts them (it is stricter than the
interpreter: dtypes of ``tl.dot`` accumulators, one return per function) and that they do not
spill. TRITON_INTERPRET must not be set.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Dict, Iterator, Optional, Tuple

INTS = {"T", "B", "n", "m"}
POINTERS = {"count": "*i64"}  # pointer arguments not of the data's dtype
Spec = Tuple[str, str, Dict[str, object]]  # kernel name, dtype, constexprs (None = no pointer)


def specialisations() -> Iterator[Spec]:
    """What ``TritonRecurrence`` launches: traditional (β fixed or learned), v1 and v2 (the same
    gated kernel, v2's a step at a time); every surrogate code in float32, one in float64. Then
    ``triton_streaming.launch``'s three."""
    from pytorch_kaldi_snn.kernels.triton_kernels import SURROGATES
    from pytorch_kaldi_snn.neurons.surrogate import surrogate_code

    for dtype in ("fp32", "fp64"):
        kinds = sorted(map(surrogate_code, SURROGATES)) if dtype == "fp32" else [0]
        yield "pointwise_fwd", dtype, {"GATED": False, "f_buf": None, "c_buf": None}
        yield "pointwise_fwd", dtype, {"GATED": True, "beta": None}
        # v2's per-step launches: Triton specialises the integer T = 1 as a constant
        yield "pointwise_fwd", dtype, {"GATED": True, "beta": None, "T": 1}
        for kind in kinds:
            yield "pointwise_bwd", dtype, {"GATED": False, "LEARN_BETA": False, "KIND": kind,
                                           "f_buf": None, "c_buf": None, "i_buf": None,
                                           "d_beta": None}
            yield "pointwise_bwd", dtype, {"GATED": False, "LEARN_BETA": True, "KIND": kind,
                                           "f_buf": None, "c_buf": None}
            yield "pointwise_bwd", dtype, {"GATED": True, "LEARN_BETA": False, "KIND": kind,
                                           "beta": None, "d_beta": None}
            yield "pointwise_bwd", dtype, {"GATED": True, "LEARN_BETA": False, "KIND": kind,
                                           "beta": None, "d_beta": None, "T": 1}
    for dtype in ("fp32", "fp64"):
        yield "stream_step", dtype, {"GATED": False, "RECURRENT": False, "w_rec": None}
        yield "stream_step", dtype, {"GATED": True, "RECURRENT": False, "w_rec": None,
                                     "beta": None}
        yield "stream_step", dtype, {"GATED": True, "RECURRENT": True, "beta": None}


def _kernel(name: str):
    """The jit function called ``name`` and the tiles its launch uses."""
    from pytorch_kaldi_snn.kernels import triton_fused, triton_streaming
    from pytorch_kaldi_snn.kernels import triton_kernels as tk

    if name == "stream_step":
        return triton_streaming.stream_step, triton_streaming.STREAM_TILES
    return getattr(tk, name), triton_fused.TILES


def _usage(cubin: bytes, bindir: str) -> Optional[Dict[str, int]]:
    """Registers and stack bytes per thread from ``cuobjdump -res-usage``, or None without it."""
    tool = os.path.join(bindir, "cuobjdump")
    if not os.path.exists(tool):
        return None
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        out = subprocess.run([tool, "-res-usage", handle.name], capture_output=True, text=True,
                             check=True).stdout
    found = re.search(r"REG:(\d+)\s+STACK:(\d+)", out)
    return None if found is None else {"registers": int(found[1]), "stack": int(found[2])}


def compile_all(arch: int) -> Dict[str, object]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from pytorch_kaldi_snn.kernels import triton_fused

    bindir = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    report = {}
    for name, dtype, consts in specialisations():
        fn, tiles = _kernel(name)
        consts = {**consts, **tiles}
        signature = {arg: "constexpr" if arg in consts else "i32" if arg in INTS
                     else POINTERS.get(arg, f"*{dtype}") for arg in fn.arg_names}
        kernel = triton.compile(ASTSource(fn, signature, consts),
                                target=GPUTarget("cuda", arch, 32), options=triton_fused.OPTIONS)
        label = "-".join([name, dtype] + [f"{k}={v}" for k, v in sorted(consts.items())
                                          if v is not None and k not in tiles])
        report[label] = _usage(kernel.asm["cubin"], bindir)
    return report


def main(out: str, arch: int) -> int:
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("unset TRITON_INTERPRET: this compiles for a real target")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(compile_all(arch), handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 90))
