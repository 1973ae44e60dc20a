"""Spiking layers against a plain step-by-step reference written from the paper's equations.

The reference below is separate code: its own Eq. 22 (with the surrogate attached by the
"value + (V − V.detach())·surrogate" trick), its own Eq. 7/8, 16-18 and 19-21, all in float64.
Outputs and gradients (inputs, weights, decays, recurrent weights) must agree.
"""
import math

import pytest
import torch

from pytorch_kaldi_snn.layers import ImprovedV1Layer, ImprovedV2Layer, LIFLayer
from pytorch_kaldi_snn.layers.recurrence import lif_loop, v1_loop, v2_loop

T, BATCH, M, N = 12, 3, 5, 4


def ref_output(v, b, n_bits, k, surrogate):
    """Eq. 22 with Ŷ = level · b/2^N and dŶ/dV = surrogate."""
    step = b / 2 ** n_bits
    gamma = k * step
    top = 2 ** n_bits - 1
    level = torch.zeros_like(v)
    for idx in range(v.numel()):
        value = v.reshape(-1)[idx].item()
        if value > gamma:
            level.reshape(-1)[idx] = min(max(math.floor(value / step), 1), top)
    dist = torch.clamp(torch.maximum(gamma - v, v - b), min=0.0) / b
    slope = {"ste": torch.ones_like(v), "ste_clip": (v <= b).to(v.dtype),
             "pwl": torch.clamp(1 - 2 * dist, min=0.0),
             "fast_sigmoid": 1.0 / (1.0 + 10.0 * dist) ** 2}[surrogate]
    return (level * step).detach() + (v - v.detach()) * slope.detach()


def ref_reset(y_prev, k):
    # Eq. 8: subtract what was emitted (the only reset)
    return y_prev


def ref_lif(x, w, bias, alpha, beta, b, n_bits, k, surrogate, mask=None):
    i = torch.zeros(x.shape[1], w.shape[1], dtype=x.dtype)
    v, y = i, i
    outs = []
    for n in range(x.shape[0]):
        xw = x[n] @ w + bias
        if mask is not None:
            xw = xw * mask
        i = beta * i + xw                                   # Eq. 7
        v = alpha * v + i - ref_reset(y, k)          # Eq. 8
        y = ref_output(v, b, n_bits, k, surrogate)          # Eq. 22
        outs.append(y)
    return torch.stack(outs)


def ref_gated(x, w, bias, w_rec, alpha, b, n_bits, k, surrogate, mask=None):
    n_out = w.shape[1] // 2
    w_fi, w_ci = w[:, :n_out], w[:, n_out:]
    i = torch.zeros(x.shape[1], n_out, dtype=x.dtype)
    v, y = i, i
    outs = []
    for n in range(x.shape[0]):
        pre_f = x[n] @ w_fi + bias[:n_out]
        pre_c = x[n] @ w_ci + bias[n_out:]
        if w_rec is not None:                               # v2: Eq. 19-20
            pre_f = pre_f + y @ w_rec[:, :n_out]
            pre_c = pre_c + y @ w_rec[:, n_out:]
        f = 1.0 / (1.0 + torch.exp(-pre_f))                 # Eq. 16 / 19
        c = torch.clamp(pre_c, min=0.0)                     # Eq. 17 / 20
        if mask is not None:
            c = c * mask
        i = f * i + (1.0 - f) * c                           # Eq. 18 / 21
        v = alpha * v + i - ref_reset(y, k)          # Eq. 8
        y = ref_output(v, b, n_bits, k, surrogate)          # Eq. 22
        outs.append(y)
    return torch.stack(outs)


SETTINGS = [(1, 0), (1, 1), (2, 1), (4, 0), (6, 3), (16, 1000)]


