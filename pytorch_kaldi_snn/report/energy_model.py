"""Energy per frame of a model and of a dense LSTM/GRU of the same sizes: what is counted and
how it is priced. The command and the method are described in :mod:`.energy`; this module holds
the model (imported by the results writer, which the command's package loads first).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Dict, List, Optional, Sequence

from torch import nn

from pytorch_kaldi_snn.layers.cost import counted_layers, layer_mults
from pytorch_kaldi_snn.report.names import layer_label

DENSE_GATES = {"lstm": 4, "gru": 3}
SPIKING_GATES = {"snn_traditional": 1, "snn_v1": 2, "snn_v2": 2}


@dataclass(frozen=True)
class Constants:
    """Energy per operation in pJ, 45 nm (Horowitz, ISSCC 2014, "Computing's energy problem").

    fp32: multiply 3.7, add 0.9, multiply-accumulate 4.6; int8: multiply 0.2, add 0.03, MAC
    0.23. Weight reads: a 64-bit read from an 8 kB SRAM costs 10 pJ, so 5 pJ per 32-bit weight
    and 1.25 pJ per 8-bit weight (the same bank, fewer bits; an assumption of this estimate).
    """

    fp32_mac: float = 4.6
    fp32_mult: float = 3.7
    fp32_add: float = 0.9
    int8_mac: float = 0.23
    int8_mult: float = 0.2
    int8_add: float = 0.03
    fp32_read: float = 5.0
    int8_read: float = 1.25

    def price(self, precision: str, name: str) -> float:
        return getattr(self, f"{precision}_{name}")


PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class LayerActivity:
    """What the estimate needs of one counted layer: sizes, measured non-zero fractions of its
    inputs (s) and outputs (r), and whether its inputs are binary (N = 1 spikes)."""

    name: str
    kind: str
    m: int
    n: int
    s: float
    r: float
    binary_input: bool
    binary_output: bool


@dataclass(frozen=True)
class Ops:
    """Operations per frame: accumulates, multiply-accumulates, state multiplies and adds,
    weight reads."""

    acc: float = 0.0
    mac: float = 0.0
    mult: float = 0.0
    add: float = 0.0
    reads: float = 0.0

    def __add__(self, other: "Ops") -> "Ops":
        return Ops(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Ops)))

    def energy_pj(self, constants: Constants, precision: str) -> float:
        price = constants.price
        return (self.acc * price(precision, "add") + self.mac * price(precision, "mac")
                + self.mult * price(precision, "mult") + self.add * price(precision, "add")
                + self.reads * price(precision, "read"))


def _synapses(count: float, binary: bool) -> Ops:
    """``count`` weight uses: accumulates for binary inputs, MACs otherwise; one read each."""
    return Ops(acc=count, reads=count) if binary else Ops(mac=count, reads=count)


def model_ops(layer: LayerActivity) -> Ops:
    """This layer's operations per frame at its measured sparsity."""
    m, n = layer.m, layer.n
    if layer.kind in DENSE_GATES:
        return dense_ops(layer.kind, m, n)
    if layer.kind == "mlp":
        return _synapses(layer.s * m * n, layer.binary_input)
    gates = SPIKING_GATES[layer.kind]
    ops = _synapses(gates * layer.s * m * n, layer.binary_input)
    if layer.kind == "snn_v2":
        ops = ops + _synapses(2 * layer.r * n * n, layer.binary_output)
    return ops + Ops(mult=layer_mults(layer.kind, m, n, 0.0, 0.0), add=3 * n)


def dense_ops(kind: str, m: int, n: int) -> Ops:
    """A dense LSTM/GRU layer (every weight, every frame) or readout of sizes (m, n)."""
    if kind == "mlp":
        return Ops(mac=m * n, reads=m * n)
    weights = DENSE_GATES[kind] * (m + n) * n
    return Ops(mac=weights, reads=weights, mult=3 * n, add=3 * n)


def reference_ops(layer: LayerActivity, kind: str) -> Ops:
    """The same position in an LSTM/GRU stack of the same sizes (the readout stays a readout)."""
    return dense_ops("mlp" if layer.kind == "mlp" else kind, layer.m, layer.n)


def activity(model: nn.Module) -> List[LayerActivity]:
    """Each counted layer's activity after an eval pass (the counters of layers.cost). A layer's
    input is binary when the counted layer before it is a spiking layer with N = 1 (a stack
    feeds each layer's output to the next and to the readout)."""
    rows: List[LayerActivity] = []
    previous_bits: Optional[int] = None  # the features: real-valued
    for name, layer in counted_layers(model):
        bits = getattr(layer, "n_bits", None) if layer.kind in SPIKING_GATES else None
        rows.append(LayerActivity(name, layer.kind, layer.input_size, layer.output_size,
                                  layer.input_density(), 1.0 - layer.zero_fraction(),
                                  previous_bits == 1, bits == 1))
        previous_bits = bits
    return rows


