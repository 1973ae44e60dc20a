"""The cfg options of upstream PyTorch-Kaldi's three optimisers, every field of their protos.

``proto/adam.proto``: ``opt_betas, opt_eps, opt_weight_decay, opt_amsgrad``;
``proto/sgd.proto``: ``opt_momentum, opt_weight_decay, opt_dampening, opt_nesterov``;
``proto/rmsprop.proto``: ``opt_momentum, opt_alpha, opt_eps, opt_centered, opt_weight_decay``.
A missing field gets torch's default (upstream's cfgs set them all; every upstream RMSprop
baseline sets ``opt_alpha = 0.95`` where torch's default is 0.99).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from pytorch_kaldi_snn.config.options import get_bool, get_float, get_float_list
from pytorch_kaldi_snn.errors import ConfigError


def _betas(sec: Mapping[str, str]) -> tuple:
    betas = get_float_list(sec, "opt_betas", min=0.0, max=1.0, default=[0.9, 0.999])
    if len(betas) != 2:
        raise ConfigError(f"opt_betas needs two values, got {len(betas)}",
                          section=getattr(sec, "name", None), key="opt_betas")
    return (betas[0], betas[1])


def optimizer_kwargs(sec: Mapping[str, str], opt: str) -> Dict[str, Any]:
    """The torch.optim keyword arguments (all but ``lr``) of ``arch_opt = opt``."""
    decay = get_float(sec, "opt_weight_decay", min=0.0, default=0.0)
    if opt == "adam":
        return {"betas": _betas(sec), "eps": get_float(sec, "opt_eps", min=0.0, default=1e-8),
                "weight_decay": decay, "amsgrad": get_bool(sec, "opt_amsgrad", default=False)}
    momentum = get_float(sec, "opt_momentum", min=0.0, default=0.0)
    if opt == "rmsprop":
        return {"alpha": get_float(sec, "opt_alpha", min=0.0, max=1.0, default=0.99),
                "eps": get_float(sec, "opt_eps", min=0.0, default=1e-8), "weight_decay": decay,
                "momentum": momentum, "centered": get_bool(sec, "opt_centered", default=False)}
    kwargs = {"momentum": momentum, "weight_decay": decay,
              "dampening": get_float(sec, "opt_dampening", min=0.0, default=0.0),
              "nesterov": get_bool(sec, "opt_nesterov", default=False)}
    if kwargs["nesterov"] and (momentum <= 0 or kwargs["dampening"] != 0):
        raise ConfigError("opt_nesterov = True needs opt_momentum > 0 and opt_dampening = 0",
                          section=getattr(sec, "name", None), key="opt_nesterov")
    return kwargs
