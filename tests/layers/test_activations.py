"""The activation names the cfg reader accepts (config/registry.py, their one list) are the ones
the baseline layers (layers/baselines.py) build, each with PyTorch-Kaldi's meaning."""
from __future__ import annotations

import pytest
import torch

from pytorch_kaldi_snn.config.registry import ACTIVATIONS, RECURRENT_ACTIVATIONS
from pytorch_kaldi_snn.layers.baselines import GRULayer, LSTMLayer, MLPLayer

X = torch.tensor([[-1.0, 0.0, 2.0]])
EXPECTED = {
    "relu": [0.0, 0.0, 2.0], "tanh": torch.tanh(X)[0].tolist(),
    "sigmoid": torch.sigmoid(X)[0].tolist(), "leaky_relu": [-0.2, 0.0, 2.0],
    "elu": [torch.expm1(torch.tensor(-1.0)).item(), 0.0, 2.0], "linear": [-1.0, 0.0, 2.0],
    "softmax": torch.log_softmax(X, dim=-1)[0].tolist(),  # PyTorch-Kaldi's log-softmax
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_accepted_dnn_act_is_the_function_of_its_name(name):
    layer = MLPLayer(3, 3, act=name)
    with torch.no_grad():  # an identity linear: the output is the activation of the input
        layer.linear.weight.copy_(torch.eye(3))
        layer.linear.bias.zero_()
    assert layer(X)[0].tolist() == pytest.approx(EXPECTED[name], abs=1e-6)


@pytest.mark.parametrize("layer", [LSTMLayer, GRULayer])
def test_recurrent_layers_build_every_recurrent_act_and_refuse_softmax(layer):
    assert set(ACTIVATIONS) - set(RECURRENT_ACTIVATIONS) == {"softmax"}
    for name in RECURRENT_ACTIVATIONS:
        assert layer(3, 4, act=name).act_name == name
    with pytest.raises(ValueError, match="^unknown activation 'softmax'; valid: relu, tanh, "
                                         "sigmoid, leaky_relu, elu, linear$"):
        layer(3, 4, act="softmax")