def _total(layers: Sequence[LayerActivity], ops_of: Callable[[LayerActivity], Ops]) -> Ops:
    total = Ops()
    for layer in layers:
        total = total + ops_of(layer)
    return total


def break_even(layers: Sequence[LayerActivity], constants: Constants) -> Optional[float]:
    """The non-zero fraction (every layer's inputs and outputs alike) at which this model's int8
    energy equals that of the int8 GRU of the same sizes; None for a model without spikes.
    Energy is linear in the fraction, so two evaluations give the line."""
    if not any(layer.kind in SPIKING_GATES for layer in layers):
        return None

    def at(fraction: float) -> float:
        # the first layer reads the features, whose density the model does not set
        uniform = [replace(x, s=x.s if i == 0 else fraction, r=fraction)
                   for i, x in enumerate(layers)]
        return _total(uniform, model_ops).energy_pj(constants, "int8")

    gru = _total(layers, lambda x: reference_ops(x, "gru")).energy_pj(constants, "int8")
    slope = at(1.0) - at(0.0)
    return (gru - at(0.0)) / slope if slope > 0 else None


def estimate(layers: Sequence[LayerActivity], constants: Constants = Constants()) -> Dict[str, Any]:
    """The energy section of results.json: per layer and in total, ops and pJ per frame of this
    model, the LSTM and the GRU of the same sizes, in fp32 and int8."""
    def row(label: str, ops: Ops) -> Dict[str, Any]:
        return {"model": label, **{k: round(v, 1) for k, v in asdict(ops).items()},
                **{f"{p}_pj": round(ops.energy_pj(constants, p), 1) for p in PRECISIONS}}

    per_layer = [{"layer": layer.name, "rows": [
        row("this", model_ops(layer)), row("lstm", reference_ops(layer, "lstm")),
        row("gru", reference_ops(layer, "gru"))]} for layer in layers]
    totals = [row("this", _total(layers, model_ops)),
              row("lstm", _total(layers, lambda x: reference_ops(x, "lstm"))),
              row("gru", _total(layers, lambda x: reference_ops(x, "gru")))]
    even = break_even(layers, constants)
    return {"constants_pj": asdict(constants), "activity": [asdict(x) for x in layers],
            "per_layer": per_layer, "total": totals,
            "break_even_nonzero_pct": None if even is None else round(100 * even, 2)}


def from_model(model: nn.Module) -> Dict[str, Any]:
    """:func:`estimate` of a model whose counters an eval pass filled (the run's test set)."""
    return estimate(activity(model))


def render(section: Dict[str, Any], title: str = "Energy per frame") -> str:
    """The markdown table of an energy section (totals, then per layer)."""
    lines = [f"### {title}", "",
             "| layer | model | accumulates | MACs | state mults | state adds | weight reads "
             "| fp32 pJ | int8 pJ |", "|---|---|---|---|---|---|---|---|---|"]

    def add(label: str, rows: List[Dict[str, Any]]) -> None:
        for r in rows:
            lines.append(f"| {label} | {r['model']} | {r['acc']:.0f} | {r['mac']:.0f} "
                         f"| {r['mult']:.0f} | {r['add']:.0f} | {r['reads']:.0f} "
                         f"| {r['fp32_pj']:.0f} | {r['int8_pj']:.0f} |")

    add("all", section["total"])
    for layer in section["per_layer"]:
        add(layer_label(layer["layer"]), layer["rows"])
    this, lstm, gru = section["total"]
    lines += ["", f"This model / LSTM: {this['fp32_pj'] / lstm['fp32_pj']:.3f} (fp32), "
              f"{this['int8_pj'] / lstm['int8_pj']:.3f} (int8); / GRU: "
              f"{this['fp32_pj'] / gru['fp32_pj']:.3f} (fp32), "
              f"{this['int8_pj'] / gru['int8_pj']:.3f} (int8)."]
    even = section["break_even_nonzero_pct"]
    if even is not None:
        lines.append(f"Break-even non-zero %: {even:.1f} (below it this model's int8 energy is "
                     "under the int8 GRU's of the same sizes).")
    constants = ", ".join(f"{k} {v:g}" for k, v in section["constants_pj"].items())
    lines += [f"Constants (pJ, 45 nm, Horowitz ISSCC 2014; weight reads from an 8 kB SRAM): "
              f"{constants}. Memory access dominates; DRAM reads (1.3-2.6 nJ) are not priced. "
              "See `python -m pytorch_kaldi_snn.report.energy --help`.", ""]
    return "\n".join(lines)
