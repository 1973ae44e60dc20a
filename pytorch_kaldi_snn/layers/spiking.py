"""Spiking recurrent layers: traditional LIF (Eq. 7-9) and improved dynamics v1/v2 (Eq. 16-21).

Each layer class runs one registered neuron (:mod:`pytorch_kaldi_snn.neurons.variants`): the
neuron says what its dynamics need, the class creates those tensors (β, W_r) as parameters.
All share the membrane equation (Eq. 8), the multi-bit output (Eq. 22), the tracked membrane
maximum b, batch norm of the weighted sums of inputs and recurrent dropout; they differ only in
the synaptic current (``Neuron.current``). Options, their defaults and their checks live in
:mod:`pytorch_kaldi_snn.neurons.options` (one frozen dataclass per neuron family); the time loop
is the step-by-step reference (``impl="loop"``, :mod:`.recurrence`) or the fused kernels
(``impl="fused"``, :mod:`pytorch_kaldi_snn.kernels.fused`).

Shapes: input (T, B, m) time-major, output Ŷ (T, B, n).

Example::

    >>> layer = ImprovedV2Layer(40, 550)
    >>> layer(torch.randn(100, 8, 40)).shape
    torch.Size([100, 8, 550])
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.kernels.fused import fused_loop
from pytorch_kaldi_snn.layers import recurrence
from pytorch_kaldi_snn.layers.authors import Current, ResidualEncoder, authors_loop
from pytorch_kaldi_snn.layers.common import InputProjection, recurrent_dropout_mask, recurrent_weight
from pytorch_kaldi_snn.layers.cost import CountedLayer
from pytorch_kaldi_snn.neurons.dynamics import SpikingState
from pytorch_kaldi_snn.neurons.ema import MembraneMaxTracker
from pytorch_kaldi_snn.neurons.options import NeuronOptions
from pytorch_kaldi_snn.neurons.symmetric import SymmetricQuantiser
from pytorch_kaldi_snn.neurons.variants import TRADITIONAL, V1, V2, Neuron

HALF_DTYPES = (torch.float16, torch.bfloat16)  # autocast outputs; the dynamics run in float32
TimeLoop = Callable[..., Tuple[Tensor, Tensor, SpikingState]]
TIME_LOOPS: Dict[str, TimeLoop] = {"loop": recurrence.step_loop, "fused": fused_loop}


class SpikingLayer(CountedLayer):
    """Base of the spiking layers: projection, decays, quantiser settings, b, counters.

    Args:
        input_size: m. hidden_size: n (neurons).
        options: keyword arguments of the neuron's options class (``neuron.options``, in
            :mod:`pytorch_kaldi_snn.neurons.options`): n_bits, threshold (k with γ = k·b/2^N),
            surrogate, alpha, learn_decay, dropout, use_batchnorm, bias, ema_momentum, b_init,
            impl (``loop`` or ``fused``), reading (``paper`` or ``authors``, the latter on the
            step path only), and the neuron's own (β, forget_bias, orthinit).
    """

    neuron: Neuron

    def __init__(self, input_size: int, hidden_size: int, **options) -> None:
        super().__init__(input_size, hidden_size)
        self.options: NeuronOptions = self.neuron.options(**options)
        opts = self.options
        self.hidden_size = hidden_size
        self.n_bits, self.k, self.surrogate = opts.n_bits, opts.threshold, opts.surrogate
        self.dropout = opts.dropout
        self.impl, self.reading = opts.impl, opts.reading
        self.time_loop = TIME_LOOPS[opts.impl]
        self.projection = InputProjection(input_size, hidden_size, self.neuron.n_gates,
                                          use_batchnorm=opts.use_batchnorm, bias=opts.bias)
        if opts.reading == "paper":
            self.tracker = MembraneMaxTracker(opts.ema_momentum, opts.b_init)
        else:
            self.quantiser = SymmetricQuantiser(opts.n_bits, opts.threshold, opts.ema_momentum)
        self.alpha = self._decay(opts.alpha, opts.learn_decay)

    @property
    def variant(self) -> str:
        """The registered neuron's name (``traditional``, ``v1``, ``v2``)."""
        return self.neuron.name

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.neuron.kind

    def _decay(self, value: float, learn: bool) -> Tensor:
        """A per-neuron decay: a Parameter when learned, otherwise a buffer (kept in state_dict)."""
        tensor = torch.full((self.hidden_size,), float(value))
        return nn.Parameter(tensor) if learn else nn.Buffer(tensor)

    def neuron_params(self) -> Tuple[Tensor, ...]:
        """The tensors ``neuron.params`` names, in its order."""
        return tuple(getattr(self, name) for name in self.neuron.params)

    def run(self, proj: Tensor, b: Tensor, mask: Optional[Tensor],
            state: Optional[SpikingState]) -> Tuple[Tensor, Tensor, SpikingState]:
        """The time loop on the projected inputs with membrane maximum ``b``."""
        return self.time_loop(self.neuron, proj, self.alpha, self.neuron_params(), b,
                              self.n_bits, self.k, self.surrogate, mask, state)

    def step_current(self, mask: Optional[Tensor]) -> Current:
        """(step input, previous state) → I[n] for the ``authors`` reading's step loop."""
        return lambda x_t, state: self.neuron.current(x_t, state, self.neuron_params(), mask)

    def forward(self, x: Tensor, state: Optional[SpikingState] = None) -> Tensor:
        """(T, B, m) → Ŷ (T, B, n); updates b (or the authors' range) in training, counts in eval.

        Under autocast (``[exp] precision = bf16``) only the projection runs in half precision:
        the neuron state, the quantiser and v2's recurrent product run in float32.
        """
        proj = self.projection(x)
        if proj.dtype in HALF_DTYPES:
            proj = proj.float()
        with torch.autocast(x.device.type, enabled=False):
            return self._dynamics(x, proj, state)

    def _dynamics(self, x: Tensor, proj: Tensor, state: Optional[SpikingState]) -> Tensor:
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
                f"surrogate={self.surrogate}, dropout={self.dropout}, "
                f"impl={self.impl}, reading={self.reading}")


