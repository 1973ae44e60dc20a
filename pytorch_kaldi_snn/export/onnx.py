"""ONNX export of a trained spiking model for streaming: one frame per call, the state explicit.

::

    python -m pytorch_kaldi_snn.export.onnx EXP model.onnx [--float64]
    python -m pytorch_kaldi_snn.transcribe EXP a.wav --onnx model.onnx

The graph is one step of the network: inputs ``frame`` (1, m) and, per spiking layer l, its
state ``i<l>``, ``v<l>``, ``y<l>`` (1, n) (synaptic current, membrane, delivered output
Ŷ = q·Δ); outputs ``log_post`` (1, classes) and the new state ``i<l>_next``... Every utterance
starts from zeros. Each layer's dynamics are its registered neuron's (``Neuron.current``, the
multi-bit quantiser of Eq. 22, v2's recurrent product Ŷ[n−1]·W_r), with eval-mode batch norm
folded into the projection exactly as :class:`~pytorch_kaldi_snn.kernels.streaming.StreamingSNN`
folds it; the readout MLP follows. Products are dense in the graph (ONNX has no event-driven
product; a runtime that skips zero rows computes the same sums).

Exportable: a cfg whose ``forward_out`` is a chain of ``compute`` operations on one feature
stream: one spiking architecture (TraditionalSNN, ImprovedSNNv1, ImprovedSNNv2, paper reading,
no layer norm) or LSTM/GRU baseline (state ``h<l>``, and ``c<l>`` for an LSTM) followed by MLP
readouts. Anything else is refused by name.

Needs the ``export`` extra (``pip install -e ".[export]"``: onnx, onnxruntime); the exporter is
PyTorch's TorchScript-based one (``dynamo=False``), which needs nothing else.
"""
from __future__ import annotations

import copy
import importlib.util
import logging
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.errors import UserInputError
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.kernels.streaming import fold_projection
from pytorch_kaldi_snn.layers.baselines import RECURRENT_LAYERS, MLPLayer
from pytorch_kaldi_snn.layers.common import InputNorm
from pytorch_kaldi_snn.layers.spiking import SpikingLayer
from pytorch_kaldi_snn.neurons.dynamics import SpikingState, membrane
from pytorch_kaldi_snn.neurons.quantizer import delivered

EXTRA = 'pip install -e ".[export]"'
OPSET = 17
STATE = ("i", "v", "y")
RECURRENT = tuple(RECURRENT_LAYERS.values())  # the LSTM and GRU baseline layers


