"""Fused time loops of the three spiking recurrences with a hand-written backward (BPTT).

Same signatures and results as the step-by-step references ``step_loop``, ``lif_loop``,
``v1_loop`` and ``v2_loop`` in :mod:`pytorch_kaldi_snn.layers.recurrence`, but:

* the forward runs under ``no_grad`` and keeps only what the backward needs, in preallocated
  (T, B, n) buffers: V (all layers), F, C and I (v1, v2; I also for a learned β), Ŷ (v2);
* each time step's element-wise dynamics is one native kernel call (:mod:`.native`), or a few
  PyTorch operators when the native kernels are unavailable (no compiler, GPU tensors); or the
  whole loop is one Triton launch per direction (:mod:`.triton_fused`, CUDA; v2 one per step);
  :mod:`.backend` chooses and logs which;
* v2's recurrent product Ŷ[n−1]·W_r is the only matrix product inside the loop (``addmm``
  into a preallocated buffer); its weight gradient is one (n, T·B)·(T·B, 2n) product after
  the reverse loop.

Dynamics per step n (Ŷ delivered output, R reset, Q the quantiser of Eq. 22)::

    traditional (Eq. 7):   I[n] = β⊙I[n−1] + m⊙drive[n]
    v1 (Eq. 16-18):        F = σ(G_f[n]),  C = m⊙ReLU(G_c[n]),  I[n] = F⊙I[n−1] + (1−F)⊙C
    v2 (Eq. 19-21):        as v1 with G[n] ← G[n] + Ŷ[n−1]·W_r
    all (Eq. 8, 22):       V[n] = α⊙V[n−1] + I[n] − R[n−1],  Ŷ[n] = Q(V[n]),  R = c·Ŷ

with c = ``neurons.dynamics.RESET_SCALE`` = 1 (R = Ŷ; the kernels keep c as a scalar argument).
m is the recurrent-dropout mask (already scaled by 1/(1−p)), or 1.

Backward, per step from the last (s = surrogate dŶ/dV, carries from step n+1)::

    dŶ[n] = g[n] − c·dV[n+1] (+ dG[n+1]·W_rᵀ for v2)
    dV[n] = α⊙dV[n+1] + s(V[n])⊙dŶ[n]
    dI[n] = dV[n] + β⊙dI[n+1]            (traditional)  or  + F[n+1]⊙dI[n+1]   (v1, v2)
    dG_f  = dI⊙(I[n−1] − C)⊙F⊙(1−F),   dG_c = dI⊙(1−F)⊙m⊙[C > 0],   d drive = m⊙dI
    dα   += Σ_batch dV[n]⊙V[n−1],        dβ  += Σ_batch dI[n]⊙I[n−1]

Gradients flow to the drive/gates, α, β, W_r and the initial state; the mask and b get none.
The backward is not itself differentiable (no double backward), unlike the reference loops.

Which neurons and surrogates each back end implements is declared next to its code
(:data:`TORCH_NEURONS` and :data:`TORCH_SURROGATES` here, ``native.NEURONS``/``SURROGATES``,
``triton_kernels.NEURONS``/``SURROGATES``); anything else is refused by name before it runs.
"""
from __future__ import annotations

import ctypes
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from pytorch_kaldi_snn.kernels import backend, first_launch, kernel_args, native
from pytorch_kaldi_snn.kernels.bptt_buffers import (
    Buffers, Quantiser, save_and_output, start, w_rec_grad,
)
from pytorch_kaldi_snn.neurons.dynamics import RESET_SCALE, SpikingState
from pytorch_kaldi_snn.neurons.quantizer import check_bits_threshold
from pytorch_kaldi_snn.neurons.surrogate import SURROGATES, check_surrogate, surrogate_code
from pytorch_kaldi_snn.neurons.variants import TRADITIONAL, V1, V2, Neuron, require

Output = Tuple[Tensor, Tensor, SpikingState]
Params = Sequence[Tensor]

TORCH_NEURONS = kernel_args.NEURONS  # _TorchSteps: the traditional layer, v1, v2
TORCH_SURROGATES = SURROGATES  # every registered one: _TorchSteps calls its PyTorch function
_HALF = (torch.float16, torch.bfloat16)


