"""Triton kernels of the three spiking time loops: forward and hand-written backward.

Same element-wise arithmetic, in the same order, as the C kernels of :mod:`.native` (see the
equations in :mod:`.fused`): quantiser of Eq. 22, surrogates (the codes of
``neurons.surrogate.SURROGATES``, as the ``constexpr``s below),
recurrent-dropout mask on the candidate, reset scale c, saved buffers of T+1 rows (row 0 the
initial state). Each kernel runs the whole time loop, so one launch serves one layer and one
direction of a training pass.

* Traditional (Eq. 7) and v1 (Eq. 16-18): every neuron is independent, so the grid tiles
  (batch rows x neurons) and the state stays in registers for all T steps.
* v2 (Eq. 19-21): Ŷ[n−1]·W_r mixes neurons, so one program owns a block of batch rows and all
  n neurons; per step it walks the neuron tiles, multiplies with ``tl.dot`` and meets a barrier
  before the next step reads what this one wrote (the saved Ŷ row, or dG for the backward).

Scalars come in a small tensor of the input's dtype, ``scal = [c, Δ, γ, 2^N − 1, b]``: a Python
float argument would be passed as float32 and change float64 results. Float32 divides with
``div_rn`` (IEEE rounding, as the CPU does), so that V/Δ and the floor() agree with the reference.
Interpreter mode (``TRITON_INTERPRET=1``, set before this module is imported) runs the same
kernels on CPU tensors; the tests use it.
"""
from __future__ import annotations

from typing import Tuple

import triton
import triton.language as tl

from pytorch_kaldi_snn.neurons.surrogate import SURROGATES as SURROGATE_TABLE

# What these kernels implement (``pointwise_*`` the traditional layer and v1, ``v2_*`` v2);
# :func:`pytorch_kaldi_snn.kernels.fused.fused_loop` refuses anything else by name.
NEURONS: Tuple[str, ...] = ("traditional", "v1", "v2")
SURROGATES: Tuple[str, ...] = ("ste", "ste_clip", "pwl", "fast_sigmoid")
SURROGATE_STE = tl.constexpr(SURROGATE_TABLE["ste"].code)
SURROGATE_STE_CLIP = tl.constexpr(SURROGATE_TABLE["ste_clip"].code)
SURROGATE_PWL = tl.constexpr(SURROGATE_TABLE["pwl"].code)
SURROGATE_FAST_SIGMOID = tl.constexpr(SURROGATE_TABLE["fast_sigmoid"].code)


@triton.jit
def _wide(count):
    """``count`` (a row's elements, B·n or B·2n < 2^31) as int64: offsets t·count reach
    T·B·2n, which wraps in int32 for long whole-utterance passes (B = 64, n = 4096, T = 4096)."""
    return tl.full([], count, tl.int64)


@triton.jit
def _divide(x, y):
    """x / y rounded to nearest (float32 ``/`` on a GPU is an approximate division)."""
    # One return per function: the compiler does not treat an early return as an else branch.
    if x.dtype == tl.float32:
        q = tl.div_rn(x, y)
    else:
        q = x / y
    return q


@triton.jit
def _quantise(v, delta, gamma, qmax):
    """Delivered Ŷ = q·Δ of Eq. 22: q = clamp(floor(V/Δ), 1, 2^N − 1) where V > γ, else 0."""
    q = tl.floor(_divide(v, delta))
    q = tl.where(q < 1, 1.0, q)
    q = tl.where(q > qmax, qmax, q)
    return tl.where(v > gamma, q * delta, 0.0)


@triton.jit
def _surrogate(v, gamma, b, KIND: tl.constexpr):
    """dŶ/dV of the surrogate whose code is KIND (``neurons.surrogate``); a code without a
    branch here fails to compile."""
    one = tl.full(v.shape, 1.0, v.dtype)
    if KIND == SURROGATE_STE:
        s = one
    elif KIND == SURROGATE_STE_CLIP:
        s = (v <= b).to(v.dtype)
    else:
        d = tl.maximum(v - b, gamma - v)
        d = _divide(tl.where(d > 0, d, 0.0), b)
        if KIND == SURROGATE_PWL:
            s = tl.where(d < 0.5, 1 - 2 * d, 0.0)
        else:
            tl.static_assert(KIND == SURROGATE_FAST_SIGMOID,
                             "surrogate code without a Triton branch")
            s = 1 + 10 * d
            s = _divide(one, s * s)
    return s


