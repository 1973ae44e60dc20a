"""Activity counters, parameter counts and the multiplication cost model of the paper.

Every counted layer (spiking, LSTM, GRU, MLP readout layer) keeps these buffers, filled in
**eval mode only** (Table 1 reports inference statistics; training passes are not counted) and
never returned from ``forward``:

* ``in_nonzero`` / ``in_total`` — non-zero and total input values seen;
* ``zeros_out`` / ``total_out`` — zero and total output values;
* ``frames`` — number of (step, sequence) frames.

Only **real** frames are counted. A padded eval batch carries zero features and the layers'
outputs on the padding; counting them would move the input density, the zero fraction and the
multiplications per frame with the batch's padding. The caller therefore wraps the forward pass
in :func:`real_frames` with the (T, B) mask of real frames; without it every frame is real
(streaming and batch-1 evaluation have no padding).

Cost per frame (multiplications, Eq. 10 and the text after it), m inputs, n units:

* traditional spiking: ``n + s·m·n + 3n`` (Eq. 10);
* v1: ``2·s·m·n + 2n + 3n`` — two input matrices W_fi, W_ci each cost s·m·n, the current update
  F⊙I and (1−F)⊙C costs 2n, the membrane 3n as in Eq. 10;
* v2: v1 plus ``2·r·n·n`` for W_fr, W_cr fed with the layer's own previous output, where r is
  that output's non-zero fraction;
* GRU ``3n + 3(m+n)n``, LSTM ``3n + 4(m+n)n`` (dense, as in the paper);
* readout linear layer: ``s·m·n_out``.

Here s is the measured fraction of **non-zero** inputs. Eq. 10 calls s "a ratio of zeros", but
the cost n + s·m·n and the quoted 6/s, 8/s savings only hold when s is the non-zero fraction.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

COUNTERS = ("in_nonzero", "in_total", "zeros_out", "total_out", "frames")  # buffers of a layer


# Multiplications per frame of each layer kind, f(m, n, s, r) (the formulas above).
MULTS: Dict[str, Callable[[int, int, float, float], float]] = {
    "snn_traditional": lambda m, n, s, r: n + s * m * n + 3 * n,
    "snn_v1": lambda m, n, s, r: 2 * s * m * n + 2 * n + 3 * n,
    "snn_v2": lambda m, n, s, r: 2 * s * m * n + 2 * r * n * n + 2 * n + 3 * n,
    "lstm": lambda m, n, s, r: float(3 * n + 4 * (m + n) * n),
    "gru": lambda m, n, s, r: float(3 * n + 3 * (m + n) * n),
    "mlp": lambda m, n, s, r: s * m * n,
}


def layer_mults(kind: str, m: int, n: int, s: float = 1.0, r: float = 1.0) -> float:
    """Multiplications per frame of one layer (the formulas above; one source of truth).

    ``kind`` is a layer's ``kind`` (``snn_traditional``, ``snn_v1``, ``snn_v2``, ``lstm``,
    ``gru``, ``mlp``); s is the non-zero fraction of its inputs, r that of its own outputs
    (used by v2's recurrent products only). LSTM and GRU are dense whatever s is.
    """
    if kind not in MULTS:
        raise ValueError(f"no cost model for layer kind {kind!r}")
    return MULTS[kind](m, n, s, r)


class ParameterCount(NamedTuple):
    """Trainable parameters: ``total`` and ``weights`` (matrices only, as the paper counts)."""

    total: int
    weights: int


def count_parameters(module: nn.Module) -> ParameterCount:
    """Trainable parameter counts of ``module``; ``weights`` skips biases, norms and decays."""
    params = [p for p in module.parameters() if p.requires_grad]
    return ParameterCount(sum(p.numel() for p in params),
                          sum(p.numel() for p in params if p.dim() >= 2))


class CountedLayer(nn.Module):
    """Base of every layer the cost model knows: counters plus a per-frame multiplication count.

    Subclasses set ``kind`` and ``recurrent`` and implement :meth:`mults_per_frame`.
    """

    kind: str = "layer"
    recurrent: bool = True  # False for readout layers, which Table 1's zero columns exclude

    def __init__(self, input_size: int, output_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        for name in COUNTERS:
            self.register_buffer(name, torch.zeros((), dtype=torch.long))
        self.frame_mask: Optional[Tensor] = None  # set by :func:`real_frames`, never saved

    @torch.no_grad()
    def count(self, x: Tensor, y: Tensor) -> None:
        """Accumulate input density and output zeros of one eval-mode forward pass.

        ``x`` (…, m) and ``y`` (…, n) share their leading frame dimensions, (T, B) for a
        recurrent layer or (T·B,) for a readout; only the frames of ``frame_mask`` count.
        """
        if self.training:
            return
        if self.frame_mask is not None:
            keep = self.frame_mask.reshape(x.shape[:-1])
            x, y = x[keep], y[keep]
        self.in_nonzero += torch.count_nonzero(x)
        self.in_total += x.numel()
        self.zeros_out += y.numel() - torch.count_nonzero(y)
        self.total_out += y.numel()
        self.frames += y.numel() // self.output_size

    def reset_counters(self) -> None:
        for name in COUNTERS:
            getattr(self, name).zero_()

    def input_density(self) -> float:
        """Measured fraction of non-zero inputs (1.0 before anything was counted)."""
        total = int(self.in_total)
        return int(self.in_nonzero) / total if total else 1.0

    def zero_fraction(self) -> float:
        """Measured fraction of zero outputs (0.0 before anything was counted)."""
        total = int(self.total_out)
        return int(self.zeros_out) / total if total else 0.0

    def mults_per_frame(self) -> float:
        """Multiplications per frame under the paper's cost model, with measured densities."""
        return layer_mults(self.kind, self.input_size, self.output_size, self.input_density(),
                           1.0 - self.zero_fraction())

    def reference_mults(self, kind: str) -> float:
        """Per-frame cost of a dense ``"lstm"`` or ``"gru"`` layer of the same sizes.

        A readout layer costs the same dense m·n_out in every reference model.
        """
        m, n = self.input_size, self.output_size
        return float(m * n) if not self.recurrent else layer_mults(kind, m, n)


@dataclass
class LayerReport:
    name: str
    kind: str
    input_size: int
    output_size: int
    params: int
    input_density: float
    zero_output_pct: float
    mults_per_frame: float
    frames: int
    recurrent: bool  # False for the readout, whose outputs are not spiking/recurrent outputs


@dataclass
class ModelReport:
    """Table 1's columns 6-9 (and the parameter count) for one model."""

    params_total: int
    params_weights: int
    zero_output_pct: float  # over the outputs of all recurrent layers (Table 1 columns 6-7)
    mults_per_frame: float
    lstm_mults_per_frame: float  # an LSTM stack of the same sizes plus the same readout
    gru_mults_per_frame: float
    ratio_vs_lstm: float  # Table 1 columns 8-9 ("avg ops/inf" normalised to LSTMs)
    ratio_vs_gru: float
    layers: List[LayerReport] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def counted_layers(model: nn.Module) -> List[Tuple[str, CountedLayer]]:
    """(name, layer) for every :class:`CountedLayer` in ``model``, in forward order."""
    return [(name, mod) for name, mod in model.named_modules() if isinstance(mod, CountedLayer)]


def reset_counters(model: nn.Module) -> None:
    """Zero the activity counters of every counted layer in ``model``."""
    for _, layer in counted_layers(model):
        layer.reset_counters()


@contextmanager
def real_frames(model: nn.Module, mask: Tensor) -> Iterator[None]:
    """Count only the frames where the (T, B) boolean ``mask`` is true during the block."""
    layers = [layer for _, layer in counted_layers(model)]
    for layer in layers:
        layer.frame_mask = mask
    try:
        yield
    finally:
        for layer in layers:
            layer.frame_mask = None


def model_report(model: nn.Module) -> ModelReport:
    """Parameters, zero-output percentage and multiplications per frame of any model.

    Run the model in eval mode over some data first (counters fill only in eval mode).
    """
    layers = counted_layers(model)
    rows = [LayerReport(name, layer.kind, layer.input_size, layer.output_size,
                        count_parameters(layer).total, layer.input_density(),
                        100.0 * layer.zero_fraction(), layer.mults_per_frame(), int(layer.frames),
                        layer.recurrent)
            for name, layer in layers]
    recurrent = [layer for _, layer in layers if layer.recurrent]
    zeros = sum(int(layer.zeros_out) for layer in recurrent)
    total = sum(int(layer.total_out) for layer in recurrent)
    mults = sum(row.mults_per_frame for row in rows)
    lstm = sum(layer.reference_mults("lstm") for _, layer in layers)
    gru = sum(layer.reference_mults("gru") for _, layer in layers)
    params = count_parameters(model)
    return ModelReport(
        params_total=params.total, params_weights=params.weights,
        zero_output_pct=100.0 * zeros / total if total else 0.0,
        mults_per_frame=mults, lstm_mults_per_frame=lstm, gru_mults_per_frame=gru,
        ratio_vs_lstm=mults / lstm if lstm else 0.0, ratio_vs_gru=mults / gru if gru else 0.0,
        layers=rows)
