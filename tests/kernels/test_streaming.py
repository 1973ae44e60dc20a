"""Event-driven streaming inference (kernels.streaming) equals the dense eval-mode layers."""
from __future__ import annotations

import pytest
import torch

from pytorch_kaldi_snn.kernels.streaming import StreamingSNN
from pytorch_kaldi_snn.layers import spiking_stack

DT = torch.float64


def _trained_like_stack(variant: str, batchnorm: bool) -> torch.nn.Sequential:
    """A float64 stack whose BN statistics and b come from a few training passes."""
    torch.manual_seed(0)
    kwargs = {"betas": [0.8, 0.7]} if variant == "traditional" else {}
    stack = spiking_stack(variant, 7, [12, 10], n_bits=[4, 3], thresholds=[2, 1],
                          surrogates=["ste", "pwl"], alphas=[0.9, 1.0], dropouts=[0.2, 0.0],
                          batchnorms=[batchnorm, batchnorm], b_init=2.0,
                          **kwargs).double()
    stack.train()
    with torch.no_grad():
        for _ in range(3):
            stack(torch.randn(15, 4, 7, dtype=DT))
    return stack.eval()


@pytest.mark.parametrize("variant", ["traditional", "v1", "v2"])
@pytest.mark.parametrize("batchnorm", [True, False])
def test_streaming_equals_dense_eval(backend, variant, batchnorm):
    stack = _trained_like_stack(variant, batchnorm)
    readout = torch.nn.Linear(10, 5).double()
    utterance = torch.randn(25, 7, dtype=DT)
    with torch.no_grad():
        dense = stack(utterance[:, None, :])[:, 0]
        dense_scores = readout(dense)
    stream = StreamingSNN(stack)
    streamed = stream.run(utterance)
    assert 0 < (dense != 0).double().mean() < 1
    torch.testing.assert_close(streamed, dense, rtol=1e-9, atol=1e-10)
    assert stream.active_outputs[-1] == int((dense != 0).sum())
    scored = StreamingSNN(stack, readout).run(utterance)
    torch.testing.assert_close(scored, dense_scores, rtol=1e-9, atol=1e-10)


def test_streaming_keeps_state_between_calls_and_resets(backend):
    stack = _trained_like_stack("v2", True)
    utterance = torch.randn(20, 7, dtype=DT)
    stream = StreamingSNN(stack)
    first = torch.stack([stream.step(frame) for frame in utterance[:8]])
    rest = stream.run(utterance[8:])  # continues from frame 8's state
    stream.reset()
    again = stream.run(utterance)
    torch.testing.assert_close(torch.cat([first, rest]), again, rtol=0, atol=0)
    assert stream.frames == 20


@pytest.mark.parametrize("bias", [True, False])
def test_streaming_builds_no_graph_for_a_frame_that_requires_grad(backend, bias):
    stack = _trained_like_stack("v2", True)
    readout = torch.nn.Linear(10, 5, bias=bias).double()
    frame = torch.randn(7, dtype=DT, requires_grad=True)
    for stream in (StreamingSNN(stack), StreamingSNN(stack, readout)):
        out = stream.step(frame)
        assert out.grad_fn is None and not out.requires_grad


def test_streaming_rejects_an_empty_stack():
    with pytest.raises(ValueError, match="at least one"):
        StreamingSNN([])