@triton.jit
def _gated_current(g_f, g_c, m, i_prev):
    """Eq. 16-18 / 19-21: F = σ(G_f), C = m⊙ReLU(G_c), I = F⊙I[n−1] + (1−F)⊙C."""
    f = tl.sigmoid(g_f)
    cand = tl.where(g_c > 0, g_c, 0.0) * m
    return f, cand, f * i_prev + (1 - f) * cand


@triton.jit
def _gated_grads(di, f, cand, i_prev, m):
    """dG_f = dI⊙(I[n−1] − C)⊙F⊙(1−F), dG_c = m⊙dI⊙(1−F)⊙[C > 0]."""
    d_f = di * (i_prev - cand) * f * (1 - f)
    d_c = m * tl.where(cand > 0, di * (1 - f), 0.0)
    return d_f, d_c


@triton.jit
def _dot(a, b, acc):
    """acc + a·b; float32 with IEEE products (no TF32), as cuBLAS and the CPU compute it."""
    if a.dtype == tl.float32:
        out = tl.dot(a, b, acc, input_precision="ieee")
    else:
        out = tl.dot(a, b, acc, out_dtype=tl.float64)
    return out


@triton.jit
def _pointwise_tile(alpha, mask, B, n, GATED: tl.constexpr, BB: tl.constexpr,
                    BN: tl.constexpr):
    """This program's tile of (batch rows x neurons), shared by the forward and the backward:
    neuron indices, in-bounds mask, offsets into (B, n) and into the (B, width) input (width =
    2n for the gates), α as a row and the dropout mask of the tile."""
    rows = tl.program_id(0) * BB + tl.arange(0, BB)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    ok = (rows[:, None] < B) & (cols[None, :] < n)
    x = rows[:, None] * n + cols[None, :]
    width = 2 * n if GATED else n
    g = rows[:, None] * width + cols[None, :]
    a = tl.load(alpha + cols, mask=cols < n, other=0.0)[None, :]
    m = tl.load(mask + x, mask=ok, other=0.0)
    return cols, ok, x, g, width, a, m


@triton.jit
def pointwise_fwd(inp, mask, alpha, beta, scal, i_buf, v_buf, y_buf, f_buf, c_buf, T, B, n,
                  GATED: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr):
    """Traditional (GATED=False, ``inp`` = drive (T,B,n)) or v1 (``inp`` = gates (T,B,2n)).
    Pointers a variant does not use (β for v1; F, C for the traditional layer) may be None."""
    cols, ok, x, g, width, a, m = _pointwise_tile(alpha, mask, B, n, GATED, BB, BN)
    c, delta, gamma, qmax = tl.load(scal), tl.load(scal + 1), tl.load(scal + 2), tl.load(scal + 3)
    i, v, y = tl.load(i_buf + x, mask=ok), tl.load(v_buf + x, mask=ok), tl.load(y_buf + x, mask=ok)
    if not GATED:
        bt = tl.load(beta + cols, mask=cols < n, other=0.0)[None, :]
    step = _wide(B * n)
    g_step = _wide(B * width)
    for t in range(T):
        if GATED:
            at = inp + t * g_step + g
            f, cand, i = _gated_current(tl.load(at, mask=ok, other=0.0),
                                        tl.load(at + n, mask=ok, other=0.0), m, i)
            tl.store(f_buf + t * step + x, f, mask=ok)
            tl.store(c_buf + t * step + x, cand, mask=ok)
        else:
            i = bt * i + m * tl.load(inp + t * step + x, mask=ok, other=0.0)
        v = a * v + i - c * y
        y = _quantise(v, delta, gamma, qmax)
        tl.store(i_buf + (t + 1) * step + x, i, mask=ok)
        tl.store(v_buf + (t + 1) * step + x, v, mask=ok)
        tl.store(y_buf + (t + 1) * step + x, y, mask=ok)