class LIFLayer(SpikingLayer):
    """Traditional LIF layer, Eq. 7-9: ``I[n] = β ⊙ I[n−1] + X[n] W``.

    Parameters: W (m, n) — the paper's m·n — plus the BN affine (2n) or a bias (n), and α, β
    when learned. Extra option ``beta``: initial current decay β (Eq. 7); defaults α = β = 0.5
    (see ``neurons.options.LIFOptions``).
    """

    neuron = TRADITIONAL

    def __init__(self, input_size: int, hidden_size: int, **options) -> None:
        super().__init__(input_size, hidden_size, **options)
        opts = self.options
        # The authors' traditional layer always learns β (their learn_tau = True), from 1.
        self.beta = self._decay(opts.beta, opts.learn_decay or opts.reading == "authors")


class _GatedSpikingLayer(SpikingLayer):
    """v1/v2 base: forget/candidate projection [W_fi | W_ci] (m, 2n).

    Extra option ``forget_bias``: initial shift of the forget-gate pre-activation (in the BN
    shift or the projection bias); 0 by default, positive values start with F near 1.
    """

    def __init__(self, input_size: int, hidden_size: int, **options) -> None:
        super().__init__(input_size, hidden_size, **options)
        forget_bias = self.options.forget_bias
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

    neuron = V1


class ImprovedV2Layer(_GatedSpikingLayer):
    """Improved dynamics v2, Eq. 19-21: forget and candidate also see Ŷ[n−1].

    Parameters: W_fi, W_ci, W_fr, W_cr — 2·m·n + 2·n² — plus BN affine or bias, and α when
    learned. Extra option ``orthinit``: orthogonal (else Glorot) init of [W_fr | W_cr].
    """

    neuron = V2

    def __init__(self, input_size: int, hidden_size: int, **options) -> None:
        super().__init__(input_size, hidden_size, **options)
        self.w_rec = recurrent_weight(hidden_size, 2, self.options.orthinit)


SPIKING_LAYERS = {"traditional": LIFLayer, "v1": ImprovedV1Layer, "v2": ImprovedV2Layer}

# spiking_stack's per-layer sequences and the option each one sets
_PER_LAYER = {"n_bits": "n_bits", "thresholds": "threshold", "surrogates": "surrogate",
              "alphas": "alpha", "dropouts": "dropout", "batchnorms": "use_batchnorm",
              "betas": "beta", "readings": "reading"}


def layer_class(variant: str) -> type:
    """The layer class of neuron ``variant``; raises by name for one without a layer."""
    if variant not in SPIKING_LAYERS:
        raise ValueError(f"no spiking layer for neuron {variant!r}; layers: "
                         f"{', '.join(SPIKING_LAYERS)}")
    return SPIKING_LAYERS[variant]


def stack_of(variant: str, input_size: int, sizes: Sequence[int],
             options: Sequence[NeuronOptions]) -> nn.Sequential:
    """A stack of ``variant`` layers, one ``options`` per size; with reading ``authors`` in the
    first layer the stack starts with the authors' :class:`~.authors.ResidualEncoder`."""
    cls = layer_class(variant)
    layers: List[nn.Module] = []
    if options and options[0].reading == "authors":
        first = options[0]
        layers.append(ResidualEncoder(first.n_bits, first.threshold, first.ema_momentum))
    current = input_size
    for size, opts in zip(sizes, options):
        layers.append(cls(current, size, **opts.as_kwargs()))
        current = size
    return nn.Sequential(*layers)


def spiking_stack(variant: str, input_size: int, sizes: Sequence[int],
                  **kwargs: object) -> nn.Sequential:
    """A stack of L spiking layers of ``variant`` (``traditional``, ``v1``, ``v2``).

    Per-layer sequences of length L: ``n_bits``, ``thresholds``, ``surrogates``, ``alphas``,
    ``dropouts``, ``batchnorms``, ``betas`` (``traditional`` only), ``readings``; any other
    keyword argument (learn_decay, ema_momentum, b_init, impl, bias, orthinit for v2,
    forget_bias for v1/v2) goes to every layer. An option left out takes its default.
    """
    neuron = layer_class(variant).neuron
    shared = {key: value for key, value in kwargs.items() if key not in _PER_LAYER}
    options = []
    for index in range(len(sizes)):
        layer = dict(shared)
        for key, option in _PER_LAYER.items():
            if kwargs.get(key) is not None:
                layer[option] = kwargs[key][index]
        options.append(neuron.options(**layer))
    return stack_of(variant, input_size, sizes, options)
