"""What a fused spiking recurrence keeps for its hand-written backward (BPTT).

Shared by the per-step back ends of :mod:`.fused` and the Triton loops of :mod:`.triton_fused`:
the quantiser's scalars of one call, the preallocated (T+1, B, n) buffers, what is saved through
autograd, and W_r's gradient. Importing it imports neither of them.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

from torch import Tensor

from pytorch_kaldi_snn.neurons.levels import top_level
from pytorch_kaldi_snn.neurons.quantizer import delivered, kernel_scalars, threshold
from pytorch_kaldi_snn.neurons.surrogate import surrogate_grad


class Quantiser(NamedTuple):
    """Scalars of Eq. 22 for one call: b, Δ = b/2^N, γ = kΔ, top level, reset scale c."""

    b: Tensor
    n_bits: int
    k: int
    surrogate: str
    c: float

    @property
    def delta(self) -> float:
        return kernel_scalars(self.b, self.n_bits, self.k).delta

    @property
    def gamma(self) -> float:
        return kernel_scalars(self.b, self.n_bits, self.k).gamma

    @property
    def qmax(self) -> float:
        return float(top_level(self.n_bits))

    def output(self, v: Tensor) -> Tensor:
        """Delivered Ŷ = q·Δ (Eq. 22), as the reference quantiser computes it."""
        return delivered(v, self.b, self.n_bits, self.k)

    def slope(self, v: Tensor) -> Tensor:
        """Surrogate dŶ/dV."""
        return surrogate_grad(self.surrogate, v, threshold(self.b, self.n_bits, self.k), self.b)


class Buffers:
    """Everything one call keeps: inputs, saved states (T+1 rows, row 0 = initial state)."""

    def __init__(self, inp: Tensor, alpha: Tensor, beta: Optional[Tensor],
                 mask: Optional[Tensor], gated: bool) -> None:
        steps, batch = inp.shape[:2]
        n = alpha.numel()
        self.inp_shape, self.alpha, self.beta = inp.shape, alpha, beta
        # Ones without dropout: one code path, and the native loops vectorise (no NULL test).
        self.mask = inp.new_ones(batch, n) if mask is None else mask.expand(batch, n).contiguous()
        self.i, self.v, self.y = (inp.new_empty(steps + 1, batch, n) for _ in range(3))
        self.f = inp.new_empty(steps, batch, n) if gated else None
        self.c = inp.new_empty(steps, batch, n) if gated else None


def start(inp: Tensor, alpha: Tensor, beta: Optional[Tensor], mask: Optional[Tensor],
           i0: Tensor, v0: Tensor, y0: Tensor, gated: bool) -> Tuple[Tensor, Buffers]:
    """Contiguous input, and the buffers with row 0 holding the initial state."""
    inp = inp.contiguous()
    buf = Buffers(inp, alpha.contiguous(), None if beta is None else beta.contiguous(),
                   None if mask is None else mask.contiguous(), gated)
    buf.i[0], buf.v[0], buf.y[0] = i0, v0, y0
    return inp, buf


def save_and_output(ctx: Any, buf: Buffers, w_rec: Optional[Tensor], v0: Tensor,
                     gated: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Save what the backward needs; return Ŷ (T, B, n), v_max and the final I, V, Ŷ."""
    # Saved through autograd (not only on ctx) so that in-place edits of Ŷ or of the
    # parameters are caught and saved-tensor hooks (offloading, memory accounting) see the
    # whole BPTT state. I is needed by the gates' and β's gradients, Ŷ by W_r's only.
    keep_i = gated or ctx.needs_input_grad[3]
    keep_y = w_rec is not None
    ctx.save_for_backward(buf.i if keep_i else None, buf.v, buf.y if keep_y else None,
                          buf.f, buf.c, w_rec, buf.alpha, buf.beta)
    v_max = buf.v[1:].amax() if buf.inp_shape[0] else v0.new_tensor(float("-inf"))
    ctx.mark_non_differentiable(v_max)
    i_last = buf.i[-1] if keep_i else buf.i[-1].clone()  # lets the unsaved I buffer go
    outputs = buf.y[1:], v_max, i_last, buf.v[-1], buf.y[-1]
    buf.i = buf.v = buf.y = buf.f = buf.c = None  # the backward takes them from ctx
    return outputs


def w_rec_grad(y: Tensor, d_gates: Tensor) -> Tensor:
    """dW_r = Σ_t Ŷ[t−1]ᵀ·dG[t]: one (n, T·B)·(T·B, 2n) product (``y`` holds T+1 rows)."""
    n = y.shape[-1]
    return y[:-1].reshape(-1, n).t() @ d_gates.reshape(-1, 2 * n)
