"""Speed of the fused spiking recurrences against torch.nn.GRU / LSTM, in one process.

Usage::

    python benchmarks/bench_recurrence.py --json bench.json [--reps 5] [--threads 2]
        [--target-zeros 0.85] [--loop] [--checkpoint EXP [--stream-utts 8]] [--streaming-only]

Measured on the same random input (2 layers x 550, 40-dim input, batch 64, 200 frames):

* training frames/s (forward + backward) of 2-layer stacks of the traditional, v1 and v2 spiking
  layers (``impl="fused"``, batch norm on) and of ``torch.nn.GRU`` / ``torch.nn.LSTM``;
* v2's achieved matrix-product FLOP/s in training against a large dense product's FLOP/s;
* bytes saved for backpropagation through time (saved-tensor hooks), SNN stacks vs GRU/LSTM;
* batch-1 streaming latency per frame of each spiking stack (:class:`StreamingSNN`, event-driven;
  ``<variant>_onnx``: the same stack exported by export/onnx.py and run by onnxruntime, with the
  export extra)
  against ``GRUCell`` / ``LSTMCell`` stacks, at an imposed sparsity: each layer's membrane
  maximum b is chosen so that ``--target-zeros`` of its outputs on the benchmark utterance are
  zero (no trained model needed: the default, and what CI runs);
* with ``--checkpoint EXP`` (a finished experiment of a spiking model), also that trained
  stack's batch-1 streaming latency on the first ``--stream-utts`` utterances of its test set
  (its cfg's features, its own weights and b, so the sparsity is the one it really has there)
  against GRUCell/LSTMCell stacks of its sizes on the same frames (key ``checkpoint``; readouts
  left out on both sides). ``--streaming-only`` skips the training and CUDA sections.

Ratios are taken within this run, so a loaded machine shifts both sides; the models take turns
in every repetition and the medians of ``--reps`` repetitions after one warm-up are reported.
``--loop`` also times the step-by-step reference (``impl="loop"``), slowly.

CUDA section (key ``cuda``, only where ``torch.cuda.is_available()``; otherwise it records
``measured: false`` and prints that the CUDA figures were not measured): the same stacks on the
GPU with the kernel :mod:`pytorch_kaldi_snn.kernels.backend` picks (Triton), 1,000 frames
(``--cuda-frames``), training frames/s against cuDNN ``nn.GRU``/``nn.LSTM``, v2's FLOP/s against
an 8192³ float32 GEMM, peak memory of a training pass against the GRU's, and batch-1 streaming
latency (each frame synchronised) of every spiking stack against ``GRUCell``/``LSTMCell``
stacks on the GPU, with the kernel the back end picks (``stream_kernel``: Triton, one launch per
layer and frame) and, for v2, also with the PyTorch-operator path (``v2_torch_ops``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple
from unittest import mock

from pytorch_kaldi_snn.threads import bootstrap

bootstrap()  # the runner's OpenMP wait policy, set before torch loads (docs/performance.md)

import torch  # noqa: E402
from torch import nn  # noqa: E402

from pytorch_kaldi_snn.cli import run_reporting_errors  # noqa: E402
from pytorch_kaldi_snn.data.batching import Piece  # noqa: E402
from pytorch_kaldi_snn.data.streamed import open_source  # noqa: E402
from pytorch_kaldi_snn.errors import UserInputError  # noqa: E402
from pytorch_kaldi_snn.export.onnx import model_chain  # noqa: E402
from pytorch_kaldi_snn.kernels import backend, native  # noqa: E402
from pytorch_kaldi_snn.kernels.streaming import StreamingSNN  # noqa: E402
from pytorch_kaldi_snn.layers import spiking_stack  # noqa: E402
from pytorch_kaldi_snn.trained import TrainedExperiment, load_trained  # noqa: E402

T, B, M, N, LAYERS = 200, 64, 40, 550, 2
VARIANTS = {"snn": "traditional", "v1": "v1", "v2": "v2"}
LOG = logging.getLogger("bench_recurrence")


def interleaved_medians(fns: Dict[str, Callable[[], object]], reps: int) -> Dict[str, float]:
    """Median wall time of each function over ``reps`` rounds after one warm-up round.

    The functions take turns within every round, so a load that comes and goes on a shared
    machine falls on all of them alike instead of on whichever ran at that moment.
    """
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for round_ in range(reps + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def make_stack(variant: str, impl: str) -> nn.Sequential:
    kwargs = {"betas": [0.9] * LAYERS} if variant == "traditional" else {}
    return spiking_stack(variant, M, [N] * LAYERS, n_bits=[6] * LAYERS, thresholds=[3] * LAYERS,
                         surrogates=["ste"] * LAYERS, alphas=[1.0] * LAYERS,
                         dropouts=[0.0] * LAYERS, batchnorms=[True] * LAYERS, impl=impl, **kwargs)


def train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward + backward pass of ``model`` on ``x`` (grads reset each time)."""
    def run() -> None:
        model.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
    return run


def saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of distinct storages that autograd keeps for the backward of ``fn()``'s graph."""
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(storages.values())


def v2_training_flops(steps: int = T) -> float:
    """Matrix-product FLOPs of one v2 training pass (forward + backward), 2 per multiply-add."""
    rows = steps * B
    total = 0.0
    for layer in range(LAYERS):
        m = M if layer == 0 else N
        proj = 2.0 * rows * m * 2 * N       # X W, and its weight gradient
        rec = 2.0 * rows * N * 2 * N        # Ŷ W_r, dG W_rᵀ, and W_r's gradient
        total += proj * (2 if layer == 0 else 3) + rec * 3  # layer 0's input needs no gradient
    return total


def gemm_product() -> Callable[[], object]:
    """A large dense float32 product, 2048³ (the machine's practical GEMM peak)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return lambda: a @ b


GEMM_FLOPS = 2.0 * 2048 ** 3


def calibrate_sparsity(stack: nn.Sequential, utterance: torch.Tensor, target: float) -> List[float]:
    """Set each layer's b (in eval) so that ``target`` of its outputs are zero; returns them.

    The zero fraction grows with b (γ = k·b/2^N), so a bisection on log b per layer, first to
    last, reaches it; later layers see the already calibrated earlier ones.
    """
    stack.eval()
    zeros = []
    x = utterance[:, None, :]
    with torch.no_grad():
        for layer in stack:
            low, high = -12.0, 12.0
            for _ in range(40):
                mid = (low + high) / 2
                layer.tracker.b.fill_(2.0 ** mid)
                frac = float((layer(x) == 0).double().mean())
                low, high = (mid, high) if frac < target else (low, mid)
            layer.tracker.b.fill_(2.0 ** high)
            x = layer(x)
            zeros.append(float((x == 0).double().mean()))
    return zeros


def stream_utterance(step: Callable[[torch.Tensor], object],
                     frames: torch.Tensor) -> Callable[[], None]:
    """Feed every frame of the utterance to ``step``, one at a time."""
    def run() -> None:
        for frame in frames:
            step(frame)
    return run


def cell_stack_step(cell_type: type, device: str = "cpu", sizes: Sequence[int] = (M, N, N)
                    ) -> Callable[[torch.Tensor], object]:
    """A batch-1 GRUCell/LSTMCell stack (``sizes``: input, then each layer's units; 40 → 550 →
    550 by default) keeping its state between frames."""
    cells = [cell_type(m, n).to(device) for m, n in zip(sizes, sizes[1:])]
    state: List[object] = [None] * len(cells)

    @torch.no_grad()
    def step(frame: torch.Tensor) -> torch.Tensor:
        x = frame[None]
        for index, cell in enumerate(cells):
            state[index] = cell(x, state[index])
            x = state[index][0] if isinstance(state[index], tuple) else state[index]
        return x
    return step


def machine() -> Dict[str, object]:
    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=here).stdout.strip()
    return {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "python": platform.python_version(), "commit": commit,
            "native_kernels": native.load(torch.float32) is not None}


def training(args: argparse.Namespace, x: torch.Tensor) -> Dict[str, Dict[str, float]]:
    """Training frames/s and BPTT bytes of every model on the same input, plus the GEMM peak."""
    models: Dict[str, nn.Module] = {"gru": nn.GRU(M, N, LAYERS), "lstm": nn.LSTM(M, N, LAYERS)}
    for key, variant in VARIANTS.items():
        models[key] = make_stack(variant, "fused").train()
        if args.loop:
            models[key + "_loop"] = make_stack(variant, "loop").train()
    fns = {name: train_step(model, x) for name, model in models.items()}
    fns["gemm"] = gemm_product()
    seconds = interleaved_medians(fns, args.reps)
    fps = {name: T * B / seconds[name] for name in models}
    memory = {name: saved_bytes(lambda: model(x)) for name, model in models.items()}
    for name in models:
        print(f"  {name:8s} {fps[name]:10.0f} frames/s   BPTT {memory[name] / 2 ** 20:8.1f} MiB")
    return {"train_frames_per_s": fps, "bptt_saved_bytes": memory,
            "gemm_flops_per_s": GEMM_FLOPS / seconds["gemm"]}


def onnx_stream(stack: nn.Sequential, utterance: torch.Tensor) -> Optional[Callable[[], None]]:
    """The stack's ONNX step (no readout) over the utterance, or None without the export extra."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return None
    from pytorch_kaldi_snn.export.onnx import OnnxStreamer, export_step

    path = os.path.join(tempfile.mkdtemp(prefix="bench_onnx."), "stack.onnx")
    export_step(list(stack.eval()), [], Path(path))
    runner, frames = OnnxStreamer(Path(path)), utterance.numpy()
    return lambda: runner.run(frames)


