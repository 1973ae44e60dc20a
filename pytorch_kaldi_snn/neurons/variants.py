"""The registry of spiking-neuron variants: each variant defined once, for every back end.

A :class:`Neuron` states what a variant is: its name (cfg and layer), the integer code the
compiled kernels switch on, how many pre-activations per neuron its input projection makes, the
per-layer tensors besides α its dynamics read, its options (:mod:`.options`) and its synaptic
current as tensor operators (:mod:`.dynamics`). :data:`NEURONS` lists them. Like the modules it
reads, this one imports no torch: the cfg reader (:mod:`pytorch_kaldi_snn.config.architectures`)
takes each variant's options from here without loading PyTorch
(``tests/project/test_import_graph.py``).

Each back end declares which neurons and surrogates it implements and calls :func:`require`
before it runs, which raises by name for anything else: nothing guesses a variant from a
layer's type or attributes.

=================================== ============================================= ===========
back end                            where its dynamics live                       declares
=================================== ============================================= ===========
step-by-step reference (``loop``)   ``layers/recurrence.py`` via each             every
                                    ``Neuron.current``                            neuron
PyTorch operators (``fused``)       ``kernels/fused.py`` (``_TorchSteps``)        ``TORCH_*``
C (``fused``, streaming)            ``kernels/native.py`` (C source)              ``NATIVE_*``
Triton training (``fused``)         ``kernels/triton_kernels.py``                 ``TRITON_*``
Triton streaming                    ``kernels/triton_streaming.py``               ``STREAM_*``
PyTorch streaming                   ``kernels/streaming.py`` via ``Neuron.current`` every
authors' reading                    ``layers/authors.py`` via ``Neuron.current``  every
=================================== ============================================= ===========
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Dict, Optional, Sequence, Tuple, Type

from pytorch_kaldi_snn.neurons.dynamics import SpikingState, gated_current, lif_current
from pytorch_kaldi_snn.neurons.options import GatedOptions, LIFOptions, NeuronOptions, V2Options
from pytorch_kaldi_snn.neurons.surrogate import check_surrogate

if TYPE_CHECKING:
    from torch import Tensor

# (step input x_t, previous state, the tensors named by Neuron.params, dropout mask) → I[n]
Current = Callable[["Tensor", SpikingState, Sequence["Tensor"], Optional["Tensor"]], "Tensor"]


@dataclass(frozen=True)
class Neuron:
    """One variant.

    Attributes:
        name: the variant's name (``spiking_stack``, the layers' ``variant``).
        code: integer of the compiled kernels (C ``NEURON_<NAME>``).
        n_gates: pre-activations per neuron from the input projection: 1 (the drive X·W) or
            2 (forget and candidate, [G_f | G_c]).
        params: the layer's tensors besides α that the dynamics read, in the order the time
            loops take them (a layer attribute of each name).
        options: the typed options of its layers.
        current: I[n] as tensor operators, from the step's projected input.
    """

    name: str
    code: int
    n_gates: int
    params: Tuple[str, ...]
    options: Type[NeuronOptions]
    current: Current

    @property
    def kind(self) -> str:
        """The layer kind of the cost model and reports (``snn_<name>``)."""
        return f"snn_{self.name}"


def _lif(x_t: Tensor, state: SpikingState, params: Sequence[Tensor],
         mask: Optional[Tensor]) -> Tensor:
    """Eq. 7, with the dropout mask on the drive."""
    return lif_current(x_t if mask is None else mask * x_t, state.i, params[0])


def _v1(x_t: Tensor, state: SpikingState, params: Sequence[Tensor],
        mask: Optional[Tensor]) -> Tensor:
    """Eq. 16-18: the gates from the inputs only."""
    return gated_current(x_t, state.i, mask)


def _v2(x_t: Tensor, state: SpikingState, params: Sequence[Tensor],
        mask: Optional[Tensor]) -> Tensor:
    """Eq. 19-21: the gates also see Ŷ[n−1]·W_r (W_r = [W_fr | W_cr], (n, 2n))."""
    return gated_current(x_t + state.y @ params[0], state.i, mask)


TRADITIONAL = Neuron("traditional", 0, 1, ("beta",), LIFOptions, _lif)
V1 = Neuron("v1", 1, 2, (), GatedOptions, _v1)
V2 = Neuron("v2", 2, 2, ("w_rec",), V2Options, _v2)

NEURONS: Dict[str, Neuron] = {neuron.name: neuron for neuron in (TRADITIONAL, V1, V2)}


class NotImplementedByBackend(ValueError):
    """A back end was asked for a neuron or surrogate it does not implement."""


def neuron(name: str) -> Neuron:
    """The registered neuron called ``name``; raises by name for anything else."""
    if name not in NEURONS:
        raise ValueError(f"unknown neuron {name!r}; registered: {', '.join(NEURONS)}")
    return NEURONS[name]


def require(backend: str, neurons: Collection[str], surrogates: Collection[str],
            variant: Neuron, surrogate: Optional[str] = None) -> None:
    """Raise :class:`NotImplementedByBackend` naming ``backend`` unless it implements
    ``variant`` (and ``surrogate``, when given)."""
    if variant.name not in neurons:
        raise NotImplementedByBackend(
            f"neuron {variant.name!r} is not implemented by {backend} (implemented: "
            f"{', '.join(neurons)})")
    if surrogate is not None and surrogate not in surrogates:
        check_surrogate(surrogate)
        raise NotImplementedByBackend(
            f"surrogate {surrogate!r} is not implemented by {backend} (implemented: "
            f"{', '.join(surrogates)})")

