"""Every architecture trains one 3,500-frame utterance (LibriSpeech's longest) in one piece
without a NaN or Inf in its loss, gradients, parameters or buffers (the EMA of b included).

Before the EMA of b took at most a doubling per batch, the v2 stack here overflowed at its
second step: a leak-free membrane drifts up over a long utterance, b leapt to that drift, and
BPTT overflowed float32 (docs/robustness.md).
"""
from __future__ import annotations

import configparser

import pytest
import torch
from torch import nn

import pytorch_kaldi_snn.neural_networks as networks

FRAMES = 3500
FEATURES, CLASSES, STEPS = 40, 48, 2
SPIKING = """
snn_lay = 64,64
snn_drop = 0.1,0.1
snn_use_batchnorm = True,True
snn_n_bits = 6
snn_threshold = 4
snn_surrogate = ste
snn_ema_momentum = 0.1
snn_impl = fused
"""
RECURRENT = """
{k}_lay = 32,32
{k}_drop = 0.1,0.1
{k}_use_laynorm_inp = False
{k}_use_batchnorm_inp = False
{k}_use_laynorm = False,False
{k}_use_batchnorm = True,True
{k}_bidir = False
{k}_act = tanh,tanh
{k}_orthinit = True
"""
OPTIONS = {
    "TraditionalSNN": SPIKING,
    "ImprovedSNNv1": SPIKING,
    "ImprovedSNNv2": SPIKING + "snn_orthinit = True\n",
    "UniLSTM": RECURRENT.format(k="lstm"),
    "UniGRU": RECURRENT.format(k="gru"),
}


def _network(name: str) -> nn.Module:
    config = configparser.ConfigParser()
    config.read_string(f"[architecture1]\narch_class = {name}\n{OPTIONS[name]}")
    return getattr(networks, name)(config["architecture1"], FEATURES)


def _speech_like(generator: torch.Generator) -> tuple:
    """Normalised features with 10-frame segments (phone-like) and matching labels."""
    segments = FRAMES // 10
    means = torch.randn(segments, 1, FEATURES, generator=generator).repeat_interleave(10, 0)
    x = means + 0.5 * torch.randn(FRAMES, 1, FEATURES, generator=generator)
    labels = torch.randint(0, CLASSES, (segments,), generator=generator).repeat_interleave(10)
    return x, labels


def _non_finite(module: nn.Module) -> list:
    tensors = [*module.named_parameters(), *module.named_buffers(),
               *((f"grad {n}", p.grad) for n, p in module.named_parameters())]
    return [n for n, t in tensors if t is not None and t.is_floating_point()
            and not torch.isfinite(t).all()]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_trains_a_3500_frame_utterance_without_non_finite_values(name: str) -> None:
    torch.manual_seed(0)
    net = _network(name)
    model = nn.ModuleDict({"net": net, "readout": nn.Linear(net.out_dim, CLASSES)})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, labels = _speech_like(torch.Generator().manual_seed(1))
    for step in range(STEPS):
        log_probs = model["readout"](net(x)).log_softmax(-1)
        loss = nn.functional.nll_loss(log_probs.reshape(FRAMES, CLASSES), labels)
        optimizer.zero_grad()
        loss.backward()
        assert torch.isfinite(loss), (step, float(loss))
        assert _non_finite(model) == [], step
        optimizer.step()
        assert _non_finite(model) == [], step
