"""How the hand-written kernels take each neuron's tensors: W_r and β as separate arguments.

The fused recurrence (:mod:`.fused`, :mod:`.triton_fused`) and the streaming step
(:mod:`.streaming`, the C ``stream_frame``, :mod:`.triton_streaming`) pass a layer's extra tensors
(``Neuron.params``) as a recurrent weight W_r (v2) and a current decay β (traditional); this
table says which is which for the neurons they implement, and refuses any other by name.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

from torch import Tensor

from pytorch_kaldi_snn.neurons.variants import Neuron, require

RecurrentAndDecay = Tuple[Optional[Tensor], Optional[Tensor]]

_SPLIT: Dict[str, Callable[[Sequence[Tensor]], RecurrentAndDecay]] = {
    "traditional": lambda params: (None, params[0]),
    "v1": lambda params: (None, None),
    "v2": lambda params: (params[0], None),
}
NEURONS = tuple(_SPLIT)


def recurrent_and_decay(backend: str, neuron: Neuron,
                        params: Sequence[Tensor]) -> RecurrentAndDecay:
    """(W_r or None, β or None) of ``neuron``'s ``params``; ``backend`` names the caller in the
    error for a neuron the hand-written kernels do not implement."""
    require(backend, NEURONS, (), neuron)
    return _SPLIT[neuron.name](params)
