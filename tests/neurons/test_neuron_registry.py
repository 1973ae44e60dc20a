"""One definition per neuron (neurons.variants): a toy neuron added in the documented places
runs on the step path; every back end refuses a neuron or surrogate it lacks, by name."""
from __future__ import annotations

import ctypes
import re
from typing import Optional, Sequence

import pytest
import torch
from torch import Tensor

from pytorch_kaldi_snn import neural_networks
from pytorch_kaldi_snn.kernels import fused, native
from pytorch_kaldi_snn.kernels.streaming import StreamingSNN
from pytorch_kaldi_snn.layers import cost, spiking
from pytorch_kaldi_snn.layers.recurrence import step_loop
from pytorch_kaldi_snn.neurons import surrogate, variants
from pytorch_kaldi_snn.neurons.dynamics import SpikingState
from pytorch_kaldi_snn.neurons.options import NeuronOptions, OptionError
from pytorch_kaldi_snn.neurons.variants import NotImplementedByBackend
from repo_paths import ROOT
from skips import NO_C_COMPILER, missing, module

CONTRIBUTING = ROOT / "docs" / "CONTRIBUTING.md"


def _toy_current(x_t: Tensor, state: SpikingState, params: Sequence[Tensor],
                 mask: Optional[Tensor]) -> Tensor:
    """A neuron without synaptic memory: I[n] = mask ⊙ X[n]."""
    return x_t if mask is None else mask * x_t


TOY = variants.Neuron("toy", 99, 1, (), NeuronOptions, _toy_current)


class ToyLayer(spiking.SpikingLayer):
    neuron = TOY


class ToySNN(neural_networks._SpikingArchitecture):
    variant = "toy"


@pytest.fixture
def toy(monkeypatch):
    """The toy neuron added in the places docs/CONTRIBUTING.md lists (docs aside)."""
    monkeypatch.setitem(variants.NEURONS, "toy", TOY)                   # 1. neurons/
    monkeypatch.setitem(spiking.SPIKING_LAYERS, "toy", ToyLayer)         # 2. layers/spiking.py
    monkeypatch.setitem(cost.MULTS, "snn_toy",                          # 3. layers/cost.py
                        lambda m, n, s, r: s * m * n + 3 * n)
    return ToySNN                                                       # 4. neural_networks.py


@pytest.fixture
def toy_surrogate(monkeypatch):
    """A surrogate registered in neurons.surrogate only (no compiled kernel has it)."""
    monkeypatch.setitem(surrogate.SURROGATES, "toy_sg", surrogate.Surrogate(
        "toy_sg", lambda v, gamma, b: torch.full_like(v, 0.5), 17))
    return "toy_sg"


def test_adding_a_neuron_takes_at_most_five_places():
    section = CONTRIBUTING.read_text().split("## Adding a neuron", 1)[1].split("\n## ", 1)[0]
    places = re.findall(r"^\d+\. ", section, flags=re.M)
    assert 1 <= len(places) <= 5
    for where in ("neurons/variants.py", "layers/spiking.py", "layers/cost.py",
                  "neural_networks.py", "docs/model.md"):
        assert where in section, where


def test_toy_neuron_runs_on_the_step_path_and_in_the_cost_model(toy):
    torch.manual_seed(0)
    net = toy({"snn_lay": "6,5", "snn_impl": "loop", "snn_n_bits": "3", "snn_threshold": "1",
               "snn_use_batchnorm": "False"}, 4).double()
    layer = net.net[0]
    assert isinstance(layer, ToyLayer) and layer.kind == "snn_toy" and layer.alpha[0] == 1.0
    x = torch.randn(7, 2, 4, dtype=torch.float64, requires_grad=True)
    y = net(x)
    assert y.shape == (7, 2, 5) and (y != 0).any()
    y.sum().backward()
    assert x.grad is not None and layer.projection.weight.grad.abs().sum() > 0
    # the step loop is Eq. 8 and Eq. 22 over the toy current: V integrates the drive
    net.eval()
    with torch.no_grad():
        drive = layer.projection(x)
        b = layer.tracker.b
        v = torch.zeros(2, 6, dtype=torch.float64)
        y_prev = torch.zeros_like(v)
        for t in range(7):
            v = v + drive[t] - y_prev
            level = torch.floor(v / (b / 8)).clamp(1, 7)
            y_prev = torch.where(v > b / 8, level * b / 8, torch.zeros_like(v))
        torch.testing.assert_close(layer(x)[-1], y_prev, rtol=0, atol=0)
    assert cost.model_report(net).mults_per_frame > 0


