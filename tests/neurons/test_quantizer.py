"""Multi-bit quantiser (Eq. 22), surrogate gradients and the membrane-maximum EMA."""
import pytest
import torch

from pytorch_kaldi_snn.neurons.ema import MembraneMaxTracker
from pytorch_kaldi_snn.neurons.quantizer import check_bits_threshold, quantize, quantize_level
from pytorch_kaldi_snn.neurons.surrogate import surrogate_grad

B = torch.tensor(2.0, dtype=torch.float64)


def test_levels_follow_floor_of_v_over_delta():
    # N = 2, b = 2: Δ = 0.5, k = 1: γ = 0.5
    v = torch.tensor([-1.0, 0.0, 0.5, 0.51, 0.99, 1.0, 1.49, 1.5, 1.99], dtype=torch.float64)
    expected = [0, 0, 0, 1, 1, 2, 2, 3, 3]
    assert quantize_level(v, B, 2, 1).tolist() == expected


def test_threshold_zeroes_levels_at_or_below_gamma():
    # N = 3, b = 2: Δ = 0.25, k = 3: γ = 0.75; V = 0.75 → 0, just above → floor(3.04) = 3
    v = torch.tensor([0.5, 0.74, 0.75, 0.76, 1.0], dtype=torch.float64)
    assert quantize_level(v, B, 3, 3).tolist() == [0, 0, 0, 3, 4]


def test_top_level_clamps():
    v = torch.tensor([2.0, 5.0, 1e6], dtype=torch.float64)
    for n_bits in (1, 4, 6, 16):
        assert quantize_level(v, B, n_bits, 0).tolist() == [2 ** n_bits - 1] * 3


def test_one_bit_k0_emits_the_nonzero_level_above_zero():
    v = torch.tensor([-0.3, 0.0, 1e-4, 0.3, 1.2, 7.0], dtype=torch.float64)
    assert quantize_level(v, B, 1, 0).tolist() == [0, 0, 1, 1, 1, 1]
    # delivered value is the level times Δ = b/2
    assert quantize(v, B, 1, 0).tolist() == [0, 0, 1.0, 1.0, 1.0, 1.0]


def test_one_bit_k1_is_a_binary_spike_at_half_b():
    v = torch.tensor([0.9, 1.0, 1.01, 3.0], dtype=torch.float64)
    assert quantize_level(v, B, 1, 1).tolist() == [0, 0, 1, 1]


def test_sixteen_bits_and_delivered_value():
    v = torch.linspace(-1, 3, 101, dtype=torch.float64)
    y = quantize(v, B, 16, 5)
    delta = 2.0 / 2 ** 16
    assert torch.all(y[v <= 5 * delta] == 0)
    inside = (v > 5 * delta) & (v < 2.0)
    assert torch.allclose(y[inside], v[inside], atol=delta)
    assert y.max().item() == pytest.approx(2.0 - delta)


@pytest.mark.parametrize("n_bits,k", [(0, 0), (17, 0), (2, 4), (2, -1)])
def test_bad_bits_or_threshold_rejected(n_bits, k):
    with pytest.raises(ValueError):
        check_bits_threshold(n_bits, k)


def _grad(v, n_bits, k, surrogate):
    v = v.clone().requires_grad_(True)
    quantize(v, B, n_bits, k, surrogate).sum().backward()
    return v.grad


def test_ste_gradient_is_one_everywhere():
    v = torch.linspace(-3, 5, 33, dtype=torch.float64)
    assert torch.equal(_grad(v, 3, 2, "ste"), torch.ones_like(v))


def test_pwl_and_fast_sigmoid_gradients_match_their_formulas():
    # N = 2, b = 2, k = 1: γ = 0.5; identity range [0.5, 2]
    v = torch.tensor([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0, 2.5, 3.5], dtype=torch.float64)
    d = torch.tensor([0.75, 0.25, 0.125, 0, 0, 0, 0.25, 0.75], dtype=torch.float64)
    assert torch.allclose(_grad(v, 2, 1, "pwl"), (1 - 2 * d).clamp(min=0))
    assert torch.allclose(_grad(v, 2, 1, "fast_sigmoid"), 1 / (1 + 10 * d) ** 2)
    assert torch.allclose(surrogate_grad("pwl", v, torch.tensor(0.5), B), (1 - 2 * d).clamp(min=0))


def test_unknown_surrogate_lists_valid_names():
    with pytest.raises(ValueError, match="ste, ste_clip, pwl, fast_sigmoid"):
        surrogate_grad("atan", torch.zeros(1), torch.tensor(0.0), B)


def test_no_gradient_reaches_b():
    b = torch.tensor(2.0, requires_grad=True)
    v = torch.randn(5, requires_grad=True)
    quantize(v, b, 4, 1).sum().backward()
    assert b.grad is None and v.grad is not None


def test_ema_is_bias_corrected_and_updates_in_order():
    tracker = MembraneMaxTracker(momentum=0.1, b_init=2.0)
    assert tracker.b.item() == 2.0
    tracker.update(torch.tensor(4.0))
    assert tracker.b.item() == pytest.approx(4.0)  # one observation: the estimate is exact
    tracker.update(torch.tensor(2.0))
    biased = 0.9 * 0.4 + 0.1 * 2.0
    assert tracker.b_biased.item() == pytest.approx(biased)
    assert tracker.b.item() == pytest.approx(biased / (1 - 0.9 ** 2))
    assert tracker.b_steps.item() == 2


def test_ema_takes_at_most_a_doubling_per_batch():
    # A leak-free membrane on a long utterance reports a maximum proportional to its length;
    # leaping to it made 2,000-frame training overflow (docs/robustness.md).
    tracker = MembraneMaxTracker(momentum=0.1, b_init=1.0)
    tracker.update(torch.tensor(327.0))
    assert tracker.b.item() == pytest.approx(2.0)
    tracker.update(torch.tensor(327.0))
    biased = 0.9 * 0.2 + 0.1 * 4.0
    assert tracker.b.item() == pytest.approx(biased / (1 - 0.9 ** 2))


def test_ema_clamps_nonpositive_maxima():
    tracker = MembraneMaxTracker(momentum=0.5)
    tracker.update(torch.tensor(-3.0))
    assert tracker.b.item() == pytest.approx(1e-6)


def test_layer_updates_b_in_train_only_and_state_dict_restores_it():
    from pytorch_kaldi_snn.layers import ImprovedV2Layer

    torch.manual_seed(0)
    layer = ImprovedV2Layer(6, 5, ema_momentum=0.2)
    x = torch.randn(7, 3, 6)
    layer(x)
    trained_b = layer.tracker.b.item()
    assert layer.tracker.b_steps.item() == 1 and trained_b != 1.0
    layer.eval()
    layer(x)
    assert layer.tracker.b.item() == trained_b and layer.tracker.b_steps.item() == 1
    fresh = ImprovedV2Layer(6, 5, ema_momentum=0.2)
    fresh.load_state_dict(layer.state_dict())
    assert fresh.tracker.b.item() == trained_b
    assert fresh.tracker.b_biased.item() == layer.tracker.b_biased.item()
    assert fresh.tracker.b_steps.item() == 1