def streaming(args: argparse.Namespace, utterance: torch.Tensor) -> Dict[str, object]:
    """Per-frame batch-1 latency of the spiking stacks and of the GRUCell/LSTMCell stacks."""
    fns, zeros = {}, {}
    for key, variant in VARIANTS.items():
        stack = make_stack(variant, "fused")
        zeros[key] = calibrate_sparsity(stack, utterance, args.target_zeros)
        fns[key] = stream_utterance(StreamingSNN(stack).step, utterance)
        onnx = onnx_stream(stack, utterance)
        if onnx is not None:  # the same stack exported (export/onnx.py), run by onnxruntime
            fns[f"{key}_onnx"] = onnx
    fns["grucell"] = stream_utterance(cell_stack_step(nn.GRUCell), utterance)
    fns["lstmcell"] = stream_utterance(cell_stack_step(nn.LSTMCell), utterance)
    latency = {name: value / len(utterance)
               for name, value in interleaved_medians(fns, args.reps).items()}
    for name, value in latency.items():
        print(f"  {name:8s} {value * 1e6:8.1f} us/frame   zeros per layer {zeros.get(name, '-')}")
    return {"stream_seconds_per_frame": latency, "stream_zero_fraction": zeros,
            "stream_sparsity_source": "imposed via b"}


def trained_stack(folder: Path) -> Tuple[TrainedExperiment, str, List[nn.Module]]:
    """The finished experiment in ``folder``, the feature its recurrent stack reads and the
    stack's layers (the chain ONNX export follows: a recurrent architecture, then readouts)."""
    trained = load_trained(folder, LOG)
    feature, layers, _ = model_chain(trained.model.cpu(), trained.exp.forward.forward_out)
    return trained, feature, layers


def real_utterances(trained: TrainedExperiment, feature: str, count: int) -> List[torch.Tensor]:
    """The first ``count`` test utterances (sorted ids) as the model reads them: the cfg's
    feature pipe (CMVN, deltas) and context window, (T, m) each."""
    test = trained.test_set
    source = open_source(test, [feature], [lab.name for lab in test.labels[:1]], LOG)
    chunk = source.read_chunk(source.utts[:count])
    return [torch.from_numpy(chunk.feature_rows(feature, Piece(utt, 0, frames)).copy())
            for utt, (_, frames) in chunk.spans.items()]