def test_toy_neuron_runs_in_the_authors_reading(toy):
    stack = spiking.spiking_stack("toy", 4, [6], readings=["authors"], impl="loop",
                                  use_batchnorm=False)
    stack.train()
    assert stack(torch.randn(5, 3, 4)).shape == (5, 3, 6)


def test_fused_kernels_refuse_the_toy_neuron_by_name(toy, backend):
    layer = ToyLayer(4, 6, impl="fused")
    with pytest.raises(NotImplementedByBackend,
                       match="neuron 'toy' is not implemented by the fused kernels"):
        layer(torch.randn(5, 2, 4))


def test_streaming_refuses_the_toy_neuron_by_name(toy, backend):
    layer = ToyLayer(4, 6, impl="loop").eval()
    with pytest.raises(NotImplementedByBackend,
                       match="neuron 'toy' is not implemented by streaming"):
        StreamingSNN([layer])


def _v1_call(surrogate_name: str) -> None:
    gates = torch.randn(4, 2, 6, dtype=torch.float64, requires_grad=True)
    y, _, _ = fused.v1_fused(gates, torch.ones(3, dtype=torch.float64),
                             torch.tensor(1.0, dtype=torch.float64), 3, 1, surrogate_name, None)
    y.sum().backward()


def test_pytorch_operator_kernels_run_a_surrogate_registered_only_in_python(toy_surrogate,
                                                                            monkeypatch):
    monkeypatch.setenv("PYTORCH_KALDI_SNN_KERNEL", "torch")
    _v1_call(toy_surrogate)


def test_native_kernels_refuse_a_surrogate_they_lack_by_name(toy_surrogate, monkeypatch):
    if native.load(torch.float64) is None:
        missing(NO_C_COMPILER)
    monkeypatch.setenv("PYTORCH_KALDI_SNN_KERNEL", "native")
    with pytest.raises(NotImplementedByBackend,
                       match="surrogate 'toy_sg' is not implemented by the native C kernels"):
        _v1_call(toy_surrogate)


def test_triton_kernels_refuse_a_neuron_and_a_surrogate_they_lack_by_name(toy, toy_surrogate):
    # The declarations fused_loop checks before a Triton launch (kernels/fused.py). Not through
    # a forced launch on CPU: that needs TRITON_INTERPRET=1 when the kernels are first imported,
    # which would leave them interpreted for the rest of this process (the suite's other
    # interpreter runs are child processes).
    module("triton")
    from pytorch_kaldi_snn.kernels import triton_kernels, triton_streaming

    with pytest.raises(NotImplementedByBackend,
                       match="surrogate 'toy_sg' is not implemented by the Triton kernels"):
        variants.require("the Triton kernels", triton_kernels.NEURONS, triton_kernels.SURROGATES,
                         variants.V1, toy_surrogate)

    for declared in (triton_kernels.NEURONS, triton_streaming.NEURONS):
        with pytest.raises(NotImplementedByBackend,
                           match="neuron 'toy' is not implemented by Triton"):
            variants.require("Triton", declared, (), TOY)


def test_every_back_end_declares_only_registered_names():
    from pytorch_kaldi_snn.kernels import kernel_args, streaming

    for neurons in (native.NEURONS, kernel_args.NEURONS, streaming.TORCH_NEURONS):
        assert set(neurons) <= set(variants.NEURONS)
    assert set(native.SURROGATES) <= set(surrogate.SURROGATES)


