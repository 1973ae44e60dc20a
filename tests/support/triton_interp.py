"""Triton kernels in interpreter mode vs the step-by-step reference; run in a subprocess.

``python tests/support/triton_interp.py OUT.json`` with ``TRITON_INTERPRET=1`` in the environment
(it must be set before triton is imported, which is why the tests run this in a child process and
the variable never reaches the rest of the suite). For every case in :data:`CASES` it runs the
reference loop (``layers.recurrence``) and the fused entry point forced to the Triton kernels,
and writes per result (Ŷ, v_max, final I, V, Ŷ, then each gradient) the largest absolute
difference, plus which kernel the back end chose. For every case in :data:`STREAM_CASES` it
streams an utterance frame by frame through ``StreamingSNN`` on the Triton kernel
(``kernels.triton_streaming``) and compares with the same stack streamed by the PyTorch-operator
path and with its dense eval-mode forward. Importing this module runs nothing.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Dict, List, NamedTuple, Tuple


class Case(NamedTuple):
    kind: str
    steps: int
    batch: int
    n: int
    n_bits: int
    k: int
    surrogate: str
    dropout: bool
    state: bool
    dtype: str = "float64"

    @property
    def name(self) -> str:
        return "-".join(str(v) for v in self)


def _cases() -> List[Case]:
    """Every kind meets every N/k, surrogate and dropout setting; plus tiles, length."""
    from pytorch_kaldi_snn.neurons.surrogate import SURROGATE_NAMES

    quant = [(1, 0, "ste"), (2, 1, "pwl"), (6, 4, "fast_sigmoid")]
    # any surrogate added later is checked too (N/k = 3/1)
    quant += [(3, 1, name) for name in SURROGATE_NAMES if name not in
              {q[2] for q in quant}]
    cases = [Case(kind, 9, 4, 6, *q, dropout, False)
             for kind in ("lif", "v1", "v2") for q in quant for dropout in (False, True)]
    for kind in ("lif", "v1", "v2"):
        # several row and neuron tiles (B > 16, n > 64), an initial state, a longer sequence
        cases.append(Case(kind, 5, 20, 70, 3, 2, "pwl", True, True))
        cases.append(Case(kind, 300, 3, 5, 4, 2, "ste", True, False))
    cases.append(Case("v2", 20, 8, 32, 6, 3, "ste", False, False, "float32"))
    # v2 per step in float32 over 2 x 2 tiles, with dropout and an initial state
    cases.append(Case("v2", 12, 20, 70, 3, 2, "pwl", True, True, "float32"))
    return cases


CASES = _cases()


class StreamCase(NamedTuple):
    """A stack (m -> sizes) streamed for ``frames`` frames. The tiles are BN = 32 neurons and
    BK = 64 input rows, so m = 70 with a first layer of 70 needs several of both (and v2's
    recurrent product two row tiles); each launch costs the interpreter 20-150 ms, so the long
    and the N/k cases are narrow."""
    variant: str
    n_bits: int
    k: int
    frames: int
    m: int = 16
    sizes: Tuple[int, ...] = (24,)
    batchnorm: bool = True
    dtype: str = "float64"

    @property
    def name(self) -> str:
        return "stream-" + "-".join(str(v) for v in self).replace(", ", "x")


STREAM_CASES = [case for variant in ("traditional", "v1", "v2") for case in (
    StreamCase(variant, 3, 1, 200, sizes=(24, 12)),
    StreamCase(variant, 1, 0, 40), StreamCase(variant, 6, 4, 40),
    StreamCase(variant, 4, 2, 16, 70, (70, 20)))]
STREAM_CASES += [StreamCase("v2", 4, 2, 40, batchnorm=False),
                 StreamCase("v2", 6, 3, 60, 40, (48,), True, "float32")]


def _inputs(case: Case, seed: int):
    import torch

    from pytorch_kaldi_snn.layers.recurrence import SpikingState

    dt = getattr(torch, case.dtype)
    gen = torch.Generator().manual_seed(seed)
    n, width = case.n, case.n if case.kind == "lif" else 2 * case.n

    def randn(*shape: int, scale: float = 1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=dt)).requires_grad_()

    args = {"inp": randn(case.steps, case.batch, width, scale=1.5),
            "alpha": (0.5 + 0.5 * torch.rand(n, generator=gen, dtype=dt)).requires_grad_(),
            "beta": (0.5 + 0.5 * torch.rand(n, generator=gen, dtype=dt)).requires_grad_(),
            "w_rec": randn(n, 2 * n, scale=0.5 / max(1.0, n ** 0.5 / 3)), "mask": None,
            "state": None}
    if case.dropout:
        args["mask"] = (torch.rand(case.batch, n, generator=gen, dtype=dt) > 0.3).to(dt) / 0.7
    if case.state:
        args["state"] = SpikingState(randn(case.batch, n), randn(case.batch, n),
                                     torch.rand(case.batch, n, generator=gen,
                                                dtype=dt).requires_grad_())
    return args


def _results(fn, case: Case, args) -> list:
    """Outputs, v_max, final state and the gradients of a loss that touches all of them."""
    import torch

    lead = {"lif": ("inp", "alpha", "beta"), "v1": ("inp", "alpha"),
            "v2": ("inp", "w_rec", "alpha")}[case.kind]
    b = torch.tensor(2.0, dtype=args["inp"].dtype)
    y, v_max, state = fn(*(args[key] for key in lead), b, case.n_bits, case.k, case.surrogate,
                         args["mask"], args["state"])
    weights = torch.linspace(-1.0, 2.0, y.numel(), dtype=y.dtype).view_as(y)
    loss = (weights * y).sum() + (0.3 * state.i + 0.7 * state.v - 1.1 * state.y).sum()
    leaves = [args[key] for key in lead] + list(args["state"] or [])
    return [y, v_max, *state, *torch.autograd.grad(loss, leaves)]


def compare(case: Case, seed: int) -> Dict[str, object]:

    from pytorch_kaldi_snn.kernels import backend, fused
    from pytorch_kaldi_snn.layers import recurrence

    args = _inputs(case, seed)
    ref = _results(getattr(recurrence, f"{case.kind}_loop"), case, args)
    got = _results(getattr(fused, f"{case.kind}_fused"), case, args)
    errors = [float((a.detach() - b.detach()).abs().max()) for a, b in zip(ref, got)]
    y = ref[0]
    level = float(args["inp"].new_tensor(2.0) / 2 ** case.n_bits)
    return {"kernel": backend.choose(args["inp"], fused.triton_check), "errors": errors,
            "level_flips": int((y != got[0]).sum()), "level": level, "outputs": y.numel(),
            "nonzero_fraction": float((y != 0).double().mean()),
            "scale": [float(r.detach().abs().max()) for r in ref]}


def _stream_stack(case: StreamCase, seed: int):
    """A stack with batch-norm statistics and b from a few training passes, in eval mode."""
    import torch

    from pytorch_kaldi_snn.layers import spiking_stack

    torch.manual_seed(seed)
    dt = getattr(torch, case.dtype)
    depth = len(case.sizes)
    kwargs = {"betas": [0.8, 0.7][:depth]} if case.variant == "traditional" else {}
    stack = spiking_stack(case.variant, case.m, case.sizes, n_bits=[case.n_bits] * depth,
                          thresholds=[case.k] * depth, surrogates=["ste"] * depth,
                          alphas=[0.9, 1.0][:depth], dropouts=[0.0] * depth,
                          batchnorms=[case.batchnorm] * depth, b_init=2.0, impl="loop",
                          **kwargs).to(dt).train()
    with torch.no_grad():
        for _ in range(3):
            stack(torch.randn(15, 4, case.m, dtype=dt))
    return stack.eval()


def stream_compare(case: StreamCase, seed: int) -> Dict[str, object]:
    """Triton streaming vs the PyTorch-operator streaming and the dense eval forward: largest
    differences, level flips, non-zero counts, and a reset that replays the same outputs."""
    import torch

    from pytorch_kaldi_snn.kernels.streaming import StreamingSNN

    stack = _stream_stack(case, seed)
    dt = getattr(torch, case.dtype)
    utterance = 1.5 * torch.randn(case.frames, case.m, dtype=dt,
                                  generator=torch.Generator().manual_seed(seed))
    outputs = []
    with torch.no_grad():
        x = utterance[:, None, :]
        for layer in stack:
            x = layer(x)
            outputs.append(x[:, 0])
    dense = outputs[-1]
    os.environ["PYTORCH_KALDI_SNN_KERNEL"] = "torch"
    reference = StreamingSNN(stack)
    ops = reference.run(utterance)
    os.environ["PYTORCH_KALDI_SNN_KERNEL"] = "triton"
    stream = StreamingSNN(stack)
    got = stream.run(utterance)
    active = stream.active_outputs
    state_error = max(float((getattr(a, key) - getattr(b, key)).abs().max())
                      for a, b in zip(stream.layers, reference.layers) for key in ("i", "v"))
    state_scale = max(float(getattr(layer, key).abs().max())
                      for layer in reference.layers for key in ("i", "v"))
    stream.reset()
    replay = stream.run(utterance[:10])
    level = float(stack[-1].tracker.b) / 2 ** case.n_bits
    return {"kernel": stream.kernel, "level": level,
            "error_vs_ops": float((got - ops).abs().max()), "state_error_vs_ops": state_error,
            "state_scale": state_scale,
            "error_vs_dense": float((got - dense).abs().max()),
            "level_flips_vs_ops": int(((got - ops).abs() > level / 2).sum()),
            "level_flips_vs_dense": int(((got - dense).abs() > level / 2).sum()),
            "active": active, "dense_active": [int((y != 0).sum()) for y in outputs],
            "nonzero_fraction": [float((y != 0).double().mean()) for y in outputs],
            "replay_equal": bool(torch.equal(replay, got[:10])),
            "frames_after_reset": stream.frames}


def stream_readout_check() -> Dict[str, object]:
    """The readout on Triton-streamed outputs equals the dense eval forward's scores."""
    import torch

    from pytorch_kaldi_snn.kernels.streaming import StreamingSNN

    case = StreamCase("v2", 3, 1, 30)
    stack = _stream_stack(case, 7)
    readout = torch.nn.Linear(case.sizes[-1], 5).double()
    utterance = torch.randn(case.frames, case.m, dtype=torch.float64)
    with torch.no_grad():
        dense = readout(stack(utterance[:, None, :])[:, 0])
    scores = StreamingSNN(stack, readout).run(utterance)
    return {"error": float((scores - dense).abs().max()), "scale": float(dense.abs().max())}


