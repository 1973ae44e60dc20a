"""The native C streaming kernel on several threads gives the one-thread results, bit for bit."""
from __future__ import annotations

import multiprocessing
import os
import threading
from typing import List, Tuple

import pytest
import torch

from pytorch_kaldi_snn.kernels import native
from pytorch_kaldi_snn.kernels.streaming import StreamingSNN
from pytorch_kaldi_snn.layers import spiking_stack
from skips import NO_C_COMPILER, missing

SIZES = [100, 90]  # several 64-byte lines of neurons per layer, so every thread gets some


@pytest.fixture(autouse=True)
def _native() -> None:
    if native.load(torch.float64) is None:
        missing(NO_C_COMPILER)


def _stack(variant: str, dtype: torch.dtype) -> torch.nn.Sequential:
    """A stack with trained-like BN statistics and b, and half or so of its outputs zero."""
    torch.manual_seed(1)
    kwargs = {"betas": [0.8, 0.7]} if variant == "traditional" else {}
    stack = spiking_stack(variant, 13, SIZES, n_bits=[4, 3], thresholds=[2, 1],
                          surrogates=["ste", "ste"], alphas=[0.9, 1.0], dropouts=[0.0, 0.0],
                          batchnorms=[True, True], b_init=2.0, **kwargs).to(dtype)
    stack.train()
    with torch.no_grad():
        for _ in range(3):
            stack(torch.randn(15, 4, 13, dtype=dtype))
    return stack.eval()


Streamed = Tuple[torch.Tensor, List[int]]


def _stream(stack: torch.nn.Sequential, frames: torch.Tensor, threads: int) -> Streamed:
    """Every frame's output and each layer's count of non-zero outputs."""
    stream = StreamingSNN(stack, threads=threads)
    assert stream.kernel == "native"
    return stream.run(frames), stream.active_outputs


def _same(a: Streamed, b: Streamed) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1]


def _helper_threads() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1


@pytest.mark.parametrize("variant", ["traditional", "v1", "v2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_threads_give_the_one_thread_results_bit_for_bit(variant, dtype):
    stack = _stack(variant, dtype)
    frames = torch.randn(40, 13, dtype=dtype)
    alone = _stream(stack, frames, 1)
    assert 0.1 < float((alone[0] != 0).double().mean()) < 0.9  # sparse, not trivially so
    # a new stream shares its first frame between threads and, whichever way it then prefers,
    # its 16th goes the other: shared frames with a non-zero state in each run of 40
    for threads in (2, 3, 5):
        assert _same(_stream(stack, frames, threads), alone), threads


def test_threads_none_follows_torch_and_starts_helper_threads():
    stack = _stack("v2", torch.float32)
    frames = torch.randn(30, 13)
    alone = _stream(stack, frames, 1)
    before, previous = _helper_threads(), torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        stream = StreamingSNN(stack, threads=None)
        streamed = stream.run(frames)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(streamed, alone[0]) and stream.active_outputs == alone[1]
    if before > 0:  # Linux: the kernel's helpers are threads of this process
        assert _helper_threads() >= min(before + 1, 4)


def test_two_python_threads_streaming_at_once_get_their_own_results():
    # ctypes releases the GIL: one frame finds the other in flight and runs alone
    stacks = [_stack("v2", torch.float32), _stack("v1", torch.float32)]
    frames = torch.randn(200, 13)
    expected = [_stream(stack, frames, 1) for stack in stacks]
    got: List[Streamed] = [(torch.empty(0), [])] * 2

    def run(index: int) -> None:
        got[index] = _stream(stacks[index], frames, 2)

    workers = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert all(_same(a, b) for a, b in zip(got, expected))


def _child(stack: torch.nn.Sequential, frames: torch.Tensor, queue) -> None:
    out, active = _stream(stack, frames, 2)
    queue.put((out.numpy(), active))  # numpy: no torch shared-memory handles across the fork


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_streams_on_threads_too():
    stack = _stack("v2", torch.float64)
    frames = torch.randn(30, 13, dtype=torch.float64)
    expected = _stream(stack, frames, 2)  # starts the helpers in this process
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(stack, frames, queue))
    child.start()
    # the parent's helpers are not in the child, and its lock may have been copied held
    out, active = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert _same((torch.from_numpy(out), active), expected)