class _TorchSteps:
    """One time step as PyTorch operators: any device, any floating dtype."""

    def __init__(self, q: Quantiser) -> None:
        self.q = q

    def forward(self, buf: Buffers, t: int, x: Tensor) -> None:
        if buf.f is None:
            torch.addcmul(buf.mask * x, buf.beta, buf.i[t], out=buf.i[t + 1])
        else:
            cand = torch.mul(torch.relu(x[:, buf.alpha.numel():]), buf.mask, out=buf.c[t])
            torch.lerp(cand, buf.i[t], buf.f[t], out=buf.i[t + 1])  # F⊙I + (1−F)⊙C
        v = torch.addcmul(buf.i[t + 1], buf.alpha, buf.v[t], out=buf.v[t + 1])
        v.sub_(buf.y[t], alpha=self.q.c)
        buf.y[t + 1] = self.q.output(v)

    def backward(self, buf: Buffers, t: int, g: "_Grads") -> None:
        v = buf.v[t + 1]
        dv = g.dv_c + self.q.slope(v) * (g.gy[t] + g.dy_c)
        di = dv + g.di_c
        g.dalpha += (dv * buf.v[t]).sum(0)
        g.dy_c = -self.q.c * dv
        g.dv_c = buf.alpha * dv
        if buf.f is None:
            if buf.i is not None:  # kept only when β is learned
                g.dbeta += (di * buf.i[t]).sum(0)
            torch.mul(di, buf.mask, out=g.dinp[t])
            g.di_c = buf.beta * di
            return
        f, cand, n = buf.f[t], buf.c[t], buf.alpha.numel()
        torch.mul(di * (buf.i[t] - cand), f * (1 - f), out=g.dinp[t, :, :n])
        torch.mul(di * (1 - f) * buf.mask, cand > 0, out=g.dinp[t, :, n:])
        g.di_c = f * di


class _NativeSteps:
    """One time step as one call into the C kernels of :mod:`.native` (CPU, contiguous)."""

    def __init__(self, lib: ctypes.CDLL, q: Quantiser) -> None:
        self.lib, self.q = lib, q
        self.fwd_scalars = (q.c, q.delta, q.gamma, q.qmax)
        self.bwd_scalars = (q.c, q.gamma, float(q.b), surrogate_code(q.surrogate))

    def forward(self, buf: Buffers, t: int, x: Tensor) -> None:
        p = native.ptr
        batch, n = buf.v.shape[1:]
        state = (p(buf.i, t), p(buf.v, t), p(buf.y, t),
                 p(buf.i, t + 1), p(buf.v, t + 1), p(buf.y, t + 1))
        if buf.f is None:
            self.lib.lif_fwd(batch, n, p(x), p(buf.mask), p(buf.alpha), p(buf.beta), *state,
                             *self.fwd_scalars)
        else:
            self.lib.gated_fwd(batch, n, p(x), p(buf.f, t), p(buf.mask), p(buf.alpha), *state,
                               p(buf.c, t), *self.fwd_scalars)

    def backward(self, buf: Buffers, t: int, g: "_Grads") -> None:
        p = native.ptr
        batch, n = buf.v.shape[1:]
        saved = (p(g.gy, t), p(buf.v, t + 1), p(buf.v, t), p(buf.i, t))
        carries = (p(g.dv_c), p(g.dy_c), p(g.di_c), p(g.dalpha))
        if buf.f is None:
            status = self.lib.lif_bwd(batch, n, *saved, p(buf.mask), p(buf.alpha), p(buf.beta),
                                      *carries, p(g.dbeta), p(g.dinp, t), *self.bwd_scalars)
        else:
            status = self.lib.gated_bwd(batch, n, *saved, p(buf.f, t), p(buf.c, t), p(buf.mask),
                                        p(buf.alpha), *carries, p(g.dinp, t), *self.bwd_scalars)
        native.check_status(status, self.q.surrogate)


class _Grads:
    """Backward work space: incoming grads, the three carries, parameter accumulators."""

    def __init__(self, buf: Buffers, gy: Tensor, g_i: Tensor, g_v: Tensor, g_y: Tensor) -> None:
        n = buf.alpha.numel()
        self.gy = gy.contiguous()
        # Carries start from the gradients of the returned final state.
        self.di_c, self.dv_c, self.dy_c = (
            g.clone(memory_format=torch.contiguous_format) for g in (g_i, g_v, g_y))
        self.dinp = gy.new_empty(buf.inp_shape)
        self.dalpha = torch.zeros(n, dtype=torch.float64, device=gy.device)
        self.dbeta = torch.zeros(n, dtype=torch.float64, device=gy.device)