class TrainedStream(NamedTuple):
    """What ``--checkpoint`` streams: the trained stack, its test utterances, its sizes."""

    folder: str
    streamer: StreamingSNN
    utterances: List[torch.Tensor]
    sizes: List[int]  # input, then each layer's units


def load_stream(folder: str, count: int) -> TrainedStream:
    """The spiking stack of the finished experiment in ``folder`` ready to stream, and its first
    ``count`` test utterances; one line naming the folder for anything else."""
    trained, feature, layers = trained_stack(Path(folder))
    try:
        streamer = StreamingSNN(layers)
    except ValueError as err:
        raise UserInputError(f"streams spiking models only: {err}", file=folder) from None
    sizes = [layers[0].input_size] + [layer.hidden_size for layer in layers]
    return TrainedStream(folder, streamer, real_utterances(trained, feature, count), sizes)


def stream_all(step: Callable[[torch.Tensor], object], utterances: Sequence[torch.Tensor],
               reset: Callable[[], None] = lambda: None) -> Callable[[], None]:
    """Feed every frame of every utterance to ``step``, calling ``reset`` before each (a
    StreamingSNN starts every utterance from a zero state; a cell stack's state carries over)."""
    def run() -> None:
        for frames in utterances:
            reset()
            for frame in frames:
                step(frame)
    return run


def activity(streamer: StreamingSNN, utterances: Sequence[torch.Tensor]
             ) -> Tuple[List[float], float]:
    """Each layer's fraction of zero outputs over the utterances, as the streamer counts them,
    and the mean weight values a frame reads: the rows of every layer's non-zero inputs (W)
    and, for v2, of its own non-zero outputs of the frame before (W_r)."""
    outputs, reads = [0] * len(streamer.layers), 0
    for frames in utterances:
        streamer.reset()
        previous = [0] * len(streamer.layers)
        for frame in frames:
            before = streamer.active_outputs
            streamer.step(frame)
            now = [a - b for a, b in zip(streamer.active_outputs, before)]
            inputs = [int(torch.count_nonzero(frame))] + now[:-1]
            reads += sum(x * layer.weight.shape[1] + (0 if layer.w_rec is None else
                                                      y * layer.w_rec.shape[1])
                         for x, y, layer in zip(inputs, previous, streamer.layers))
            outputs = [a + b for a, b in zip(outputs, now)]
            previous = now
    frames = sum(len(u) for u in utterances)
    return ([1.0 - a / (frames * layer.n) for a, layer in zip(outputs, streamer.layers)],
            reads / frames)


def rowless_frames(streamer: StreamingSNN, utterances: Sequence[torch.Tensor], call: bool = True
                   ) -> Callable[[], None]:
    """Every layer's kernel call per frame with no non-zero input and no non-zero previous
    output (Ŷ zeroed first), so that no weight row is read: what a frame costs whatever the
    sparsity (the call, the bias, every neuron's dynamics and quantiser). ``call=False`` only
    zeroes, to take that out of the time."""
    zeros = [torch.zeros_like(layer.weight[:, 0]) for layer in streamer.layers]

    def run() -> None:
        for frames in utterances:
            for _ in range(len(frames)):
                for layer, x in zip(streamer.layers, zeros):
                    layer.y.zero_()
                    if call:
                        layer.step(x)
    return run


def on_threads(streamer: StreamingSNN, threads: Optional[int], run: Callable[[], None]
               ) -> Callable[[], None]:
    """``run`` with the streamer's C kernel on at most ``threads`` threads (None: torch's),
    then as it was."""
    def timed() -> None:
        before, streamer.threads = streamer.threads, threads
        try:
            run()
        finally:
            streamer.threads = before
    return timed


