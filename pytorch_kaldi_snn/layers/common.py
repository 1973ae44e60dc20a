"""Pieces shared by the spiking and baseline layers: input projection, init, recurrent dropout.

Setup of the paper (Experimental Setup): Glorot initialisation of input weights, orthogonal
initialisation of recurrent weights, batch normalisation of the weighted sums of inputs (never of
the recurrent part), and recurrent dropout with one mask per sequence (Semeniuta et al., 2016).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


def glorot_blocks_(weight: Tensor, n_blocks: int) -> None:
    """Glorot-uniform init of each of ``n_blocks`` equal column blocks of a (in, blocks·out) matrix.

    Each gate has its own (in, out) matrix in the paper (W_fi, W_ci, ...), so the fan-out of one
    block, not of the concatenation, sets the scale.
    """
    with torch.no_grad():
        for block in weight.chunk(n_blocks, dim=1):
            nn.init.xavier_uniform_(block)


def orthogonal_blocks_(weight: Tensor, n_blocks: int) -> None:
    """Orthogonal init of each (n, n) block of a recurrent (n, blocks·n) matrix."""
    with torch.no_grad():
        for block in weight.chunk(n_blocks, dim=1):
            nn.init.orthogonal_(block)


def recurrent_weight(hidden_size: int, n_blocks: int, orthinit: bool) -> nn.Parameter:
    """Recurrent matrix (n, blocks·n), used as ``h @ w``; orthogonal or Glorot per block."""
    weight = torch.empty(hidden_size, n_blocks * hidden_size)
    (orthogonal_blocks_ if orthinit else glorot_blocks_)(weight, n_blocks)
    return nn.Parameter(weight)


def recurrent_dropout_mask(like: Tensor, hidden_size: int, p: float, training: bool) -> Optional[Tensor]:
    """One Bernoulli mask per sequence (B, n), scaled by 1/(1 − p); None in eval or when p = 0.

    ``like`` is the (T, B, ·) input; the mask multiplies the candidate at every step.
    """
    if not training or p == 0.0:
        return None
    keep = like.new_full((like.shape[1], hidden_size), 1.0 - p)
    return torch.bernoulli(keep) / (1.0 - p)


class InputProjection(nn.Module):
    """Weighted sums of the inputs for all steps at once: ``norm(X W)``, W (in, blocks·n).

    Args:
        input_size: m. hidden_size: n. n_blocks: number of gates sharing the projection.
        use_batchnorm: batch norm over the (T·B) frames of the weighted sums.
        use_layernorm: layer norm over the features of the weighted sums (applied first).
        bias: add a bias; dropped when a norm is on (the norm's shift replaces it).
    """

    def __init__(self, input_size: int, hidden_size: int, n_blocks: int = 1, *,
                 use_batchnorm: bool = False, use_layernorm: bool = False, bias: bool = True) -> None:
        super().__init__()
        width = n_blocks * hidden_size
        self.weight = nn.Parameter(torch.empty(input_size, width))
        glorot_blocks_(self.weight, n_blocks)
        has_bias = bias and not (use_batchnorm or use_layernorm)
        self.bias = nn.Parameter(torch.zeros(width)) if has_bias else None
        self.layernorm = nn.LayerNorm(width) if use_layernorm else None
        self.batchnorm = nn.BatchNorm1d(width, momentum=0.05) if use_batchnorm else None

    def forward(self, x: Tensor) -> Tensor:
        """(…, m) → (…, blocks·n)."""
        out = x @ self.weight
        if self.bias is not None:
            out = out + self.bias
        if self.layernorm is not None:
            out = self.layernorm(out)
        if self.batchnorm is not None:
            out = self.batchnorm(out.reshape(-1, out.shape[-1])).reshape(out.shape)
        return out

    def shift(self) -> Optional[Tensor]:
        """The additive term of the weighted sums (BN shift, LN shift or bias), or None."""
        if self.batchnorm is not None:
            return self.batchnorm.bias
        if self.layernorm is not None:
            return self.layernorm.bias
        return self.bias


class InputNorm(nn.Module):
    """Optional layer norm and/or batch norm of the raw input features (``*_use_*norm_inp``)."""

    def __init__(self, input_size: int, *, use_batchnorm: bool, use_layernorm: bool) -> None:
        super().__init__()
        self.layernorm = nn.LayerNorm(input_size) if use_layernorm else None
        self.batchnorm = nn.BatchNorm1d(input_size, momentum=0.05) if use_batchnorm else None

    def forward(self, x: Tensor) -> Tensor:
        if self.layernorm is not None:
            x = self.layernorm(x)
        if self.batchnorm is not None:
            x = self.batchnorm(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        return x
