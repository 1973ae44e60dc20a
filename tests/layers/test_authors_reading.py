"""Reading ``authors`` against a step-by-step reference of the authors' algorithm.

The reference below follows their code's structure (a residual-error accumulator per neuron,
``acc += h; out = Q(acc); acc -= out``; a quantiser whose min/max EMA is updated at every call
before quantising; signed symmetric levels) element by element, in plain Python for the
quantiser. It is an independent transcription, not a call into the package.
"""
from __future__ import annotations

import math

import pytest
import torch

from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.layers import ImprovedV2Layer, spiking_stack
from pytorch_kaldi_snn.layers.authors import ResidualEncoder
from pytorch_kaldi_snn.neurons.symmetric import SymmetricQuantiser

T, B, M, N = 7, 3, 5, 4
SETTINGS = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 1), (3, 3), (6, 3), (6, 4), (6, 10)]


class RefQuantiser:
    """Their FakeSpikeQuantization: per-call EMA (bias-corrected), clamp, trunc, threshold."""

    def __init__(self, n_bits, k, momentum=0.1):
        self.n_bits, self.k, self.m = n_bits, k, momentum
        self.min_b = self.max_b = self.lo = self.hi = 0.0
        self.steps = 0

    def __call__(self, v, training=True):
        if training:
            self.steps += 1
            corr = 1 - (1 - self.m) ** self.steps
            self.min_b = self.min_b * (1 - self.m) + self.m * v.min().item()
            self.max_b = self.max_b * (1 - self.m) + self.m * v.max().item()
            self.lo, self.hi = self.min_b / corr, self.max_b / corr
        a = max(abs(self.lo), abs(self.hi))
        n = 2 ** (self.n_bits - 1)
        scale = n * (1 - 1e-4) / (a if a != 0 else n)
        flat = v.detach().reshape(-1).tolist()
        out, slope = [], []
        for value in flat:
            c = min(max(value, -a), a)
            level = math.trunc(scale * c)
            out.append(0.0 if abs(level) <= self.k else level / scale)
            slope.append(1.0 if -a <= value <= a else 0.0)
        out = torch.tensor(out, dtype=v.dtype).reshape(v.shape)
        slope = torch.tensor(slope, dtype=v.dtype).reshape(v.shape)
        return out + (v - v.detach()) * slope  # value `out`, gradient = slope


@pytest.mark.parametrize("n_bits,k", SETTINGS)
def test_quantiser_matches_the_reference_over_steps(n_bits, k):
    torch.manual_seed(n_bits * 10 + k)
    quant, ref = SymmetricQuantiser(n_bits, k).double(), RefQuantiser(n_bits, k)
    for step in range(6):
        v = (torch.randn(B, N, dtype=torch.float64) * (1 + step)).requires_grad_(True)
        got, want = quant(v), ref(v)
        assert torch.allclose(got, want, rtol=1e-12, atol=0)
        assert torch.equal(got != 0, want != 0)
        (g_got,) = torch.autograd.grad(got.sum(), v)
        (g_want,) = torch.autograd.grad(want.sum(), v)
        assert torch.equal(g_got, g_want)
    quant.eval()
    v = torch.randn(B, N, dtype=torch.float64) * 3
    assert torch.allclose(quant(v), ref(v, training=False), rtol=1e-12, atol=0)


def test_one_bit_levels_are_all_zero_in_the_authors_quantiser():
    quant = SymmetricQuantiser(1, 0).double()
    assert torch.count_nonzero(quant(torch.randn(50, 50, dtype=torch.float64) * 5)) == 0


def _ref_stack(variant, x, layers, encoder_quant, quants, momentum=0.1):
    """Their forward: encoder, then per layer acc += h; out = Q(acc); acc -= out."""
    acc = torch.zeros_like(x[0])
    inp = []
    for x_t in x:
        acc = acc + x_t
        s = encoder_quant(acc)
        inp.append(s)
        acc = acc - s
    inp = torch.stack(inp)
    for layer, quant in zip(layers, quants):
        w, bias = layer.projection.weight, layer.projection.bias
        ws = inp @ w + bias
        n = layer.hidden_size
        h = torch.zeros(x.shape[1], n, dtype=x.dtype)
        acc = torch.zeros_like(h)
        out = torch.zeros_like(h)
        outs = []
        for t in range(x.shape[0]):
            if variant == "traditional":
                h = ws[t] + layer.beta * h
            else:
                g = ws[t] + (out @ layer.w_rec if variant == "v2" else 0.0)
                z, c = torch.sigmoid(g[:, :n]), torch.relu(g[:, n:])
                h = (1 - z) * c + z * h
            acc = acc + h
            out = quant(acc)
            outs.append(out)
            acc = acc - out
        inp = torch.stack(outs)
    return inp


@pytest.mark.parametrize("variant", ["traditional", "v1", "v2"])
@pytest.mark.parametrize("n_bits,k", [(1, 0), (2, 1), (3, 0), (3, 2), (6, 3), (6, 1)])
def test_authors_stack_matches_the_reference(variant, n_bits, k):
    torch.manual_seed(3)
    stack = spiking_stack(variant, M, [N, N], n_bits=[n_bits] * 2, thresholds=[k] * 2,
                          surrogates=["ste"] * 2, alphas=[1.0] * 2, dropouts=[0.0] * 2,
                          batchnorms=[False] * 2, readings=["authors"] * 2, impl="loop",
                          **({"betas": [1.0] * 2} if variant == "traditional" else {})).double()
    assert isinstance(stack[0], ResidualEncoder)
    layers = list(stack)[1:]
    with torch.no_grad():
        for layer in layers:
            layer.projection.bias.uniform_(-0.2, 0.5)
            if variant == "traditional":
                layer.beta.uniform_(0.6, 1.0)
    x = (torch.randn(T, B, M, dtype=torch.float64) * 2).requires_grad_(True)
    params = [p for layer in layers for p in layer.parameters()]
    y = stack(x)
    ref = _ref_stack(variant, x, layers, RefQuantiser(n_bits, k),
                     [RefQuantiser(n_bits, k) for _ in layers])
    assert torch.allclose(y, ref, atol=1e-12)
    # signed levels reach 2^(N-1) - 1 only: at or below the threshold every output is zero
    assert (torch.count_nonzero(y) > 0) == (k < 2 ** (n_bits - 1) - 1)
    upstream = torch.randn_like(y)
    got = torch.autograd.grad((y * upstream).sum(), [x, *params], allow_unused=True)
    want = torch.autograd.grad((ref * upstream).sum(), [x, *params], allow_unused=True)
    for g, w in zip(got, want):
        assert (g is None and w is None) or torch.allclose(g, w, atol=1e-10)
    if variant == "traditional":
        assert all(layer.beta.requires_grad for layer in layers)  # β learned, as theirs


def test_authors_reading_needs_the_step_path():
    with pytest.raises(ValueError, match="reading 'authors' runs on the step path only"):
        ImprovedV2Layer(4, 3, reading="authors")


def test_cfg_option_selects_the_reading_per_layer():
    from pytorch_kaldi_snn.neural_networks import ImprovedSNNv1
    options = {"snn_lay": "6,5", "snn_reading": "authors,paper", "snn_impl": "loop"}
    net = ImprovedSNNv1(options, 4)
    assert isinstance(net.net[0], ResidualEncoder)
    assert [layer.reading for layer in list(net.net)[1:]] == ["authors", "paper"]
    with pytest.raises(ConfigError, match="snn_reading = authors runs on the step path only"):
        ImprovedSNNv1({"snn_lay": "6", "snn_reading": "authors"}, 4)
