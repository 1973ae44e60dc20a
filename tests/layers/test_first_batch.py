"""b from the first batch's own statistic (no start-up transient) and the removed reset mode."""
import pytest
import torch

from pytorch_kaldi_snn.layers import ImprovedV1Layer, ImprovedV2Layer, LIFLayer


@pytest.mark.parametrize("cls", [LIFLayer, ImprovedV1Layer, ImprovedV2Layer])
def test_first_training_batch_is_quantised_at_its_own_scale(cls):
    """With b_init = 1 a v2 layer used to emit 22 % zeros on batch 1 and 56 % on batch 5."""
    torch.manual_seed(0)
    layer = cls(40, 64, b_init=1.0)
    zeros = []
    with torch.no_grad():
        for _ in range(5):
            zeros.append(float((layer(torch.randn(50, 8, 40)) == 0).double().mean()))
    assert abs(zeros[0] - zeros[-1]) < 0.05, zeros


def test_reset_is_no_longer_a_layer_option():
    """R = Ŷ is the only reset; the former option is refused, not ignored."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'reset'"):
        ImprovedV2Layer(4, 3, reset="threshold")


def test_clipped_ste_passes_no_gradient_above_b():
    from pytorch_kaldi_snn.neurons.quantizer import quantize
    v = torch.tensor([-1.0, 0.5, 0.99, 1.0, 1.5], requires_grad=True)
    quantize(v, torch.tensor(1.0), 3, 1, "ste_clip").sum().backward()
    assert v.grad.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]
