"""Spiking recurrent layers: traditional LIF (Eq. 7-9) and improved dynamics v1/v2 (Eq. 16-21).

All three share the membrane equation (Eq. 8), the multi-bit output (Eq. 22), the tracked
membrane maximum b, batch norm of the weighted sums of inputs and recurrent dropout; they differ
only in the synaptic-current update, which lives in :mod:`pytorch_kaldi_snn.layers.recurrence`.

Defaults (stated once, here): 6-bit outputs with threshold k = 4 (γ = 4b/64 = b/16, the paper's
Table 1 setting), straight-through surrogate, ``reset="output"``, α = 1 (the membrane integrates the
residual error without leak, as in the authors' code; the traditional layer uses α = β = 0.5,
see :class:`LIFLayer`), decays
fixed (``learn_decay=False``; the paper's parameter counts exclude them), batch norm on, no
dropout, orthogonal recurrent init, EMA momentum 0.1, b_init = 1, fused time loops
(``impl="fused"``; ``"loop"`` runs the step-by-step reference of :mod:`.recurrence`).

Shapes: input (T, B, m) time-major, output Ŷ (T, B, n).

Example::

    >>> layer = ImprovedV2Layer(40, 550)
    >>> layer(torch.randn(100, 8, 40)).shape
    torch.Size([100, 8, 550])
"""
from __future__ import annotations

import importlib
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.layers import recurrence
from pytorch_kaldi_snn.layers.authors import Current, ResidualEncoder, authors_loop
from pytorch_kaldi_snn.layers.common import InputProjection, recurrent_dropout_mask, recurrent_weight
from pytorch_kaldi_snn.layers.cost import CountedLayer
from pytorch_kaldi_snn.neurons.ema import MembraneMaxTracker
from pytorch_kaldi_snn.neurons.quantizer import check_bits_threshold
from pytorch_kaldi_snn.neurons.surrogate import check_surrogate
from pytorch_kaldi_snn.neurons.symmetric import SymmetricQuantiser

IMPLS = ("loop", "fused")
READINGS = ("paper", "authors")
HALF_DTYPES = (torch.float16, torch.bfloat16)  # autocast outputs; the dynamics run in float32


def check_reading(reading: str, impl: str) -> None:
    """Raise ``ValueError`` for an unknown reading or ``authors`` with the fused kernels."""
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}; valid: {', '.join(READINGS)}")
    if reading == "authors" and impl != "loop":
        raise ValueError("reading 'authors' runs on the step path only: use impl 'loop' "
                         "(the fused kernels implement the paper reading)")
FUSED_MODULE = "pytorch_kaldi_snn.kernels.fused"


def select_time_loop(variant: str, impl: str) -> Callable[..., Tuple[Tensor, Tensor, recurrence.SpikingState]]:
    """``recurrence.<variant>_loop`` or, lazily imported, ``kernels.fused.<variant>_fused``."""
    if impl == "loop":
        return getattr(recurrence, f"{variant}_loop")
    if impl == "fused":
        return getattr(importlib.import_module(FUSED_MODULE), f"{variant}_fused")
    raise ValueError(f"unknown impl {impl!r}; valid: {', '.join(IMPLS)}")


