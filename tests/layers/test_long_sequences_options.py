"""2,000 frames through every spiking option (reading, surrogate, variant): outputs and gradients
stay finite. Whole architectures on 3,500 frames: test_long_sequences.py."""
from __future__ import annotations

import pytest
import torch

from pytorch_kaldi_snn.layers import spiking_stack
from pytorch_kaldi_snn.neurons.surrogate import SURROGATE_NAMES

pytestmark = pytest.mark.slow

FRAMES = 2000
OPTIONS = ([("paper", "fused", s) for s in SURROGATE_NAMES] + [("authors", "loop", "ste")])


@pytest.mark.parametrize("variant", ["traditional", "v1", "v2"])
@pytest.mark.parametrize("reading,impl,surrogate", OPTIONS)
def test_two_thousand_frames_without_nan_or_inf(variant, reading, impl, surrogate):
    torch.manual_seed(0)
    stack = spiking_stack(variant, 6, [8], n_bits=[6], thresholds=[4], surrogates=[surrogate],
                          alphas=[1.0], dropouts=[0.1], batchnorms=[True], readings=[reading],
                          impl=impl, **({"betas": [0.5]} if variant == "traditional" else {}))
    x = torch.randn(FRAMES, 2, 6, requires_grad=True)
    y = stack(x)
    y.pow(2).mean().backward()
    assert torch.isfinite(y).all() and torch.count_nonzero(y) > 0
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in stack.parameters() if p.grad is not None)