def checkpoint_streaming(trained: TrainedStream, reps: int) -> Dict[str, object]:
    """Batch-1 latency per frame of a trained spiking stack (its own weights and b) on its test
    utterances, at the sparsity it has there, against GRUCell/LSTMCell stacks of its sizes on
    the same frames. The readout is left out on both sides. ``checkpoint`` streams as the
    streamer does by default (one thread), ``checkpoint_threads`` on up to torch's threads
    (``--threads``, as the cell stacks)."""
    utterances, streamer = trained.utterances, trained.streamer
    zeros, reads = activity(streamer, utterances)
    frames = sum(len(u) for u in utterances)
    whole = stream_all(streamer.step, utterances, streamer.reset)
    fns = {"checkpoint": whole, "checkpoint_threads": on_threads(streamer, None, whole),
           "checkpoint_no_rows": rowless_frames(streamer, utterances),
           "zeroing_only": rowless_frames(streamer, utterances, call=False)}
    for name, cell in (("grucell", nn.GRUCell), ("lstmcell", nn.LSTMCell)):
        step = cell_stack_step(cell, sizes=trained.sizes)
        fns[name] = stream_all(step, utterances)
    latency = {name: value / frames for name, value in interleaved_medians(fns, reps).items()}
    variant = streamer.layers[0].neuron.name
    print(f"streaming the trained {variant} stack {' x '.join(map(str, trained.sizes[1:]))} of "
          f"{trained.folder}, {len(utterances)} test utterances, {frames} frames:")
    for name, value in latency.items():
        shown = [round(z, 4) for z in zeros] if name == "checkpoint" else "-"
        print(f"  {name:18s} {value * 1e6:8.1f} us/frame   zeros per layer {shown}")
    ratios = {f"{variant}_stream_vs_{base}": latency["checkpoint"] / latency[base]
              for base in ("grucell", "lstmcell")}
    ratios[f"{variant}_stream_threads_vs_grucell"] = (latency["checkpoint_threads"]
                                                       / latency["grucell"])
    fixed = latency["checkpoint_no_rows"] - latency["zeroing_only"]
    rows_s = latency["checkpoint"] - fixed
    split = {"weights_read_per_frame": reads, "fixed_seconds_per_frame": fixed,
             "rows_seconds_per_frame": rows_s,
             "rows_bytes_per_s": reads * streamer.layers[0].weight.element_size() / rows_s,
             "fixed_share": fixed / latency["checkpoint"]}
    print(f"  {reads:.0f} weights read per frame in {rows_s * 1e6:.1f} us "
          f"({split['rows_bytes_per_s'] / 1e9:.1f} GB/s); the rest, {fixed * 1e6:.1f} us "
          f"({split['fixed_share']:.0%} of a frame), is paid whatever the sparsity")
    for key, value in ratios.items():
        print(f"  {key:34s} {value:6.3f}")
    return {"folder": trained.folder, "variant": variant, "sizes": trained.sizes,
            "utterances": len(utterances), "frames": frames, "zero_fraction": zeros,
            "kernel": streamer.kernel, "stream_seconds_per_frame": latency, "ratios": ratios,
            "time_split": split}