def require_packages(*names: str) -> None:
    """One line naming the extra when a package of it is missing."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise UserInputError(f"needs the {', '.join(missing)} package(s) of the export extra: "
                             f"{EXTRA}")


class LayerStep(nn.Module):
    """One spiking layer's frame: (x, I, V, Ŷ) → (I, V, Ŷ) with batch norm folded (eval); its
    output is Ŷ, the last of the state."""

    names = STATE
    output = 2

    def __init__(self, layer: SpikingLayer) -> None:
        super().__init__()
        if layer.reading != "paper" or layer.projection.layernorm is not None:
            raise UserInputError("ONNX export runs spiking layers of the paper reading without "
                                 "layer norm (the streaming form)")
        self.neuron = layer.neuron
        weight, bias = fold_projection(layer.projection)
        self.register_buffer("weight", weight.clone())
        self.register_buffer("bias", bias.clone())
        self.register_buffer("alpha", layer.alpha.detach().clone())
        self.register_buffer("b", layer.tracker.b.detach().clone())
        self.params = [name for name in self.neuron.params]
        for name in self.params:
            self.register_buffer(name, getattr(layer, name).detach().clone())
        self.n_bits, self.k, self.n = layer.n_bits, layer.k, layer.hidden_size

    def forward(self, x: Tensor, i: Tensor, v: Tensor, y: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        state = SpikingState(i, v, y)
        params = tuple(getattr(self, name) for name in self.params)
        current = self.neuron.current(x @ self.weight + self.bias, state, params, None)
        potential = membrane(current, state, self.alpha)
        return current, potential, delivered(potential, self.b, self.n_bits, self.k)


class RecurrentStep(nn.Module):
    """One LSTM or GRU baseline layer's frame: (x, h[, c]) → (h[, c]) by the layer's own
    ``step``, its projection (and norms) in eval mode; its output is h, the first of the state."""

    output = 0

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.names = layer.state_names
        self.n = layer.hidden_size

    def forward(self, x: Tensor, *state: Tensor) -> Tuple[Tensor, ...]:
        return self.layer.step(self.layer.projection(x), state, None)


def layer_step(layer: nn.Module) -> nn.Module:
    """The one-frame module of a spiking or LSTM/GRU layer."""
    return RecurrentStep(layer) if isinstance(layer, RECURRENT) else LayerStep(layer)


def readout_step(layer: nn.Module, x: Tensor) -> Tensor:
    """A readout layer in eval mode without its activity counters (an export has none)."""
    if isinstance(layer, InputNorm):
        return layer(x)
    out = layer.linear(x)
    if layer.layernorm is not None:
        out = layer.layernorm(out)
    if layer.batchnorm is not None:
        out = layer.batchnorm(out)
    return layer.act(out)


class NetworkStep(nn.Module):
    """The exported graph: frame and state in, log-posteriors and state out."""

    def __init__(self, layers: Sequence[nn.Module], readout: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layer_step(layer) for layer in layers)
        self.readout = nn.ModuleList(readout)

    def forward(self, frame: Tensor, *state: Tensor) -> Tuple[Tensor, ...]:
        x, new, start = frame, [], 0
        for layer in self.layers:
            out = layer(x, *state[start: start + len(layer.names)])
            start += len(layer.names)
            new += out
            x = out[layer.output]
        for layer in self.readout:
            x = readout_step(layer, x)
        return (x, *new)

    def state_names(self) -> List[str]:
        return [f"{s}{index}" for index, layer in enumerate(self.layers) for s in layer.names]

    def zero_state(self, dtype: torch.dtype) -> List[Tensor]:
        return [torch.zeros(1, layer.n, dtype=dtype) for layer in self.layers
                for _ in layer.names]


def export_step(layers: Sequence[nn.Module], readout: Sequence[nn.Module], path: Path,
                dtype: torch.dtype = torch.float32) -> NetworkStep:
    """Write the one-frame graph of ``layers`` + ``readout`` to ``path`` (in ``dtype``)."""
    # copies in ``dtype`` before folding: batch norm folded in float32 and then widened moves
    # membranes by ~1e-6, enough to flip a level near a threshold; and the caller's model stays
    # as it was
    layers = [copy.deepcopy(layer).to(dtype) for layer in layers]
    step = NetworkStep(layers, [copy.deepcopy(layer).to(dtype) for layer in readout]).eval()
    frame = torch.zeros(1, layers[0].input_size, dtype=dtype)
    names = step.state_names()
    args = (frame, *step.zero_state(dtype))
    outputs = ["log_post", *[f"{n}_next" for n in names]]

    def write(temp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of one that needs onnxscript
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(step, args, str(temp), dynamo=False, opset_version=OPSET,
                              input_names=["frame", *names], output_names=outputs)
    atomic_write(path, write)  # a failed export leaves no half-written model
    return step


def model_chain(model: nn.Module, forward_out: str) -> Tuple[str, List[nn.Module], List[nn.Module]]:
    """(feature name, spiking or LSTM/GRU layers, readout layers) of an AcousticModel whose
    ``forward_out`` is compute(readout, ... compute(recurrent architecture, feature)); refuses
    anything else."""
    producers = {op.out: op for op in model.operations if not op.op.startswith("cost_")}
    chain, name = [], forward_out
    while name in producers:
        op = producers[name]
        if op.op != "compute":
            raise UserInputError(f"ONNX export follows a chain of compute operations; "
                                 f"{op.out} = {op.op}(...) is not one")
        chain.append(op.args[0])
        name = op.args[1]
    chain.reverse()
    nets = [model.nets[arch] for arch in chain]
    first = getattr(nets[0], "net", None) if nets else None
    if first is None or not any(all(isinstance(layer, kind) for layer in first)
                                for kind in (SpikingLayer, RECURRENT)):
        raise UserInputError(f"ONNX export needs a spiking or LSTM/GRU architecture first in the "
                             f"chain to "
                             f"{forward_out} (got {', '.join(type(n).__name__ for n in nets)})")
    readout: List[nn.Module] = []
    for net in nets[1:]:
        layers = list(getattr(net, "net", []))
        if not layers or not all(isinstance(x, (MLPLayer, InputNorm)) for x in layers):
            raise UserInputError(f"ONNX export reads out with MLP layers only (got "
                                 f"{type(net).__name__})")
        readout += layers
    return name, list(first), readout


class OnnxStreamer:
    """An exported graph run by onnxruntime, one frame at a time from a zero state."""

    def __init__(self, path: Path) -> None:
        require_packages("onnxruntime")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # batch-1 frames: threads cost more than they give
        try:
            self.session = onnxruntime.InferenceSession(str(path), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own classes for a file it cannot read
            raise UserInputError(f"not a readable ONNX model ({type(err).__name__})",
                                 file=str(path)) from None
        inputs = self.session.get_inputs()
        if [x.name for x in inputs[:1]] != ["frame"]:
            raise UserInputError("not a model of python -m pytorch_kaldi_snn.export.onnx (no "
                                 "input 'frame')", file=str(path))
        self.frame_size = int(inputs[0].shape[1])
        self.dtype = np.float64 if inputs[0].type == "tensor(double)" else np.float32
        self.state_inputs = [(x.name, x.shape) for x in inputs[1:]]

    def run(self, frames: np.ndarray) -> Tuple[np.ndarray, List[np.ndarray]]:
        """A (T, m) utterance: (T, classes) log-posteriors and each layer's (T, n) outputs Ŷ."""
        state = {name: np.zeros(shape, dtype=self.dtype) for name, shape in self.state_inputs}
        # each layer's output: Ŷ (y<l>) of a spiking layer, h (h<l>) of an LSTM/GRU
        delivers = [name for name, _ in self.state_inputs if name[0] in "yh"]
        posts: List[np.ndarray] = []
        outputs: List[List[np.ndarray]] = [[] for _ in delivers]
        for frame in np.asarray(frames, dtype=self.dtype):
            result = self.session.run(None, {"frame": frame[None], **state})
            posts.append(result[0][0])
            state = {name: value for (name, _), value in zip(self.state_inputs, result[1:])}
            for name, values in zip(delivers, outputs):
                values.append(state[name][0])
        return np.stack(posts), [np.stack(values) for values in outputs]


