"""``[exp] precision``: float32, or bf16 mixed precision, and where bf16 cannot run.

``bf16`` runs every forward pass of the model (training, validation, the test forward) under
``torch.autocast`` with bfloat16: matrix products (the input projections, the readout, GRU/LSTM
baselines) run in bfloat16, while each spiking layer runs its neuron state, quantiser and v2's
recurrent product in float32 (:class:`~pytorch_kaldi_snn.layers.spiking.SpikingLayer`). The
weights and the optimiser stay float32 (no loss scaling: bfloat16 has float32's range).
``float32`` (the default) changes nothing: autocast is off.
"""
from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from pytorch_kaldi_snn.errors import ConfigError


def unsupported(precision: str, device: torch.device) -> str:
    """Why ``precision`` cannot run on ``device`` ("" when it can)."""
    if precision == "float32":
        return ""
    if not torch.amp.is_autocast_available(device.type):
        return f"autocast is not available on {device.type}"
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 support"
    return ""


def check_precision(precision: str, device: torch.device, cfg: str) -> None:
    """Refuse, naming the cfg key, a precision the training device cannot run."""
    reason = unsupported(precision, device)
    if reason:
        raise ConfigError(f"precision = {precision}: {reason}; use precision = float32",
                          file=cfg, section="exp", key="precision")


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The autocast region of a forward pass at ``precision`` (off for float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