def test_c_source_takes_its_codes_from_the_registry_and_rejects_unknown_ones():
    lib = native.load(torch.float64)
    if lib is None:
        missing(NO_C_COMPILER)
    text = native.source()
    for name in native.SURROGATES:
        assert f"#define SURROGATE_{name.upper()} ({surrogate.SURROGATES[name].code})" in text
    for name in native.NEURONS:
        assert f"#define NEURON_{name.upper()} ({variants.NEURONS[name].code})" in text
    n = 3
    # lif_bwd: gy, v, v_prev, i_prev, mask, alpha, beta, dv_c, dy_c, di_c, dalpha, dbeta, d_drive
    buf = [torch.ones(2 * n, dtype=torch.float64) for _ in range(13)]
    for carry in buf[7:]:
        carry.zero_()
    ptrs = [native.ptr(t) for t in buf]
    assert lib.lif_bwd(1, n, *ptrs, 1.0, 0.5, 2.0, 17) == native.UNKNOWN_CODE  # no code 17
    assert all(t.abs().sum() == 0 for t in buf[7:])  # refused before writing anything
    assert lib.lif_bwd(1, n, *ptrs, 1.0, 0.5, 2.0, surrogate.surrogate_code("pwl")) == 0
    assert buf[7].abs().sum() > 0  # a known code runs
    assert lib.gated_bwd(1, n, *ptrs, 1.0, 0.5, 2.0, 17) == native.UNKNOWN_CODE
    ones, bias = (torch.full((2 * n,), value, dtype=torch.float64) for value in (1, 0))
    acc = torch.zeros(2 * n + 8, dtype=torch.float64)  # w + a 64-byte line of float64
    state = [torch.zeros(n, dtype=torch.float64) for _ in range(4)]  # I, V, Ŷ, Ŷ before
    layer = native.stream_layers(torch.float64, 1)
    layer[0].neuron, layer[0].m, layer[0].n = 99, 1, n  # no neuron code 99
    layer[0].W, layer[0].bias, layer[0].alpha = native.ptr(ones), native.ptr(bias), native.ptr(ones)
    layer[0].i, layer[0].v, layer[0].y, layer[0].y_prev = map(native.ptr, state)
    layer[0].acc = native.ptr(acc)
    layer[0].c, layer[0].delta, layer[0].gamma, layer[0].qmax = 1.0, 0.25, 0.25, 7.0
    frame = (1, ctypes.addressof(layer), native.ptr(ones), 1, None)
    assert lib.stream_frame(*frame) == native.UNKNOWN_CODE
    assert state[1].abs().sum() == 0
    layer[0].neuron = variants.V1.code
    assert lib.stream_frame(*frame) == 0 and state[1].abs().sum() > 0
    with pytest.raises(NotImplementedByBackend,
                       match="'toy' is not implemented by the native C kernels"):
        native.check_status(native.UNKNOWN_CODE, "toy")


def test_reference_loop_refuses_an_unknown_surrogate_by_name():
    with pytest.raises(ValueError, match="unknown surrogate 'atan'"):
        step_loop(variants.V1, torch.zeros(2, 1, 4), torch.ones(2), (), torch.tensor(1.0), 2, 1,
                  "atan", None)


def test_options_refuse_unknown_names_and_values_by_name():
    with pytest.raises(OptionError, match="surrogate 'atan' is not one of ste, ste_clip"):
        NeuronOptions(surrogate="atan")
    with pytest.raises(OptionError, match="threshold 8 is above 2\\^N - 1 = 7 for n_bits 3"):
        NeuronOptions(n_bits=3, threshold=8)
    with pytest.raises(ValueError, match="unknown neuron 'toy'; registered: traditional, v1, v2"):
        variants.neuron("toy")
    with pytest.raises(ValueError, match="no spiking layer for neuron 'toy'"):
        spiking.spiking_stack("toy", 4, [3])
