"""Triton kernels of the three spiking time loops: forward and hand-written backward.

Same element-wise arithmetic, in the same order, as the C kernels of :mod:`.native` (see the
equations in :mod:`.fused`): quantiser of Eq. 22, surrogates (the codes of
``neurons.surrogate.SURROGATES``, as the ``constexpr``s below),
recurrent-dropout mask on the candidate, reset scale c, saved buffers of T+1 rows (row 0 the
initial state). Each kernel runs T steps of its rows x neurons tile, with the state in
registers; every neuron is independent, so the grid tiles (batch rows x neurons).

* Traditional (Eq. 7) and v1 (Eq. 16-18): one launch runs all T steps of a layer and direction.
* v2 (Eq. 19-21): Ŷ[n−1]·W_r mixes neurons, so :mod:`.triton_fused` runs it one step at a time:
  cuBLAS adds the recurrent product to G[t], then a step-sized launch (T = 1, buffers offset to
  step t) of the gated kernel below, the same code as v1's; the backward likewise, with
  dŶ[t−1] += dG[t]·W_rᵀ between launches. So the backward adds to d_alpha/d_beta (zeroed by
  the caller) rather than overwriting them.

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

# What these kernels implement (v2 per step, with the recurrent product outside);
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
    """Traditional (GATED=False, ``inp`` = drive (T,B,n)) or v1/v2 (``inp`` = gates (T,B,2n),
    v2's with Ŷ[t−1]·W_r added). Rows 0 of the state buffers hold the state before the first of
    the T steps. Pointers a variant does not use (β for v1/v2; F, C for the traditional layer)
    may be None."""
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
    state's gradients); d_alpha/d_beta (B,n) gain Σ_t over each row (the caller zeroes them
    and sums the rows)."""
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
    # added after the loop, not loaded before it: a live load there made ptxas spill
    tl.store(d_alpha + x, tl.load(d_alpha + x, mask=ok, other=0.0) + acc_a, mask=ok)
    if LEARN_BETA:
        tl.store(d_beta + x, tl.load(d_beta + x, mask=ok, other=0.0) + acc_b, mask=ok)