def _make(cls, n_bits, k, surrogate, **extra):
    torch.manual_seed(1)
    layer = cls(M, N, n_bits=n_bits, threshold=k, surrogate=surrogate,
                use_batchnorm=False, learn_decay=True, b_init=1.5, alpha=0.95, **extra).double()
    with torch.no_grad():
        layer.projection.bias.uniform_(-0.3, 0.6)
    layer.tracker.update(torch.tensor(1.5))  # b = 1.5 already tracked: no first-batch calibration
    return layer


def _compare(layer, params, reference):
    torch.manual_seed(2)
    x = (torch.randn(T, BATCH, M, dtype=torch.float64) * 1.5).requires_grad_(True)
    b = layer.tracker.b.detach().clone()
    y = layer(x)
    upstream = torch.randn_like(y)
    grads = torch.autograd.grad((y * upstream).sum(), [x] + params)

    x_ref = x.detach().clone().requires_grad_(True)
    ref_params = [p.detach().clone().requires_grad_(True) for p in params]
    y_ref = reference(x_ref, ref_params, b)
    ref_grads = torch.autograd.grad((y_ref * upstream).sum(), [x_ref] + ref_params)

    assert torch.count_nonzero(y) > 0, "degenerate case: no output at all"
    assert torch.allclose(y, y_ref, atol=1e-12)
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("n_bits,k", SETTINGS)
@pytest.mark.parametrize("surrogate", ["ste", "ste_clip", "pwl", "fast_sigmoid"])
def test_traditional_layer_matches_eq_7_8_22(n_bits, k, surrogate):
    layer = _make(LIFLayer, n_bits, k, surrogate, beta=0.8)
    params = [layer.projection.weight, layer.projection.bias, layer.alpha, layer.beta]

    def reference(x, p, b):
        return ref_lif(x, p[0], p[1], p[2], p[3], b, n_bits, k, surrogate)

    _compare(layer, params, reference)


@pytest.mark.parametrize("n_bits,k", SETTINGS)
@pytest.mark.parametrize("surrogate", ["ste", "ste_clip", "pwl", "fast_sigmoid"])
def test_v1_layer_matches_eq_16_18(n_bits, k, surrogate):
    layer = _make(ImprovedV1Layer, n_bits, k, surrogate)
    params = [layer.projection.weight, layer.projection.bias, layer.alpha]

    def reference(x, p, b):
        return ref_gated(x, p[0], p[1], None, p[2], b, n_bits, k, surrogate)

    _compare(layer, params, reference)


@pytest.mark.parametrize("n_bits,k", SETTINGS)
@pytest.mark.parametrize("surrogate", ["ste", "ste_clip", "pwl", "fast_sigmoid"])
def test_v2_layer_matches_eq_19_21(n_bits, k, surrogate):
    layer = _make(ImprovedV2Layer, n_bits, k, surrogate)
    params = [layer.projection.weight, layer.projection.bias, layer.w_rec, layer.alpha]

    def reference(x, p, b):
        return ref_gated(x, p[0], p[1], p[2], p[3], b, n_bits, k, surrogate)

    _compare(layer, params, reference)


def _mask():
    torch.manual_seed(5)
    return torch.bernoulli(torch.full((BATCH, N), 0.7, dtype=torch.float64)) / 0.7


def test_time_loops_apply_the_dropout_mask_like_the_reference():
    torch.manual_seed(3)
    x = torch.randn(T, BATCH, M, dtype=torch.float64)
    w = torch.randn(M, 2 * N, dtype=torch.float64)
    w_rec = torch.randn(N, 2 * N, dtype=torch.float64)
    zero = torch.zeros(2 * N, dtype=torch.float64)
    alpha = torch.full((N,), 0.9, dtype=torch.float64)
    beta = torch.full((N,), 0.7, dtype=torch.float64)
    b = torch.tensor(2.0, dtype=torch.float64)
    mask = _mask()
    args = (b, 3, 2, "ste", mask)

    y, _, _ = lif_loop(x @ w[:, :N], alpha, beta, *args)
    assert torch.allclose(y, ref_lif(x, w[:, :N], zero[:N], alpha, beta, b, 3, 2, "ste",
                                     mask))
    y, _, _ = v1_loop(x @ w, alpha, *args)
    assert torch.allclose(y, ref_gated(x, w, zero, None, alpha, b, 3, 2, "ste", mask))
    y, v_max, state = v2_loop(x @ w, w_rec, alpha, *args)
    assert torch.allclose(y, ref_gated(x, w, zero, w_rec, alpha, b, 3, 2, "ste", mask))
    assert torch.equal(state.y, y[-1]) and not v_max.requires_grad


