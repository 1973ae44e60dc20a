"""Spiking neurons, each variant defined once: registry (:mod:`.variants`), options
(:mod:`.options`), PyTorch step dynamics (:mod:`.dynamics`), multi-bit quantiser (Eq. 22),
surrogate gradients, membrane-max EMA."""
from pytorch_kaldi_snn.neurons.dynamics import SpikingState, zero_state
from pytorch_kaldi_snn.neurons.ema import MembraneMaxTracker
from pytorch_kaldi_snn.neurons.quantizer import check_bits_threshold, quantize, quantize_level
from pytorch_kaldi_snn.neurons.surrogate import SURROGATE_NAMES, check_surrogate, surrogate_grad
from pytorch_kaldi_snn.neurons.variants import NEURONS, Neuron, neuron, require

__all__ = [
    "MembraneMaxTracker", "NEURONS", "Neuron", "SURROGATE_NAMES", "SpikingState",
    "check_bits_threshold", "check_surrogate", "neuron", "quantize", "quantize_level", "require",
    "surrogate_grad", "zero_state",
]