@triton.jit
def pointwise_bwd(gy, i_buf, v_buf, f_buf, c_buf, mask, alpha, beta, scal, dv_c, dy_c, di_c,
                  d_alpha, d_beta, d_inp, T, B, n, GATED: tl.constexpr, LEARN_BETA: tl.constexpr,
                  KIND: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr):
    """Reverse loop of :func:`pointwise_fwd`. Carries (B,n) in, final carries out (the initial
    state's gradients); d_alpha/d_beta (B,n) receive Σ_t over each row, summed by the caller."""
    cols, ok, x, g, width, a, m = _pointwise_tile(alpha, mask, B, n, GATED, BB, BN)
    c, gamma, b = tl.load(scal), tl.load(scal + 2), tl.load(scal + 4)
    if not GATED:
        bt = tl.load(beta + cols, mask=cols < n, other=0.0)[None, :]
    dvc = tl.load(dv_c + x, mask=ok, other=0.0)
    dyc = tl.load(dy_c + x, mask=ok, other=0.0)
    dic = tl.load(di_c + x, mask=ok, other=0.0)
    acc_a = tl.zeros([BB, BN], dtype=dvc.dtype)
    acc_b = tl.zeros([BB, BN], dtype=dvc.dtype)
    step = _wide(B * n)
    g_step = _wide(B * width)
    for s in range(T):
        t = T - 1 - s
        dy = tl.load(gy + t * step + x, mask=ok, other=0.0) + dyc
        v = tl.load(v_buf + (t + 1) * step + x, mask=ok, other=0.0)
        dv = dvc + _surrogate(v, gamma, b, KIND) * dy
        dvc = a * dv
        dyc = -c * dv
        di = dv + dic
        acc_a += dv * tl.load(v_buf + t * step + x, mask=ok, other=0.0)
        if GATED:
            f = tl.load(f_buf + t * step + x, mask=ok, other=0.0)
            d_f, d_c = _gated_grads(di, f, tl.load(c_buf + t * step + x, mask=ok, other=0.0),
                                    tl.load(i_buf + t * step + x, mask=ok, other=0.0), m)
            tl.store(d_inp + t * g_step + g, d_f, mask=ok)
            tl.store(d_inp + t * g_step + g + n, d_c, mask=ok)
            dic = f * di
        else:
            if LEARN_BETA:
                acc_b += di * tl.load(i_buf + t * step + x, mask=ok, other=0.0)
            tl.store(d_inp + t * step + x, m * di, mask=ok)
            dic = bt * di
    tl.store(dv_c + x, dvc, mask=ok)
    tl.store(dy_c + x, dyc, mask=ok)
    tl.store(di_c + x, dic, mask=ok)
    tl.store(d_alpha + x, acc_a, mask=ok)
    if LEARN_BETA:
        tl.store(d_beta + x, acc_b, mask=ok)