def test_loops_continue_from_a_given_state():
    torch.manual_seed(4)
    gates = torch.randn(10, 2, 6, dtype=torch.float64)
    w_rec = torch.randn(3, 6, dtype=torch.float64)
    alpha = torch.ones(3, dtype=torch.float64)
    b = torch.tensor(1.0, dtype=torch.float64)
    args = (alpha, b, 4, 1, "pwl", None)
    whole, v_max, _ = v2_loop(gates, w_rec, *args)
    first, max1, state = v2_loop(gates[:4], w_rec, *args)
    second, max2, _ = v2_loop(gates[4:], w_rec, *args, state=state)
    assert torch.equal(torch.cat([first, second]), whole)
    assert v_max == torch.maximum(max1, max2)


def test_v_max_is_the_maximum_membrane_potential():
    drive = torch.tensor([[[0.2]], [[0.5]], [[-1.0]]], dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    # α = β = 1, b large so nothing is emitted: V = cumulative sum of I = 0.2, 0.9, 0.6
    _, v_max, _ = lif_loop(drive, one, one, torch.tensor(100.0, dtype=torch.float64), 2, 3,
                           "ste", None)
    assert v_max.item() == pytest.approx(0.9)


def test_batchnorm_normalises_weighted_sums_over_all_frames():
    torch.manual_seed(6)
    layer = LIFLayer(M, N, use_batchnorm=True, beta=0.5).double()
    layer.tracker.update(torch.tensor(0.5))  # b = 0.5 already tracked: no calibration
    x = torch.randn(T, BATCH, M, dtype=torch.float64)
    b = layer.tracker.b.clone()
    xw = x @ layer.projection.weight
    mean = xw.mean(dim=(0, 1))
    var = xw.var(dim=(0, 1), unbiased=False)
    drive = (xw - mean) / torch.sqrt(var + 1e-5)
    expected, _, _ = lif_loop(drive, layer.alpha, layer.beta, b, 6, 3, "ste", None)
    assert layer.projection.bias is None
    assert torch.allclose(layer(x), expected, atol=1e-12)


def test_recurrent_dropout_mask_is_constant_over_time():
    torch.manual_seed(7)
    layer = ImprovedV1Layer(M, 64, dropout=0.5, use_batchnorm=False)
    with torch.no_grad():
        layer.projection.bias[64:].fill_(5.0)  # candidate always positive
    y = layer(torch.randn(30, 2, M))
    silent = (y == 0).all(dim=0)  # neurons whose candidate was dropped for the whole sequence
    assert 0.2 < silent.float().mean().item() < 0.8
    layer.eval()
    assert not (layer(torch.randn(30, 2, M)) == 0).all(dim=0).any()


def test_initialisation_glorot_inputs_orthogonal_recurrent():
    layer = ImprovedV2Layer(40, 30)
    for block in layer.w_rec.detach().chunk(2, dim=1):
        assert torch.allclose(block.T @ block, torch.eye(30), atol=1e-5)
    bound = math.sqrt(6.0 / (40 + 30))
    assert layer.projection.weight.abs().max().item() <= bound
    assert layer.alpha.requires_grad is False and "alpha" in layer.state_dict()


def test_forget_bias_initialises_the_forget_shift():
    layer = ImprovedV2Layer(4, 3, forget_bias=2.0)
    assert layer.projection.batchnorm.bias[:3].tolist() == [2.0] * 3
    assert layer.projection.batchnorm.bias[3:].tolist() == [0.0] * 3