def synchronised(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` followed by a CUDA synchronisation, so that wall time covers the kernels."""
    def run() -> None:
        fn()
        torch.cuda.synchronize()
    return run


def peak_training_bytes(fn: Callable[[], None]) -> int:
    """Peak CUDA memory of one training pass above what was allocated before it."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def each_frame_synchronised(step: Callable[[torch.Tensor], object]
                            ) -> Callable[[torch.Tensor], None]:
    """``step`` then a CUDA synchronisation: a streaming frame's latency is until its output
    is ready, not until its kernels are queued."""
    def run(frame: torch.Tensor) -> None:
        step(frame)
        torch.cuda.synchronize()
    return run


def cuda_streaming(args: argparse.Namespace, frames: torch.Tensor
                   ) -> Tuple[Dict[str, Callable[[], None]], Dict[str, StreamingSNN]]:
    """Batch-1 streaming on the GPU, each frame synchronised: every spiking stack with the
    kernel the back end picks (Triton, one launch per layer and frame), v2 also on the
    PyTorch-operator path (``v2_torch_ops``, the path before that kernel), GRUCell/LSTMCell."""
    streamers: Dict[str, StreamingSNN] = {}
    for key, variant in VARIANTS.items():
        stack = make_stack(variant, "fused").to(frames.device)
        calibrate_sparsity(stack, frames, args.target_zeros)
        streamers[key] = StreamingSNN(stack)
        if key == "v2":
            with mock.patch.dict(os.environ, {backend.KERNEL_ENV: "torch"}):
                streamers["v2_torch_ops"] = StreamingSNN(stack)
    fns = {key: stream_utterance(each_frame_synchronised(streamer.step), frames)
           for key, streamer in streamers.items()}
    for name, cell in (("grucell", nn.GRUCell), ("lstmcell", nn.LSTMCell)):
        step = cell_stack_step(cell, str(frames.device))
        fns[name] = stream_utterance(each_frame_synchronised(step), frames)
    return fns, streamers


def cuda_section(args: argparse.Namespace) -> Dict[str, object]:
    """The issue's GPU configuration (2 x 550, batch 64, --cuda-frames frames, fwd + bwd, and
    batch-1 streaming) against cuDNN GRU/LSTM in this process; says so when there is no GPU."""
    if not torch.cuda.is_available():
        print("CUDA: no CUDA device here, the CUDA figures were NOT measured")
        return {"measured": False, "reason": "no CUDA device: CUDA figures not measured"}
    steps, dev = args.cuda_frames, "cuda"
    x = torch.randn(steps, B, M, device=dev)
    models: Dict[str, nn.Module] = {"gru": nn.GRU(M, N, LAYERS).to(dev),
                                    "lstm": nn.LSTM(M, N, LAYERS).to(dev)}
    for key, variant in VARIANTS.items():
        models[key] = make_stack(variant, "fused").to(dev).train()
    fns = {name: synchronised(train_step(model, x)) for name, model in models.items()}
    a, b = torch.randn(8192, 8192, device=dev), torch.randn(8192, 8192, device=dev)
    fns["gemm"] = synchronised(lambda: a @ b)
    seconds = interleaved_medians(fns, args.reps)
    fps = {name: steps * B / seconds[name] for name in models}
    peak = {name: peak_training_bytes(fns[name]) for name in models}
    gemm = 2.0 * 8192 ** 3 / seconds["gemm"]
    v2_flops = v2_training_flops(steps) * fps["v2"] / (steps * B)
    frames = x[:, 0, :]
    stream, streamers = cuda_streaming(args, frames)
    medians = interleaved_medians(stream, args.reps)
    latency = {name: value / steps for name, value in medians.items()}
    result = {
        "measured": True, "device": torch.cuda.get_device_name(), "frames": steps,
        "kernel": backend.choose(x), "train_frames_per_s": fps, "peak_bytes": peak,
        "gemm_flops_per_s": gemm, "v2_train_flops_per_s": v2_flops,
        "stream_seconds_per_frame": latency,
        "stream_kernel": {key: streamer.kernel for key, streamer in streamers.items()},
        "ratios": {
            **{f"{key}_train_vs_{base}": fps[key] / fps[base]
               for key in VARIANTS for base in ("gru", "lstm")},
            "v2_gemm_efficiency": v2_flops / gemm,
            **{f"{key}_stream_vs_grucell": latency[key] / latency["grucell"] for key in VARIANTS},
            "v2_stream_vs_lstmcell": latency["v2"] / latency["lstmcell"],
            "v2_stream_triton_vs_torch_ops": latency["v2"] / latency["v2_torch_ops"],
            **{f"{key}_peak_memory_vs_gru": peak[key] / peak["gru"] for key in VARIANTS},
        }}
    print(f"CUDA ({result['device']}, {steps} frames, kernel {result['kernel']}):")
    for key, value in result["ratios"].items():
        print(f"  {key:28s} {value:6.2f}")
    return result


def training_ratios(result: Dict[str, object]) -> Dict[str, float]:
    """The training section's ratios to nn.GRU and to the GEMM peak."""
    fps, memory = result["train_frames_per_s"], result["bptt_saved_bytes"]
    v2_flops = result["v2_train_flops_per_s"]
    print(f"GEMM {result['gemm_flops_per_s'] / 1e9:.1f} GFLOP/s, "
          f"v2 training {v2_flops / 1e9:.1f} GFLOP/s")
    return {"snn_train_vs_gru": fps["snn"] / fps["gru"],
            "v1_train_vs_gru": fps["v1"] / fps["gru"],
            "v2_train_vs_gru": fps["v2"] / fps["gru"],
            "v2_gemm_efficiency": v2_flops / result["gemm_flops_per_s"],
            "v2_bptt_bytes_vs_gru": memory["v2"] / memory["gru"]}


def stream_ratios(lat: Dict[str, float]) -> Dict[str, float]:
    """The imposed-sparsity streaming section's ratios to the GRUCell/LSTMCell stacks."""
    return {"v2_stream_vs_grucell": lat["v2"] / lat["grucell"],
            "snn_stream_vs_grucell": lat["snn"] / lat["grucell"],
            "v1_stream_vs_grucell": lat["v1"] / lat["grucell"],
            "v2_stream_vs_lstmcell": lat["v2"] / lat["lstmcell"]}


def measure(args: argparse.Namespace) -> Dict[str, object]:
    """Every section the arguments ask for, in one dict (the JSON)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(T, B, M)
    info = machine()
    print(f"threads={info['threads']} torch={info['torch']} native={info['native_kernels']} "
          f"load={info['load_average']}")
    # a bad --checkpoint is refused before minutes of timing
    trained = load_stream(args.checkpoint, args.stream_utts) if args.checkpoint else None
    result: Dict[str, object] = {"machine": info}
    ratios: Dict[str, float] = {}
    if not args.streaming_only:
        print("training (2 x 550, batch 64, 200 frames, forward + backward):")
        result.update(training(args, x))
        result["v2_train_flops_per_s"] = (v2_training_flops() * result["train_frames_per_s"]["v2"]
                                          / (T * B))
        ratios.update(training_ratios(result))
    print("streaming (batch 1, per frame):")
    result.update(streaming(args, x[:, 0, :]))
    ratios.update(stream_ratios(result["stream_seconds_per_frame"]))
    result.update(ratios)
    for key, value in ratios.items():
        print(f"  {key:24s} {value:6.2f}")
    if trained is not None:
        result["checkpoint"] = checkpoint_streaming(trained, args.reps)
    if not args.streaming_only:
        result["cuda"] = cuda_section(args)
    return result


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", required=True, help="write ratios and raw figures here")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", metavar="EXP",
                        help="a finished experiment folder of a spiking model: also stream its "
                             "stack on its test utterances at its own sparsity (key checkpoint)")
    parser.add_argument("--stream-utts", type=int, default=8,
                        help="test utterances streamed with --checkpoint")
    parser.add_argument("--streaming-only", action="store_true",
                        help="skip the training and CUDA sections")
    parser.add_argument("--target-zeros", type=float, default=0.85,
                        help="imposed fraction of zero outputs of the benchmark's own stacks")
    parser.add_argument("--loop", action="store_true", help="also time impl='loop'")
    parser.add_argument("--cuda-frames", type=int, default=1000,
                        help="sequence length of the CUDA section (run when a GPU is present)")
    args = parser.parse_args(argv)

    def run() -> None:
        result = measure(args)
        tmp = args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
        os.replace(tmp, args.json)
    return run_reporting_errors("bench_recurrence", run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