def _steps(neuron: Neuron, q: Quantiser, x: Tensor,
           kernel: str) -> Union[_NativeSteps, _TorchSteps]:
    """The per-step back end ``kernel`` (``native`` or ``torch``) chosen by :mod:`.backend`;
    raises by name for a neuron or surrogate it does not implement."""
    if kernel == "native":
        require("the native C kernels", native.NEURONS, native.SURROGATES, neuron, q.surrogate)
        return _NativeSteps(native.load(x.dtype), q)
    require("the PyTorch-operator kernels", TORCH_NEURONS, TORCH_SURROGATES, neuron, q.surrogate)
    return _TorchSteps(q)


class _FusedRecurrence(torch.autograd.Function):
    """Forward loop without an autograd graph; backward is the reverse loop above."""

    @staticmethod
    def forward(ctx: Any, inp: Tensor, w_rec: Optional[Tensor], alpha: Tensor,
                beta: Optional[Tensor], i0: Tensor, v0: Tensor, y0: Tensor,
                mask: Optional[Tensor], q: Quantiser, neuron: Neuron, kernel: str
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        gated = neuron.n_gates == 2
        inp, buf = start(inp, alpha, beta, mask, i0, v0, y0, gated)
        steps, n = _steps(neuron, q, inp, kernel), alpha.numel()
        scratch = None if w_rec is None else inp.new_empty(inp.shape[1:])
        if gated and w_rec is None:  # v1: the forget gate does not depend on the state
            torch.sigmoid(inp[..., :n], out=buf.f)
        for t in range(inp.shape[0]):
            x = inp[t]
            if w_rec is not None:  # v2: G[t] + Ŷ[t−1]·W_r, then F = σ(G_f) (Eq. 19-20)
                x = torch.addmm(x, buf.y[t], w_rec, out=scratch)
                torch.sigmoid(x[:, :n], out=buf.f[t])
            steps.forward(buf, t, x)
        ctx.buf, ctx.steps = buf, steps
        return save_and_output(ctx, buf, w_rec, v0, gated)

    @staticmethod
    def backward(ctx: Any, gy: Tensor, _g_vmax: Tensor, g_i: Tensor, g_v: Tensor,
                 g_y: Tensor) -> Tuple[Optional[Tensor], ...]:
        buf = ctx.buf
        buf.i, buf.v, buf.y, buf.f, buf.c, w_rec, buf.alpha, buf.beta = ctx.saved_tensors
        g = _Grads(buf, gy, g_i, g_v, g_y)
        for t in reversed(range(buf.inp_shape[0])):
            ctx.steps.backward(buf, t, g)
            if w_rec is not None:
                g.dy_c.addmm_(g.dinp[t], w_rec.t())  # dŶ[t−1] += dG[t]·W_rᵀ (Eq. 19-20)
        need = ctx.needs_input_grad
        d_w = None
        if w_rec is not None and need[1]:
            d_w = w_rec_grad(buf.y, g.dinp)
        d_beta = g.dbeta.to(gy.dtype) if buf.beta is not None else None
        return (g.dinp, d_w, g.dalpha.to(gy.dtype), d_beta, g.di_c, g.dv_c, g.dy_c,
                None, None, None, None)


def fused_loop(neuron: Neuron, inputs: Tensor, alpha: Tensor, params: Params, b: Tensor,
               n_bits: int, k: int, surrogate: str, mask: Optional[Tensor],
               state: Optional[SpikingState] = None) -> Output:
    """The fused recurrence of ``neuron``: arguments and results as
    :func:`~pytorch_kaldi_snn.layers.recurrence.step_loop`. The kernel that runs it is
    :func:`.backend.choose`'s; a neuron or surrogate it does not implement raises by name."""
    w_rec, beta = kernel_args.recurrent_and_decay("the fused kernels", neuron, params)
    check_bits_threshold(n_bits, k)
    check_surrogate(surrogate)
    n, gated = alpha.numel(), neuron.n_gates == 2
    if alpha.shape != (n,) or inputs.dim() != 3 or inputs.shape[2] != neuron.n_gates * n:
        raise ValueError(f"expected alpha (n,) and input (T, B, {'2n' if gated else 'n'}); "
                         f"got alpha {tuple(alpha.shape)}, input {tuple(inputs.shape)}")
    if state is None:
        zeros = inputs.new_zeros(inputs.shape[1], n)
        state = SpikingState(zeros, zeros, zeros)
    q = Quantiser(b.detach(), n_bits, k, surrogate, RESET_SCALE)
    kernel = backend.choose(inputs, triton_check)
    if kernel != "triton":
        y, v_max, i_t, v_t, y_t = _FusedRecurrence.apply(
            inputs, w_rec, alpha, beta, state.i, state.v, state.y, mask, q, neuron, kernel)
        return y, v_max, SpikingState(i_t, v_t, y_t)
    from pytorch_kaldi_snn.kernels import triton_fused, triton_kernels  # imports triton

    require("the Triton kernels", triton_kernels.NEURONS, triton_kernels.SURROGATES, neuron,
            surrogate)
    # Half-precision (autocast) inputs: the state and the quantiser run in float32.
    args = [None if t is None else (t.float() if t.dtype in _HALF else t)
            for t in (inputs, w_rec, alpha, beta, state.i, state.v, state.y, mask)]
    y, v_max, i_t, v_t, y_t = triton_fused.TritonRecurrence.apply(*args, q, gated)
    return y, v_max, SpikingState(i_t, v_t, y_t)


def lif_fused(drive: Tensor, alpha: Tensor, beta: Tensor, b: Tensor, n_bits: int, k: int,
              surrogate: str, mask: Optional[Tensor],
              state: Optional[SpikingState] = None) -> Output:
    """Traditional LIF layer dynamics (Eq. 7-8, 22) over all T steps, fused.

    Args:
        drive: (T, B, n) input currents X[n]·W for all steps (batch-normalised outside).
        alpha, beta: (n,) membrane and synaptic decays.
        b: 0-dim membrane maximum (no gradient). n_bits, k: Eq. 22's N and γ = k·b/2^N.
        surrogate: a name of ``neurons.surrogate``.
        mask: (B, n) recurrent-dropout mask scaled by 1/(1−p), or None.
        state: initial (I, V, Ŷ), zeros when None.

    Returns:
        Ŷ (T, B, n), max of V over all steps (0-dim, detached), final state.

    Example:
        >>> import torch
        >>> y, v_max, st = lif_fused(torch.randn(5, 2, 3), torch.full((3,), .9),
        ...                          torch.full((3,), .8), torch.tensor(2.), 2, 1, "ste", None)
        >>> y.shape, st.v.shape
        (torch.Size([5, 2, 3]), torch.Size([2, 3]))
    """
    return fused_loop(TRADITIONAL, drive, alpha, (beta,), b, n_bits, k, surrogate, mask, state)


def v1_fused(gates: Tensor, alpha: Tensor, b: Tensor, n_bits: int, k: int, surrogate: str,
             mask: Optional[Tensor], state: Optional[SpikingState] = None) -> Output:
    """Improved dynamics v1 (Eq. 16-18, 8, 22); ``gates`` (T, B, 2n) = [forget | candidate]."""
    return fused_loop(V1, gates, alpha, (), b, n_bits, k, surrogate, mask, state)


def v2_fused(gates: Tensor, w_rec: Tensor, alpha: Tensor, b: Tensor, n_bits: int, k: int,
             surrogate: str, mask: Optional[Tensor],
             state: Optional[SpikingState] = None) -> Output:
    """Improved dynamics v2 (Eq. 19-21, 8, 22): v1 with Ŷ[n−1]·``w_rec`` (n, 2n) added to G."""
    return fused_loop(V2, gates, alpha, (w_rec,), b, n_bits, k, surrogate, mask, state)


RECURRENCES: first_launch.Recurrences = {"lif": lif_fused, "v1": v1_fused, "v2": v2_fused}


def triton_check(device: torch.device, dtype: torch.dtype) -> Optional[str]:
    """Triton's first launch on ``device`` in ``dtype`` against the PyTorch operators (None when
    they agree): the check ``auto`` runs before it trusts Triton there."""
    return first_launch.triton_failure(device, dtype, RECURRENCES)
