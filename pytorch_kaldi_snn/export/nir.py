"""NIR export (Neuromorphic Intermediate Representation 1.0) of what NIR can express::

    python -m pytorch_kaldi_snn.export.nir EXP model.nir

Expressible: traditional LIF layers (Eq. 7-8) with binary outputs (N = 1), each as an ``Affine``
edge (the projection with eval-mode batch norm folded in) into a ``CubaLIF`` node, then the
readout's ``Affine``. Refused, with the reason in the message:

* v1 and v2: NIR has no gating primitive (their current F⊙I + (1 − F)⊙C multiplies two
  signals, and v2 feeds the gated sum back); NIR's nodes are linear maps, filters and neurons;
* multi-bit outputs (N > 1): NIR's ``CubaLIF`` and ``Threshold`` emit binary events only;
* no membrane or current leak (α = 1 or β = 1): a CubaLIF time constant would be infinite.

Discretisation: NIR is continuous-time; with step dt (snnTorch's import uses dt = 1e-4) the
nodes are written so that the Euler step is this model's: τ_syn = dt/(1 − β), τ_mem = dt/(1 − α),
r = τ_mem/dt, w_in = τ_syn/dt (unit input scale), v_leak = 0, v_threshold = γ = k·Δ. A binary
spike here is delivered as Ŷ = Δ, so Δ of the emitting layer is folded into the next Affine's
weights. The readout's log-softmax is not a NIR node: the graph outputs the readout's scores
(the same arg max).

The reset differs, and NIR cannot express ours: NIR's CubaLIF sets V to ``v_reset`` (0) when it
fires, this model subtracts what it emitted, Δ, at the next step (Eq. 8, the only reset; see
docs/model.md). The exported graph is therefore this model's dynamics up to each neuron's first
spike and an approximation after it; tests/export/test_nir_export.py measures the agreement.

Needs the ``export`` extra (``pip install -e ".[export]"``: nir; snnTorch reads the graph back).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.errors import UserInputError
from pytorch_kaldi_snn.export.onnx import model_chain, require_packages
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.kernels.streaming import fold_projection
from pytorch_kaldi_snn.layers.baselines import MLPLayer
from pytorch_kaldi_snn.layers.spiking import SpikingLayer
from pytorch_kaldi_snn.neurons.quantizer import step_size, threshold

DT = 1e-4  # the step snnTorch's NIR import assumes; any dt gives the same discrete model


def check_expressible(layer: SpikingLayer) -> None:
    """Raise, with the reason, for a layer NIR cannot express."""
    if not isinstance(layer, SpikingLayer):  # an LSTM/GRU baseline (ONNX exports those)
        raise UserInputError(f"NIR cannot express a {type(layer).__name__}: NIR describes "
                             "spiking neurons; only traditional LIF layers export")
    if layer.neuron.name != "traditional":
        raise UserInputError(f"NIR cannot express neuron {layer.neuron.name!r}: NIR has no gating "
                             "primitive (F⊙I + (1 − F)⊙C multiplies two signals); only "
                             "traditional LIF layers export")
    if layer.n_bits != 1:
        raise UserInputError(f"NIR cannot express {layer.n_bits}-bit outputs: its CubaLIF and "
                             "Threshold emit binary events only (N = 1)")
    if layer.reading != "paper" or layer.projection.layernorm is not None:
        raise UserInputError("NIR export runs spiking layers of the paper reading without layer "
                             "norm (the streaming form)")
    for name, decay in (("alpha", layer.alpha), ("beta", layer.beta)):
        if not bool((decay < 1).all() and (decay >= 0).all()):
            raise UserInputError(f"NIR's CubaLIF needs a leak: {name} must lie in [0, 1)")


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().cpu().numpy()


def to_nir(layers: Sequence[SpikingLayer], readout: Sequence[nn.Module]):
    """The NIR graph of a traditional N = 1 stack and its linear readout."""
    require_packages("nir")
    import nir

    nodes, scale = [], 1.0  # scale: Δ of the layer feeding the next edge (1 for the features)
    for layer in layers:
        check_expressible(layer)
        weight, bias = fold_projection(layer.projection)
        nodes.append(nir.Affine(weight=_numpy(weight.t()) * scale, bias=_numpy(bias)))
        beta, alpha = _numpy(layer.beta), _numpy(layer.alpha)
        tau_syn, tau_mem = DT / (1 - beta), DT / (1 - alpha)
        gamma = float(threshold(layer.tracker.b, 1, layer.k))
        nodes.append(nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / DT,
                                 v_leak=np.zeros_like(alpha), v_threshold=np.full_like(alpha, gamma),
                                 v_reset=np.zeros_like(alpha), w_in=tau_syn / DT))
        scale = float(step_size(layer.tracker.b, 1))
    for layer in readout:
        plain = (isinstance(layer, MLPLayer) and layer.layernorm is None
                 and layer.batchnorm is None and layer.act_name in ("softmax", "linear"))
        if not plain:
            raise UserInputError("NIR export reads out with linear layers (softmax or linear "
                                 "activation, no norm) only")
        linear = layer.linear
        bias = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
        nodes.append(nir.Affine(weight=_numpy(linear.weight) * scale, bias=_numpy(bias)))
        scale = 1.0
    return nir.NIRGraph.from_list(*nodes)


def export_experiment(folder: Path, path: Path) -> int:
    """Write the NIR graph of the finished experiment in ``folder``; returns its node count."""
    from pytorch_kaldi_snn.trained import load_trained

    require_packages("nir")
    import nir

    trained = load_trained(Path(folder), logging.getLogger("export"))
    _, layers, readout = model_chain(trained.model.cpu(), trained.exp.forward.forward_out)
    graph = to_nir(layers, readout)
    atomic_write(path, lambda temp: nir.write(str(temp), graph))
    return len(graph.nodes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = command_parser("pytorch_kaldi_snn.export.nir", __doc__)
    parser.add_argument("exp", type=Path, help="finished experiment folder")
    parser.add_argument("out", type=Path, help="the NIR file (HDF5) to write")
    args = parser.parse_args(argv)

    def run() -> None:
        nodes = export_experiment(args.exp, args.out)
        print(f"wrote {args.out}: {nodes} NIR nodes")
    return run_reporting_errors("export", run)


if __name__ == "__main__":
    sys.exit(main())
