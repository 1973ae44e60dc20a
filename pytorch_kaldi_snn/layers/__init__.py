"""Layers: spiking stacks (traditional, v1, v2), LSTM/GRU/MLP baselines, cost counters."""
from pytorch_kaldi_snn.layers.baselines import GRULayer, LSTMLayer, MLP, MLPLayer, recurrent_stack
from pytorch_kaldi_snn.layers.cost import (
    CountedLayer,
    ModelReport,
    count_parameters,
    model_report,
    real_frames,
    reset_counters,
)
from pytorch_kaldi_snn.layers.recurrence import SpikingState, lif_loop, v1_loop, v2_loop
from pytorch_kaldi_snn.layers.spiking import (
    ImprovedV1Layer,
    ImprovedV2Layer,
    LIFLayer,
    SpikingLayer,
    spiking_stack,
)

__all__ = [
    "CountedLayer", "GRULayer", "ImprovedV1Layer", "ImprovedV2Layer", "LIFLayer", "LSTMLayer",
    "MLP", "MLPLayer", "ModelReport", "SpikingLayer", "SpikingState", "count_parameters",
    "lif_loop", "model_report", "real_frames", "recurrent_stack", "reset_counters",
    "spiking_stack", "v1_loop",
    "v2_loop",
]
