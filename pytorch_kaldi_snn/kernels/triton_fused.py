"""The fused recurrence (:mod:`.fused`) with each direction's whole time loop in one Triton launch.

Drop-in for ``fused._FusedRecurrence`` (same arguments, outputs, saved tensors and gradients):
:func:`pytorch_kaldi_snn.kernels.fused.fused_loop` picks it when :mod:`.backend` chooses
``triton``, after checking the neuron and surrogate against ``triton_kernels.NEURONS`` and
``SURROGATES``.
Outside the kernels stay only what is one product for all steps: W_r's gradient
Ŷ[0:T]ᵀ·dG and, for v2, the initial output's share dG[0]·W_rᵀ; the input projections run
before (``InputProjection``), as for every back end.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from pytorch_kaldi_snn.kernels import triton_kernels as tk
from pytorch_kaldi_snn.kernels.bptt_buffers import Quantiser, save_and_output, start, w_rec_grad
from pytorch_kaldi_snn.neurons.quantizer import step_size, threshold
from pytorch_kaldi_snn.neurons.surrogate import surrogate_code

# Tiles: batch rows (BB) x neurons (BN) per program, v2 also the reduction (BK); tl.dot needs
# >= 16. v2's are smaller so that its products stay in registers (no spills when compiled for
# sm_90, see tests/support/triton_compile.py). No FMA contraction, as in the C kernels: the
# quantiser's floor() must see the V that separate multiplies and adds give.
POINTWISE_TILES = {"BB": 16, "BN": 64}
V2_TILES = {"BB": 16, "BN": 32, "BK": 32}
OPTIONS = {"enable_fp_fusion": False, "num_stages": 2, "num_warps": 4}


def _scalars(q: Quantiser, like: Tensor) -> Tensor:
    """[c, Δ, γ, 2^N − 1, b] in the input's dtype (see ``triton_kernels``).

    Computed on b's device in b's dtype, as the reference quantiser does, then rounded once to
    the input's dtype; no value goes through the host, so a CUDA call does not synchronise.
    """
    b = q.b.to(like.device)
    return torch.stack([torch.full_like(b, q.c), step_size(b, q.n_bits),
                        threshold(b, q.n_bits, q.k), torch.full_like(b, q.qmax),
                        b]).to(like.dtype)


def _grid(batch: int, n: int, v2: bool) -> Tuple[int, ...]:
    """v2: one program per row block (it walks all neurons); else row blocks x neuron blocks."""
    if v2:
        return (-(-batch // V2_TILES["BB"]),)
    return (-(-batch // POINTWISE_TILES["BB"]), -(-n // POINTWISE_TILES["BN"]))


class TritonRecurrence(torch.autograd.Function):
    """Forward: one launch writes I, V, Ŷ (and F, C) for all steps; backward: one launch."""

    @staticmethod
    def forward(ctx: Any, inp: Tensor, w_rec: Optional[Tensor], alpha: Tensor,
                beta: Optional[Tensor], i0: Tensor, v0: Tensor, y0: Tensor,
                mask: Optional[Tensor], q: Quantiser, gated: bool
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        inp, buf = start(inp, alpha, beta, mask, i0, v0, y0, gated)
        steps, batch, n = inp.shape[0], inp.shape[1], alpha.numel()
        scal = _scalars(q, inp)
        state = (buf.i, buf.v, buf.y, buf.f, buf.c, steps, batch, n)
        if w_rec is not None:
            w_rec = w_rec.contiguous()
            tk.v2_fwd[_grid(batch, n, True)](inp, w_rec, buf.mask, buf.alpha, scal, *state,
                                             **V2_TILES, **OPTIONS)
        else:
            tk.pointwise_fwd[_grid(batch, n, False)](
                inp, buf.mask, buf.alpha, buf.beta, scal, *state, GATED=gated,
                **POINTWISE_TILES, **OPTIONS)
        ctx.buf, ctx.q, ctx.scal = buf, q, scal
        return save_and_output(ctx, buf, w_rec, v0, gated)

    @staticmethod
    def backward(ctx: Any, gy: Tensor, _g_vmax: Tensor, g_i: Tensor, g_v: Tensor,
                 g_y: Tensor) -> Tuple[Optional[Tensor], ...]:
        buf, q = ctx.buf, ctx.q
        i_buf, v_buf, y_buf, f_buf, c_buf, w_rec, alpha, beta = ctx.saved_tensors
        steps, batch = buf.inp_shape[:2]
        n = alpha.numel()
        gy = gy.contiguous()
        di_c, dv_c, dy_c = (g.clone(memory_format=torch.contiguous_format)
                            for g in (g_i, g_v, g_y))
        d_inp = gy.new_empty(buf.inp_shape)
        d_alpha = gy.new_zeros(batch, n)
        learn_beta = beta is not None and ctx.needs_input_grad[3]
        d_beta = gy.new_zeros(batch, n) if learn_beta else None
        kind = surrogate_code(q.surrogate)
        carries = (dv_c, dy_c, di_c, d_alpha)
        if w_rec is not None:
            tk.v2_bwd[_grid(batch, n, True)](
                gy, i_buf, v_buf, f_buf, c_buf, w_rec, buf.mask, alpha, ctx.scal, *carries,
                d_inp, steps, batch, n, KIND=kind, **V2_TILES, **OPTIONS)
            if steps:
                dy_c.addmm_(d_inp[0], w_rec.t())  # dŶ[−1] += dG[0]·W_rᵀ (Eq. 19-20)
        else:
            tk.pointwise_bwd[_grid(batch, n, False)](
                gy, i_buf, v_buf, f_buf, c_buf, buf.mask, alpha, beta, ctx.scal, *carries,
                d_beta, d_inp, steps, batch, n, GATED=f_buf is not None, LEARN_BETA=learn_beta,
                KIND=kind, **POINTWISE_TILES, **OPTIONS)
        d_w = w_rec_grad(y_buf, d_inp) if w_rec is not None and ctx.needs_input_grad[1] else None
        d_beta_out = d_beta.sum(0) if learn_beta else None
        return (d_inp, d_w, d_alpha.sum(0), d_beta_out, di_c, dv_c, dy_c, None, None, None)
