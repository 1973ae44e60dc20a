"""The fused recurrence (:mod:`.fused`) on the Triton kernels of :mod:`.triton_kernels` (CUDA).

Drop-in for ``fused._FusedRecurrence`` (same arguments, outputs, saved tensors and gradients):
:func:`pytorch_kaldi_snn.kernels.fused.fused_loop` picks it when :mod:`.backend` chooses
``triton``, after checking the neuron and surrogate against ``triton_kernels.NEURONS`` and
``SURROGATES``.

* Traditional and v1: each direction's whole time loop is one launch (the neurons are
  independent, so the state stays in registers).
* v2: the loop of :mod:`.fused` with Triton for the element-wise step. Per step, cuBLAS computes
  G[t] + Ŷ[t−1]·W_r (``torch.addmm``, so IEEE float32 unless
  ``torch.backends.cuda.matmul.allow_tf32`` is set), then one step-sized launch of the gated
  kernel (v1's code, T = 1, buffers offset to step t) applies σ, Eq. 16-18, the membrane and the
  quantiser. The backward runs one launch per step (surrogate, carries, dG[t]) followed by
  dŶ[t−1] += dG[t]·W_rᵀ on cuBLAS. Two launches per step and direction, with the product on as
  many SMs as cuBLAS spreads it over, instead of one program per 16 batch rows that multiplies
  alone (docs/performance.md, "Design figures for v2's recurrent product").

Outside the loops stays what is one product for all steps: W_r's gradient Ŷ[0:T]ᵀ·dG; the input
projections run before (``InputProjection``), as for every back end.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from pytorch_kaldi_snn.kernels import triton_kernels as tk
from pytorch_kaldi_snn.kernels.bptt_buffers import Quantiser, save_and_output, start, w_rec_grad
from pytorch_kaldi_snn.neurons.quantizer import step_size, threshold
from pytorch_kaldi_snn.neurons.surrogate import surrogate_code

# Tiles: batch rows (BB) x neurons (BN) per program. No FMA contraction, as in the C kernels:
# the quantiser's floor() must see the V that separate multiplies and adds give.
TILES = {"BB": 16, "BN": 64}
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


def _grid(batch: int, n: int) -> Tuple[int, int]:
    """Row blocks x neuron blocks: (4, 9) programs for B = 64, n = 550."""
    return (-(-batch // TILES["BB"]), -(-n // TILES["BN"]))


class TritonRecurrence(torch.autograd.Function):
    """Forward and backward: one launch each (traditional, v1), or one per step (v2)."""

    @staticmethod
    def forward(ctx: Any, inp: Tensor, w_rec: Optional[Tensor], alpha: Tensor,
                beta: Optional[Tensor], i0: Tensor, v0: Tensor, y0: Tensor,
                mask: Optional[Tensor], q: Quantiser, gated: bool
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        inp, buf = start(inp, alpha, beta, mask, i0, v0, y0, gated)
        steps, batch, n = inp.shape[0], inp.shape[1], alpha.numel()
        scal = _scalars(q, inp)
        launch = tk.pointwise_fwd[_grid(batch, n)]
        fixed = (buf.mask, buf.alpha, buf.beta, scal)
        if w_rec is None:
            launch(inp, *fixed, buf.i, buf.v, buf.y, buf.f, buf.c, steps, batch, n,
                   GATED=gated, **TILES, **OPTIONS)
        else:
            w_rec = w_rec.contiguous()
            gates = inp.new_empty(batch, 2 * n)  # this step's G[t] + Ŷ[t−1]·W_r (Eq. 19-20)
            for t in range(steps):
                torch.addmm(inp[t], buf.y[t], w_rec, out=gates)
                launch(gates, *fixed, buf.i[t:], buf.v[t:], buf.y[t:], buf.f[t:], buf.c[t:], 1,
                       batch, n, GATED=True, **TILES, **OPTIONS)
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
        launch = tk.pointwise_bwd[_grid(batch, n)]
        fixed = (buf.mask, alpha, beta, ctx.scal, dv_c, dy_c, di_c, d_alpha, d_beta)
        consts = {"GATED": f_buf is not None, "LEARN_BETA": learn_beta,
                  "KIND": surrogate_code(q.surrogate), **TILES, **OPTIONS}
        if w_rec is None:
            launch(gy, i_buf, v_buf, f_buf, c_buf, *fixed, d_inp, steps, batch, n, **consts)
        else:
            w_rec_t = w_rec.t()
            for t in reversed(range(steps)):
                launch(gy[t:], i_buf[t:], v_buf[t:], f_buf[t:], c_buf[t:], *fixed, d_inp[t:], 1,
                       batch, n, **consts)
                dy_c.addmm_(d_inp[t], w_rec_t)  # dŶ[t−1] += dG[t]·W_rᵀ (Eq. 19-20)
        d_w = w_rec_grad(y_buf, d_inp) if w_rec is not None and ctx.needs_input_grad[1] else None
        d_beta_out = d_beta.sum(0) if learn_beta else None
        return (d_inp, d_w, d_alpha.sum(0), d_beta_out, di_c, dv_c, dy_c, None, None, None)
