"""Fast spiking recurrences: fused training loops with a hand-written backward, and streaming.

* :mod:`.fused` — ``lif_fused``, ``v1_fused``, ``v2_fused``: drop-in equivalents of the step
  loops in :mod:`pytorch_kaldi_snn.layers.recurrence` (selected by ``impl="fused"``).
* :mod:`.streaming` — :class:`StreamingSNN`: batch-1, frame-by-frame, event-driven inference.
* :mod:`.native` — the C kernels both use, compiled on first use, with a PyTorch fallback.
* :mod:`.triton_kernels`, :mod:`.triton_fused` — the fused loops on CUDA: one Triton launch per
  layer and direction (imported only when used; triton is optional at run time).
* :mod:`.triton_streaming` — batch-1 streaming on CUDA: one Triton launch per layer and frame.
* :mod:`.backend` — which of them runs (``PYTORCH_KALDI_SNN_KERNEL``), logged.
"""
from pytorch_kaldi_snn.kernels.fused import lif_fused, v1_fused, v2_fused
from pytorch_kaldi_snn.kernels.streaming import StreamingSNN

__all__ = ["StreamingSNN", "lif_fused", "v1_fused", "v2_fused"]