def layer_check() -> Dict[str, object]:
    """A v2 layer in training (dropout, batch norm) with ``impl="fused"`` vs ``impl="loop"``:
    output and every parameter gradient."""
    import torch

    from pytorch_kaldi_snn.layers.spiking import ImprovedV2Layer

    x = torch.randn(12, 5, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    errors = {}
    outputs = []
    for impl in ("loop", "fused"):
        torch.manual_seed(11)  # same weights and the same dropout mask
        layer = ImprovedV2Layer(7, 20, dropout=0.3, impl=impl, learn_decay=True).double().train()
        y = layer(x)
        (torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y) * y).sum().backward()
        outputs.append([y.detach()] + [p.grad for _, p in sorted(layer.named_parameters())])
    for index, (a, b) in enumerate(zip(*outputs)):
        errors[str(index)] = float((a - b).abs().max())
    return {"errors": errors, "nonzero_fraction":
            float((outputs[0][0] != 0).double().mean())}


def launch_check() -> Dict[str, object]:
    """What a v1 and a v2 recurrence launch, forward then backward: each Triton launch as
    [kernel, grid, steps it runs] and the matrix products torch runs (v2 on the CPU here; cuBLAS
    on a GPU). B = 20, n = 70 spans 2 x 2 tiles."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from pytorch_kaldi_snn.kernels import fused
    from pytorch_kaldi_snn.kernels import triton_kernels as tk

    events: List[object] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name, self.kernel = name, getattr(tk, name)

        def __getitem__(self, grid):
            run = self.kernel[grid]
            steps = self.kernel.arg_names.index("T")

            def launch(*args, **kwargs):
                events.append([self.name, list(grid), args[steps]])
                return run(*args, **kwargs)
            return launch

    class Products(TorchDispatchMode):  # sees the backward's operators too
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if name in ("addmm", "addmm_", "mm", "bmm"):
                events.append(name)
            return func(*args, **(kwargs or {}))

    kernels = {name: getattr(tk, name) for name in ("pointwise_fwd", "pointwise_bwd")}
    report = {}
    gen = torch.Generator().manual_seed(4)
    steps, batch, n = 7, 20, 70
    for kind in ("v1", "v2"):
        gates = torch.randn(steps, batch, 2 * n, generator=gen, dtype=torch.float64,
                            requires_grad=True)
        lead = (gates, 0.3 * torch.randn(n, 2 * n, generator=gen, dtype=torch.float64,
                                         requires_grad=True)) if kind == "v2" else (gates,)
        alpha = torch.full((n,), 0.9, dtype=torch.float64, requires_grad=True)
        for name in kernels:
            setattr(tk, name, Recorder(name))
        try:
            with Products():
                y, _, _ = getattr(fused, f"{kind}_fused")(*lead, alpha, gates.new_tensor(2.0), 3,
                                                         1, "pwl", None)
                events.append("backward")
                y.sum().backward()
        finally:
            for name, kernel in kernels.items():
                setattr(tk, name, kernel)
        report[kind] = list(events)
        events.clear()
    return report


def half_check() -> Dict[str, object]:
    """bfloat16 gates (autocast output) run in float32: same as the reference on the upcast."""
    import torch

    from pytorch_kaldi_snn.kernels import fused
    from pytorch_kaldi_snn.layers import recurrence

    gen = torch.Generator().manual_seed(5)
    gates = torch.randn(6, 3, 16, generator=gen).to(torch.bfloat16).requires_grad_()
    alpha, b = torch.full((8,), 0.9), torch.tensor(2.0)
    y, _, _ = fused.v1_fused(gates, alpha, b, 4, 2, "pwl", None)
    ref, _, _ = recurrence.v1_loop(gates.float(), alpha, b, 4, 2, "pwl", None)
    (grad,) = torch.autograd.grad(y.sum(), gates)
    (ref_grad,) = torch.autograd.grad(ref.sum(), gates)
    return {"y_dtype": str(y.dtype), "grad_dtype": str(grad.dtype),
            "y_error": float((y - ref).detach().abs().max()),
            "grad_error": float((grad.float() - ref_grad.float()).abs().max())}


def main(out: str) -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("set TRITON_INTERPRET=1 before running this (it must precede import)")
    os.environ["PYTORCH_KALDI_SNN_KERNEL"] = "triton"
    records: List[str] = []  # what the back end logs: which kernel ran
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("pytorch_kaldi_snn.kernels.backend").addHandler(handler)
    logging.getLogger("pytorch_kaldi_snn.kernels.backend").setLevel(logging.INFO)
    report = {case.name: compare(case, seed) for seed, case in enumerate(CASES)}
    report.update({case.name: stream_compare(case, seed) for seed, case in enumerate(STREAM_CASES)})
    report["stream_readout"] = stream_readout_check()
    report["layer"] = layer_check()
    report["half"] = half_check()
    report["launches"] = launch_check()
    report["log"] = records
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
