"""Spiking-neuron pieces: multi-bit quantiser (Eq. 22), surrogate gradients, membrane-max EMA."""
from pytorch_kaldi_snn.neurons.ema import MembraneMaxTracker
from pytorch_kaldi_snn.neurons.quantizer import check_bits_threshold, quantize, quantize_level
from pytorch_kaldi_snn.neurons.surrogate import SURROGATE_NAMES, check_surrogate, surrogate_grad

__all__ = [
    "MembraneMaxTracker", "SURROGATE_NAMES", "check_bits_threshold", "check_surrogate",
    "quantize", "quantize_level", "surrogate_grad",
]
