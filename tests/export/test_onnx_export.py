"""ONNX export for streaming (export/onnx.py): onnxruntime against StreamingSNN, refusals."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pytorch_kaldi_snn.errors import UserInputError
from pytorch_kaldi_snn.export.onnx import OnnxStreamer, export_step
from pytorch_kaldi_snn.kernels.streaming import StreamingSNN
from pytorch_kaldi_snn.layers import spiking_stack
from pytorch_kaldi_snn.layers.baselines import MLP, recurrent_stack

pytestmark = pytest.mark.usefixtures("export_extra")

CASES = [("traditional", 1), ("traditional", 4), ("v1", 3), ("v2", 1), ("v2", 6)]


def _trained_like(variant: str, bits: int, dtype: torch.dtype):
    """A 2-layer stack with batch-norm statistics and membrane maxima from a training pass."""
    torch.manual_seed(1)
    extra = {"betas": [0.8] * 2} if variant == "traditional" else {}
    stack = spiking_stack(variant, 10, [48, 32], n_bits=[bits] * 2, thresholds=[1, 1],
                          batchnorms=[True] * 2, **extra)
    readout = MLP(32, [7], acts=["softmax"], dropouts=[0.0], batchnorms=[False],
                  layernorms=[False])
    stack.train()
    stack(torch.randn(40, 8, 10) * 2)
    return stack.eval().to(dtype), readout.eval().to(dtype)


def _levels(y, layer) -> np.ndarray:
    return np.round(np.asarray(y) / float(layer.tracker.b / 2 ** layer.n_bits))


def _first_divergence(ours: np.ndarray, theirs: np.ndarray) -> int:
    """The first frame whose output levels differ (the frame count if none)."""
    differ = (ours != theirs).any(-1)
    return int(np.argmax(differ)) if differ.any() else len(differ)


@pytest.mark.parametrize("variant,bits", CASES)
def test_onnxruntime_matches_streaming(variant: str, bits: int, tmp_path: Path):
    """float64: not one output level differs from StreamingSNN's over 3 utterances and the
    log-posteriors agree to 1e-12. float32: ONNX Runtime rounds in another order, so a value on
    a level's threshold may land one level apart, and through the recurrence that one flip
    changes every later frame; so the log-posteriors agree to 1e-4 up to the first frame whose
    levels differ, there a single level is one step apart (a rounding tie, not an error), and
    at least half of the frames come before such a tie."""
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-4)):
        stack, readout = _trained_like(variant, bits, dtype)
        export_step(list(stack), list(readout), tmp_path / "m.onnx", dtype)
        runner = OnnxStreamer(tmp_path / "m.onnx")
        stream = StreamingSNN(stack)
        agreeing = 0
        for seed in range(3):
            frames = torch.randn(120, 10, generator=torch.Generator().manual_seed(seed),
                                 dtype=dtype) * 2
            stream.reset()
            reference = stream.run(frames)
            post, outputs = runner.run(frames.numpy())
            expected = torch.log_softmax(readout[0].linear(reference), -1).detach().numpy()
            theirs, ours = _levels(outputs[-1], stack[1]), _levels(reference, stack[1])
            first = _first_divergence(ours, theirs)
            agreeing += first
            assert first == len(ours) or dtype == torch.float32, (dtype, seed, first)
            assert np.abs(post[:first] - expected[:first]).max() < tol
            if first < len(ours):
                assert np.abs(theirs[first] - ours[first]).sum() == 1, (seed, first)
            assert np.count_nonzero(reference) > 0  # the comparison sees activity
        assert agreeing >= 0.5 * 3 * 120, (dtype, agreeing)  # ties are rare, not every few frames


def test_only_the_streaming_form_exports(tmp_path: Path):
    layer = spiking_stack("v2", 4, [6])[0]
    layer.projection.layernorm = torch.nn.LayerNorm(12)  # depends on the frame: not folded
    with pytest.raises(UserInputError) as err:
        export_step([layer], [], tmp_path / "m.onnx")
    assert str(err.value) == ("ONNX export runs spiking layers of the paper reading without "
                              "layer norm (the streaming form)")
    assert not (tmp_path / "m.onnx").exists()


def test_a_file_that_is_not_an_exported_model_is_one_line(tmp_path: Path):
    bad = tmp_path / "model.onnx"
    bad.write_text("not a model")
    with pytest.raises(UserInputError) as err:
        OnnxStreamer(bad)
    assert str(err.value).startswith(f"{bad}: not a readable ONNX model (")


def test_a_float64_export_of_a_float32_model_folds_in_float64(tmp_path: Path):
    """--float64 on a float32 checkpoint: the levels are StreamingSNN's of the float64 model
    exactly (batch norm folded in float64, not folded in float32 and widened), and the
    caller's stack and readout stay float32."""
    stack, readout = _trained_like("v2", 6, torch.float32)
    export_step(list(stack), list(readout), tmp_path / "m.onnx", torch.float64)
    assert all(p.dtype == torch.float32 for p in [*stack.parameters(), *readout.parameters()])
    stream = StreamingSNN(copy.deepcopy(stack).double())
    frames = torch.randn(200, 10, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64) * 2
    reference = stream.run(frames)
    _, outputs = OnnxStreamer(tmp_path / "m.onnx").run(frames.numpy())
    assert np.array_equal(_levels(outputs[-1], stack[1]), _levels(reference, stack[1]))
    assert np.count_nonzero(reference) > 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_lstm_and_gru_baselines_export_one_step(kind: str, tmp_path: Path):
    """An LSTM/GRU stack (batch norm statistics from a training pass, one layer norm) exported
    as one step (frame and h[, c] in, log-posteriors and state out): onnxruntime's per-frame
    outputs are the PyTorch layers' over 3 utterances to 1e-10 in float64, 1e-4 in float32."""
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        torch.manual_seed(2)
        stack = recurrent_stack(kind, 10, [24, 16], acts=["tanh"] * 2, dropouts=[0.0] * 2,
                                batchnorms=[True, False], layernorms=[False, True])
        readout = MLP(16, [7], acts=["softmax"], dropouts=[0.0], batchnorms=[False],
                      layernorms=[False])
        stack.train()
        stack(torch.randn(40, 8, 10) * 2)
        stack, readout = stack.eval().to(dtype), readout.eval().to(dtype)
        export_step(list(stack), list(readout), tmp_path / "m.onnx", dtype)
        runner = OnnxStreamer(tmp_path / "m.onnx")
        assert [name for name, _ in runner.state_inputs] == (
            ["h0", "c0", "h1", "c1"] if kind == "lstm" else ["h0", "h1"])
        for seed in range(3):
            frames = torch.randn(50, 10, generator=torch.Generator().manual_seed(seed),
                                 dtype=dtype) * 2
            with torch.no_grad():
                hidden = stack(frames[:, None])[:, 0]
                expected = readout(hidden).numpy()
            post, outputs = runner.run(frames.numpy())
            assert np.abs(post - expected).max() < tol
            assert np.abs(outputs[-1] - hidden.numpy()).max() < tol
