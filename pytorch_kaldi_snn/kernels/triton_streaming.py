"""One frame of one spiking layer, batch 1, in one Triton launch (GPU streaming inference).

:class:`~pytorch_kaldi_snn.kernels.streaming.StreamingSNN` calls :func:`launch` once per layer
and frame when :mod:`.backend` picks ``triton`` (CUDA tensors, or CPU tensors under
``TRITON_INTERPRET=1``). The kernel does what the C kernel ``stream_step`` does:

* the input projection x·W' (batch norm folded into W', bias') and, for v2, Ŷ[n−1]·W_r
  (Eq. 19-20), as GEMVs over the non-zero inputs;
* the dynamics: I = β⊙I + drive (Eq. 7), or I = F⊙I + (1−F)⊙ReLU(G_c) (Eq. 16-18, 21);
  V = α⊙V + I − c·Ŷ[n−1] (Eq. 8 with reset R = Ŷ); the quantiser Ŷ = q·Δ (Eq. 22);
* I and V in place, the count of non-zero outputs added to a device counter (no host sync).

Grid: one program per ``BN`` neurons; each program reads every input row it needs and both
gate columns j and n + j of its neurons, so no program waits for another and the frame is a
single launch. A batch-1 GEMV of 550 x 1100 is memory-bound (2.4 MB of float32 weights, about
0.6 flop per byte), so what matters is reading less of W, not using tensor cores (``tl.dot``
needs 16 rows; here there is one): the weight rows of zero inputs are masked off the loads,
so a W row is read only when its input is non-zero, which is Eq. 10's cost model with no
compaction kernel (``nonzero`` would cost a launch and a host synchronisation per layer).
The reduction runs in ``BK``-row tiles, and the dense products sum in tile order, so results
differ from the CPU paths in the last bits.

Ŷ is double-buffered: v2's recurrent product in one program reads all of Ŷ[n−1] while the
other programs write Ŷ[n], so Ŷ[n] goes to the other buffer (``y_out``) and the caller swaps.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from pytorch_kaldi_snn.kernels.triton_fused import OPTIONS
from pytorch_kaldi_snn.kernels.triton_kernels import _gated_current, _quantise

# What :func:`stream_step` implements (GATED: v1 and v2; RECURRENT: v2); the streaming layer
# refuses any other neuron by name before launching.
NEURONS: Tuple[str, ...] = ("traditional", "v1", "v2")

# 32 neurons per program: 18 programs for n = 550 (more programs, more SMs streaming W);
# 64-row reduction tiles keep a 64 x 32 float32 tile at 16 registers per thread (4 warps).
STREAM_TILES = {"BN": 32, "BK": 64}


@triton.jit
def _gemv(vec, mat, rows, width, cols, cok, acc_f, acc_c, GATED: tl.constexpr,
          BK: tl.constexpr):
    """acc_f + vec[0:rows]·mat[:, cols] and, if GATED, acc_c + vec·mat[:, cols + width/2] (the
    candidate's columns); ``mat`` row-major with ``width`` columns. Only the rows of ``mat``
    whose entry of ``vec`` is non-zero are read; each input tile is loaded once for both."""
    for k0 in range(0, rows, BK):
        ks = k0 + tl.arange(0, BK)
        xs = tl.load(vec + ks, mask=ks < rows, other=0.0)
        live = (xs != 0)[:, None] & cok[None, :]
        at = mat + ks[:, None] * width + cols[None, :]
        acc_f += tl.sum(xs[:, None] * tl.load(at, mask=live, other=0.0), axis=0)
        if GATED:
            acc_c += tl.sum(xs[:, None] * tl.load(at + width // 2, mask=live, other=0.0), axis=0)
    return acc_f, acc_c


@triton.jit
def stream_step(x, weight, bias, w_rec, alpha, beta, scal, i_buf, v_buf, y_in, y_out, count,
                m, n, GATED: tl.constexpr, RECURRENT: tl.constexpr, BN: tl.constexpr,
                BK: tl.constexpr):
    """One frame: x (m,), W' (m, w) with w = 2n if GATED else n, bias' (w,), W_r (n, 2n) when
    RECURRENT (v2), β (n,) unless GATED; I, V (n,) in place; Ŷ[n−1] from y_in, Ŷ[n] to y_out;
    ``count`` (int64) += non-zero outputs. ``scal`` = [c, Δ, γ, 2^N − 1] in the state's dtype."""
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    cok = cols < n
    c, delta, gamma, qmax = tl.load(scal), tl.load(scal + 1), tl.load(scal + 2), tl.load(scal + 3)
    drive = tl.load(bias + cols, mask=cok, other=0.0)  # G_f for v1/v2
    if GATED:
        g_c = tl.load(bias + n + cols, mask=cok, other=0.0)
    else:
        g_c = tl.zeros_like(drive)
    drive, g_c = _gemv(x, weight, m, 2 * n if GATED else n, cols, cok, drive, g_c, GATED, BK)
    if RECURRENT:
        drive, g_c = _gemv(y_in, w_rec, n, 2 * n, cols, cok, drive, g_c, True, BK)
    i = tl.load(i_buf + cols, mask=cok, other=0.0)
    if GATED:
        _, _, i = _gated_current(drive, g_c, 1.0, i)
    else:
        i = tl.load(beta + cols, mask=cok, other=0.0) * i + drive
    a = tl.load(alpha + cols, mask=cok, other=0.0)
    v = a * tl.load(v_buf + cols, mask=cok, other=0.0) + i - c * tl.load(y_in + cols, mask=cok,
                                                                          other=0.0)
    y = _quantise(v, delta, gamma, qmax)
    tl.store(i_buf + cols, i, mask=cok)
    tl.store(v_buf + cols, v, mask=cok)
    tl.store(y_out + cols, y, mask=cok)
    tl.atomic_add(count, tl.sum(((y != 0) & cok).to(tl.int64), axis=0))


def launch(x: Tensor, weight: Tensor, bias: Tensor, w_rec: Optional[Tensor], alpha: Tensor,
           beta: Optional[Tensor], scal: Tensor, i: Tensor, v: Tensor, y_in: Tensor,
           y_out: Tensor, count: Tensor) -> None:
    """One layer's frame (see :func:`stream_step`); asynchronous on CUDA."""
    n = alpha.numel()
    grid = (triton.cdiv(n, STREAM_TILES["BN"]),)
    stream_step[grid](x, weight, bias, w_rec, alpha, beta, scal, i, v, y_in, y_out, count,
                      x.numel(), n, GATED=beta is None, RECURRENT=w_rec is not None,
                      **STREAM_TILES, **OPTIONS)


def scalars(c: float, delta: float, gamma: float, qmax: float, like: Tensor) -> Tensor:
    """[c, Δ, γ, 2^N − 1] as a tensor of ``like``'s dtype and device, made once per layer (a
    Python float argument would reach the kernel as float32)."""
    return torch.tensor([c, delta, gamma, qmax], dtype=like.dtype, device=like.device)
