"""NIR export (export/nir.py): the graph written, read back with ``nir`` and run in snnTorch,
against a reference simulator of NIR's discrete semantics and against this model's forward;
v1/v2 and multi-bit outputs refused with the reason."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from pytorch_kaldi_snn.errors import UserInputError
from pytorch_kaldi_snn.export.nir import to_nir
from pytorch_kaldi_snn.layers import spiking_stack
from pytorch_kaldi_snn.layers.baselines import MLP, recurrent_stack

pytestmark = pytest.mark.usefixtures("export_extra")


def _trained_like():
    torch.manual_seed(3)
    stack = spiking_stack("traditional", 10, [24, 16], n_bits=[1, 1], thresholds=[1, 1],
                          betas=[0.6] * 2, alphas=[0.8] * 2, batchnorms=[True] * 2)
    readout = MLP(16, [5], acts=["softmax"], dropouts=[0.0], batchnorms=[False],
                  layernorms=[False])
    stack.train()
    stack(torch.randn(40, 8, 10) * 2)
    return stack.eval().double(), readout.eval().double()


def _nir_reference(graph, frames: np.ndarray) -> np.ndarray:
    """NIR's nodes stepped with dt = τ·(1 − decay) (the Euler step snnTorch takes), hard reset
    to v_reset: Affine, then I ← (1 − dt/τ_syn)·I + (dt/τ_syn)·w_in·x, V ← (1 − dt/τ_mem)·V +
    (dt/τ_mem)·r·I, z = V > θ, V ← v_reset where z."""
    import nir

    dt = 1e-4
    nodes = [graph.nodes[key] for key in _chain(graph)]
    state = {id(n): (0.0, 0.0) for n in nodes}
    out = []
    for frame in frames:
        x = frame
        for node in nodes:
            if isinstance(node, nir.Affine):
                x = node.weight @ x + node.bias
            elif isinstance(node, nir.CubaLIF):
                i, v = state[id(node)]
                i = (1 - dt / node.tau_syn) * i + dt / node.tau_syn * node.w_in * x
                v = (1 - dt / node.tau_mem) * v + dt / node.tau_mem * node.r * i
                z = (v > node.v_threshold).astype(float)
                state[id(node)] = (i, np.where(z > 0, node.v_reset, v))
                x = z
        out.append(x)
    return np.array(out)


def _chain(graph):
    nxt = dict(graph.edges)
    key, keys = "input", []
    while key in nxt:
        key = nxt[key]
        if key != "output":
            keys.append(key)
    return keys


def _snntorch(graph, frames: np.ndarray) -> np.ndarray:
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its scaling decisions
        net = import_from_nir(graph)
    with torch.no_grad():
        return np.array([net(torch.tensor(f[None], dtype=torch.float32))[0][0].numpy()
                         for f in frames])


def test_round_trip_runs_in_snntorch_as_nir_specifies_and_as_our_forward_until_the_reset(
        tmp_path: Path):
    import nir

    stack, readout = _trained_like()
    graph = to_nir(list(stack), list(readout))
    nir.write(str(tmp_path / "m.nir"), graph)
    back = nir.read(str(tmp_path / "m.nir"))
    assert _chain(back) == _chain(graph) and len(_chain(graph)) == 5
    for key in _chain(graph):
        for name, value in vars(graph.nodes[key]).items():
            if isinstance(value, np.ndarray) and name not in ("input_type", "output_type"):
                np.testing.assert_array_equal(getattr(back.nodes[key], name), value)
    frames = np.random.default_rng(0).normal(size=(60, 10)) * 2
    reference = _nir_reference(back, frames)
    np.testing.assert_allclose(_snntorch(back, frames), reference, rtol=1e-4, atol=1e-4)
    # our forward: identical until the first layer first fires (the resets differ after it)
    ours = readout(stack(torch.from_numpy(frames)[:, None])[:, 0])  # log-softmax of the scores
    first_spike = int(np.argmax((stack[0](torch.from_numpy(frames)[:, None]) != 0).any(-1)
                                .any(-1).numpy()))
    assert first_spike > 0
    upto = slice(0, first_spike + 1)
    scores = torch.from_numpy(reference[upto])
    np.testing.assert_allclose(torch.log_softmax(scores, -1).numpy(),
                               ours[upto].detach().numpy(), atol=1e-9)


@pytest.mark.parametrize("variant,bits,reason", [
    ("v1", 1, "NIR cannot express neuron 'v1': NIR has no gating primitive (F⊙I + (1 − F)⊙C "
              "multiplies two signals); only traditional LIF layers export"),
    ("v2", 1, "NIR cannot express neuron 'v2': NIR has no gating primitive (F⊙I + (1 − F)⊙C "
              "multiplies two signals); only traditional LIF layers export"),
    ("traditional", 3, "NIR cannot express 3-bit outputs: its CubaLIF and Threshold emit binary "
                       "events only (N = 1)"),
])
def test_what_nir_cannot_express_is_refused_with_the_reason(variant, bits, reason):
    extra = {"betas": [0.5]} if variant == "traditional" else {}
    stack = spiking_stack(variant, 4, [6], n_bits=[bits], thresholds=[1], **extra)
    with pytest.raises(UserInputError) as err:
        to_nir(list(stack), [])
    assert str(err.value) == reason


def test_an_lstm_baseline_is_refused_with_the_reason():
    """model_chain accepts LSTM/GRU baselines (for ONNX); NIR refuses them by name."""
    stack = recurrent_stack("lstm", 4, [6], acts=["tanh"], dropouts=[0.0], batchnorms=[False],
                            layernorms=[False])
    with pytest.raises(UserInputError) as err:
        to_nir(list(stack), [])
    assert str(err.value) == ("NIR cannot express a LSTMLayer: NIR describes spiking neurons; "
                              "only traditional LIF layers export")