@triton.jit
def v2_fwd(inp, w_rec, mask, alpha, scal, i_buf, v_buf, y_buf, f_buf, c_buf, T, B, n,
           BB: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """v2 forward: per step G[t] + Ŷ[t−1]·W_r (W_r (n, 2n)), then the v1 update, Eq. 19-21."""
    rows = tl.program_id(0) * BB + tl.arange(0, BB)
    rok = rows < B
    c, delta, gamma, qmax = tl.load(scal), tl.load(scal + 1), tl.load(scal + 2), tl.load(scal + 3)
    step = _wide(B * n)
    for t in range(T):
        for j0 in range(0, n, BN):
            cols = j0 + tl.arange(0, BN)
            cok = cols < n
            ok = rok[:, None] & cok[None, :]
            x = rows[:, None] * n + cols[None, :]
            at = inp + t * 2 * step + rows[:, None] * 2 * n + cols[None, :]
            g_f = tl.load(at, mask=ok, other=0.0)
            g_c = tl.load(at + n, mask=ok, other=0.0)
            for k0 in range(0, n, BK):
                ks = k0 + tl.arange(0, BK)
                kok = ks < n
                y_k = tl.load(y_buf + t * step + rows[:, None] * n + ks[None, :],
                              mask=rok[:, None] & kok[None, :], other=0.0)
                w_at = w_rec + ks[:, None] * 2 * n + cols[None, :]
                wok = kok[:, None] & cok[None, :]
                g_f = _dot(y_k, tl.load(w_at, mask=wok, other=0.0), g_f)
                g_c = _dot(y_k, tl.load(w_at + n, mask=wok, other=0.0), g_c)
            m = tl.load(mask + x, mask=ok, other=0.0)
            f, cand, i = _gated_current(g_f, g_c, m, tl.load(i_buf + t * step + x, mask=ok))
            v = (tl.load(alpha + cols, mask=cok, other=0.0)[None, :]
                 * tl.load(v_buf + t * step + x, mask=ok) + i
                 - c * tl.load(y_buf + t * step + x, mask=ok))
            tl.store(f_buf + t * step + x, f, mask=ok)
            tl.store(c_buf + t * step + x, cand, mask=ok)
            tl.store(i_buf + (t + 1) * step + x, i, mask=ok)
            tl.store(v_buf + (t + 1) * step + x, v, mask=ok)
            tl.store(y_buf + (t + 1) * step + x, _quantise(v, delta, gamma, qmax), mask=ok)
        tl.debug_barrier()  # the next step reads every tile of Ŷ[t+1]


@triton.jit
def v2_bwd(gy, i_buf, v_buf, f_buf, c_buf, w_rec, mask, alpha, scal, dv_c, dy_c, di_c,
           d_alpha, d_inp, T, B, n, KIND: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr,
           BK: tl.constexpr):
    """Reverse loop of :func:`v2_fwd`: dŶ[t] also receives dG[t+1]·W_rᵀ (read back from
    ``d_inp``). The final dy_c lacks dG[0]·W_rᵀ, which the caller adds as one product.
    d_alpha (B,n) accumulates Σ_t dV⊙V[t−1] and must start at zero."""
    rows = tl.program_id(0) * BB + tl.arange(0, BB)
    rok = rows < B
    c, gamma, b = tl.load(scal), tl.load(scal + 2), tl.load(scal + 4)
    step = _wide(B * n)
    for s in range(T):
        t = T - 1 - s
        for j0 in range(0, n, BN):
            cols = j0 + tl.arange(0, BN)
            cok = cols < n
            ok = rok[:, None] & cok[None, :]
            x = rows[:, None] * n + cols[None, :]
            rec = tl.zeros([BB, BN], dtype=d_inp.dtype.element_ty)
            for k0 in range(0, 2 * n, BK):  # dG[t+1]·W_rᵀ, nothing at the last step (s = 0)
                ks = k0 + tl.arange(0, BK)
                kok = (ks < 2 * n) & (s > 0)
                d_g = tl.load(d_inp + (t + 1) * 2 * step + rows[:, None] * 2 * n + ks[None, :],
                              mask=rok[:, None] & kok[None, :], other=0.0)
                w_t = tl.load(w_rec + cols[None, :] * 2 * n + ks[:, None],
                              mask=kok[:, None] & cok[None, :], other=0.0)
                rec = _dot(d_g, w_t, rec)
            dyc = tl.load(dy_c + x, mask=ok, other=0.0) + rec
            dy = tl.load(gy + t * step + x, mask=ok, other=0.0) + dyc
            v = tl.load(v_buf + (t + 1) * step + x, mask=ok, other=0.0)
            dv = tl.load(dv_c + x, mask=ok, other=0.0) + _surrogate(v, gamma, b, KIND) * dy
            di = dv + tl.load(di_c + x, mask=ok, other=0.0)
            f = tl.load(f_buf + t * step + x, mask=ok, other=0.0)
            d_f, d_c = _gated_grads(di, f, tl.load(c_buf + t * step + x, mask=ok, other=0.0),
                                    tl.load(i_buf + t * step + x, mask=ok, other=0.0),
                                    tl.load(mask + x, mask=ok, other=0.0))
            at = d_inp + t * 2 * step + rows[:, None] * 2 * n + cols[None, :]
            tl.store(at, d_f, mask=ok)
            tl.store(at + n, d_c, mask=ok)
            a = tl.load(alpha + cols, mask=cok, other=0.0)[None, :]
            tl.store(dv_c + x, a * dv, mask=ok)
            tl.store(dy_c + x, -c * dv, mask=ok)
            tl.store(di_c + x, f * di, mask=ok)
            acc = tl.load(d_alpha + x, mask=ok, other=0.0)
            tl.store(d_alpha + x, acc + dv * tl.load(v_buf + t * step + x, mask=ok, other=0.0),
                     mask=ok)
        tl.debug_barrier()  # the next (earlier) step reads every tile of dG[t]