class SpikingLayer(CountedLayer):
    """Base of the three spiking layers: projection, decays, quantiser settings, b, counters.

    Args:
        input_size: m. hidden_size: n (neurons).
        n_bits: output bits N in [1, 16]. threshold: k with γ = k·b/2^N, in [0, 2^N − 1].
        surrogate: ``ste``, ``ste_clip``, ``pwl`` or ``fast_sigmoid`` (``neurons.surrogate``).
        reset: ``output`` (subtract Ŷ, the only mode; see ``recurrence``).
        alpha: initial membrane decay α (Eq. 8), per neuron.
        learn_decay: train the decays (α, and β for the traditional layer) or keep them fixed.
        use_batchnorm: batch norm of the weighted sums of inputs (projection then has no bias).
        dropout: recurrent-dropout probability p (one mask per sequence, on the candidate).
        bias: bias on the input projection when batch norm is off.
        ema_momentum, b_init: membrane-maximum tracker settings (``neurons.ema``).
        impl: ``loop`` (this package's step loop) or ``fused`` (``kernels.fused``).
        reading: ``paper`` (Eq. 22 as the text states it, b tracked per batch) or ``authors``
            (the authors' code: signed symmetric levels, range tracked per step, see
            :mod:`.authors`); ``authors`` runs on the step path only, so it needs
            ``impl="loop"``.
    """

    variant: str = ""
    n_gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, *, n_bits: int = 6, threshold: int = 4,
                 surrogate: str = "ste", reset: str = "output", alpha: float = 1.0,
                 learn_decay: bool = False, use_batchnorm: bool = True, dropout: float = 0.0,
                 bias: bool = True, ema_momentum: float = 0.1, b_init: float = 1.0,
                 impl: str = "fused", reading: str = "paper") -> None:
        super().__init__(input_size, hidden_size)
        check_reading(reading, impl)
        check_bits_threshold(n_bits, threshold)
        check_surrogate(surrogate)
        if reset not in recurrence.RESET_MODES:
            raise ValueError(f"unknown reset {reset!r}; valid: {', '.join(recurrence.RESET_MODES)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout {dropout} is outside [0, 1)")
        self.hidden_size = hidden_size
        self.n_bits, self.k, self.surrogate, self.reset = n_bits, threshold, surrogate, reset
        self.dropout = dropout
        self.impl, self.reading = impl, reading
        self.time_loop = select_time_loop(self.variant, impl)
        self.projection = InputProjection(input_size, hidden_size, self.n_gates,
                                          use_batchnorm=use_batchnorm, bias=bias)
        if reading == "paper":
            self.tracker = MembraneMaxTracker(ema_momentum, b_init)
        else:
            self.quantiser = SymmetricQuantiser(n_bits, threshold, ema_momentum)
        self.alpha = self._decay(alpha, learn_decay)

    def _decay(self, value: float, learn: bool) -> Tensor:
        """A per-neuron decay: a Parameter when learned, otherwise a buffer (kept in state_dict)."""
        tensor = torch.full((self.hidden_size,), float(value))
        return nn.Parameter(tensor) if learn else nn.Buffer(tensor)

    def run(self, proj: Tensor, b: Tensor, mask: Optional[Tensor],
            state: Optional[recurrence.SpikingState]) -> Tuple[Tensor, Tensor, recurrence.SpikingState]:
        """Call the variant's time loop on the projected inputs with membrane maximum ``b``."""
        raise NotImplementedError

    def step_current(self, mask: Optional[Tensor]) -> Current:
        """(step input, previous state) → I[n] for the ``authors`` reading's step loop."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: Optional[recurrence.SpikingState] = None) -> Tensor:
        """(T, B, m) → Ŷ (T, B, n); updates b (or the authors' range) in training, counts in eval.

        Under autocast (``[exp] precision = bf16``) only the projection runs in half precision:
        the neuron state, the quantiser and v2's recurrent product run in float32.
        """
        proj = self.projection(x)
        if proj.dtype in HALF_DTYPES:
            proj = proj.float()
        with torch.autocast(x.device.type, enabled=False):
            return self._dynamics(x, proj, state)

    def _dynamics(self, x: Tensor, proj: Tensor,
                  state: Optional[recurrence.SpikingState]) -> Tensor:
        mask = recurrent_dropout_mask(proj, self.hidden_size, self.dropout, self.training)
        if self.reading == "authors":
            y, _ = authors_loop(proj, self.step_current(mask), self.alpha, self.quantiser, state)
            self.count(x, y)
            return y
        if self.training and not self.tracker.started:
            detached = proj.detach()
            self.tracker.calibrate(lambda b: self.run(detached, b, mask, state)[1])
        # A copy: the EMA update below must not touch the b saved for the backward pass.
        y, v_max, _ = self.run(proj, self.tracker.b.clone(), mask, state)
        if self.training:
            self.tracker.update(v_max)
        self.count(x, y)
        return y

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, n_bits={self.n_bits}, k={self.k}, "
                f"surrogate={self.surrogate}, reset={self.reset}, dropout={self.dropout}, "
                f"impl={self.impl}, reading={self.reading}")


class LIFLayer(SpikingLayer):
    """Traditional LIF layer, Eq. 7-9: ``I[n] = β ⊙ I[n−1] + X[n] W``.

    Parameters: W (m, n) — the paper's m·n — plus the BN affine (2n) or a bias (n), and α, β
    when learned. Extra argument ``beta``: initial current decay β (Eq. 7).
    """

    kind = "snn_traditional"
    variant = "lif"
    n_gates = 1

    def __init__(self, input_size: int, hidden_size: int, *, alpha: float = 0.5, beta: float = 0.5,
                 learn_decay: bool = False, **kwargs) -> None:
        # Leaky membrane by default: I is signed here (unlike v1/v2, where I >= 0), and with
        # α = 1 a stretch of negative current drives V far below zero, silencing the neuron for
        # the rest of the sequence. α = β = 0.5 trains; α = 1 or α = β = 0.9 barely leave chance
        # on the built-in corpus (see docs/model.md).
        super().__init__(input_size, hidden_size, alpha=alpha, learn_decay=learn_decay, **kwargs)
        # The authors' traditional layer always learns β (their learn_tau = True), from 1.
        self.beta = self._decay(beta, learn_decay or kwargs.get("reading") == "authors")

    def run(self, proj: Tensor, b: Tensor, mask: Optional[Tensor],
            state: Optional[recurrence.SpikingState]) -> Tuple[Tensor, Tensor, recurrence.SpikingState]:
        return self.time_loop(proj, self.alpha, self.beta, b, self.n_bits, self.k,
                              self.surrogate, self.reset, mask, state)

    def step_current(self, mask: Optional[Tensor]) -> Current:
        if mask is None:
            return lambda x_t, state: recurrence.lif_current(x_t, state.i, self.beta)
        return lambda x_t, state: recurrence.lif_current(mask * x_t, state.i, self.beta)


class _GatedSpikingLayer(SpikingLayer):
    """v1/v2 base: forget/candidate projection [W_fi | W_ci] (m, 2n).

    Extra argument ``forget_bias``: initial shift of the forget-gate pre-activation (in the BN
    shift or the projection bias); 0 by default, positive values start with F near 1.
    """

    n_gates = 2

    def __init__(self, input_size: int, hidden_size: int, *, forget_bias: float = 0.0,
                 **kwargs) -> None:
        super().__init__(input_size, hidden_size, **kwargs)
        shift = self.projection.shift()
        if forget_bias != 0.0:
            if shift is None:
                raise ValueError("forget_bias needs batch norm or a projection bias")
            with torch.no_grad():
                shift[:hidden_size].fill_(forget_bias)


class ImprovedV1Layer(_GatedSpikingLayer):
    """Improved dynamics v1, Eq. 16-18: forget and candidate from the inputs only.

    Parameters: W_fi, W_ci — 2·m·n — plus BN affine (4n) or a bias (2n), and α when learned.
    """

    kind = "snn_v1"
    variant = "v1"

    def run(self, proj: Tensor, b: Tensor, mask: Optional[Tensor],
            state: Optional[recurrence.SpikingState]) -> Tuple[Tensor, Tensor, recurrence.SpikingState]:
        return self.time_loop(proj, self.alpha, b, self.n_bits, self.k,
                              self.surrogate, self.reset, mask, state)

    def step_current(self, mask: Optional[Tensor]) -> Current:
        return lambda g_t, state: recurrence.gated_current(g_t, state.i, mask)


class ImprovedV2Layer(_GatedSpikingLayer):
    """Improved dynamics v2, Eq. 19-21: forget and candidate also see Ŷ[n−1].

    Parameters: W_fi, W_ci, W_fr, W_cr — 2·m·n + 2·n² — plus BN affine or bias, and α when
    learned. Extra argument ``orthinit``: orthogonal (else Glorot) init of [W_fr | W_cr].
    """

    kind = "snn_v2"
    variant = "v2"

    def __init__(self, input_size: int, hidden_size: int, *, orthinit: bool = True,
                 **kwargs) -> None:
        super().__init__(input_size, hidden_size, **kwargs)
        self.w_rec = recurrent_weight(hidden_size, 2, orthinit)

    def run(self, proj: Tensor, b: Tensor, mask: Optional[Tensor],
            state: Optional[recurrence.SpikingState]) -> Tuple[Tensor, Tensor, recurrence.SpikingState]:
        return self.time_loop(proj, self.w_rec, self.alpha, b, self.n_bits, self.k,
                              self.surrogate, self.reset, mask, state)

    def step_current(self, mask: Optional[Tensor]) -> Current:
        return lambda g_t, state: recurrence.gated_current(g_t + state.y @ self.w_rec, state.i,
                                                           mask)


SPIKING_LAYERS = {"traditional": LIFLayer, "v1": ImprovedV1Layer, "v2": ImprovedV2Layer}


def spiking_stack(variant: str, input_size: int, sizes: Sequence[int], *,
                  n_bits: Sequence[int], thresholds: Sequence[int], surrogates: Sequence[str],
                  alphas: Sequence[float], dropouts: Sequence[float],
                  batchnorms: Sequence[bool], betas: Optional[Sequence[float]] = None,
                  readings: Optional[Sequence[str]] = None, **shared) -> nn.Sequential:
    """A stack of L spiking layers of ``variant`` (``traditional``, ``v1``, ``v2``).

    Per-layer sequences must have length L; ``betas`` only for ``traditional``; ``readings``
    (default all ``paper``): with ``authors`` for the first layer the stack starts with the
    authors' :class:`~.authors.ResidualEncoder` of the input features; ``shared``
    keyword arguments (reset, learn_decay, ema_momentum, b_init, impl, bias, orthinit for v2,
    forget_bias for v1/v2) go to every layer.
    """
    cls = SPIKING_LAYERS[variant]
    layers: List[nn.Module] = []
    readings = list(readings) if readings is not None else ["paper"] * len(sizes)
    if readings and readings[0] == "authors":
        layers.append(ResidualEncoder(n_bits[0], thresholds[0], shared.get("ema_momentum", 0.1)))
    current = input_size
    for index, size in enumerate(sizes):
        kwargs = dict(shared, n_bits=n_bits[index], threshold=thresholds[index],
                      surrogate=surrogates[index], alpha=alphas[index], dropout=dropouts[index],
                      use_batchnorm=batchnorms[index], reading=readings[index])
        if betas is not None:
            kwargs["beta"] = betas[index]
        layers.append(cls(current, size, **kwargs))
        current = size
    return nn.Sequential(*layers)