def export_experiment(folder: Path, path: Path, dtype: torch.dtype) -> Dict[str, object]:
    """Export the finished experiment in ``folder`` to ``path``."""
    from pytorch_kaldi_snn.trained import load_trained  # the experiment layer, not needed above

    require_packages("onnx")
    trained = load_trained(Path(folder), logging.getLogger("export"))
    feature, layers, readout = model_chain(trained.model.cpu(), trained.exp.forward.forward_out)
    export_step(layers, readout, Path(path), dtype)
    return {"feature": feature, "layers": len(layers), "path": str(path)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = command_parser("pytorch_kaldi_snn.export.onnx", __doc__)
    parser.add_argument("exp", type=Path, help="finished experiment folder")
    parser.add_argument("out", type=Path, help="the .onnx file to write")
    parser.add_argument("--float64", action="store_true",
                        help="export in float64 (bit-for-bit levels against StreamingSNN)")
    args = parser.parse_args(argv)

    def run() -> None:
        done = export_experiment(args.exp, args.out, torch.float64 if args.float64 else torch.float32)
        print(f"wrote {done['path']}: {done['layers']} spiking layers and the readout, one "
              f"frame of feature {done['feature']} per call")
    return run_reporting_errors("export", run)


if __name__ == "__main__":
    sys.exit(main())
