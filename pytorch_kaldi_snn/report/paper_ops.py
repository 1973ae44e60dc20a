"""The paper's Table 1 operation counts: the authors' counter, and the count corrected.

``python -m pytorch_kaldi_snn.report.paper_ops`` prints, for TIMIT's Table 1 setting (2 x 550
layers, 40 fMLLR inputs, ``N_OUT`` context-dependent states), the multiplications per frame
of each architecture normalised to the LSTM, once as the authors' code counts them and once
with :func:`pytorch_kaldi_snn.layers.cost.layer_mults` (the cost model this package measures
with), both at Table 1's own zero-output percentages. Derivation: docs/model.md, "Table 1's
operation count".

The authors' counter (read from ``wponghiran/imp-snns-for-sl``, files
``traditional_spiking_model.py``, ``improved_spiking_model_v1.py``/``_v2.py`` and
``neural_networks.py``, ``num_ops``), per frame, with s0 the input encoder's non-zero fraction,
s_l that of layer l's outputs, o the readout size:

* LSTM/GRU (g = 4/3 gates): g·m·n + Σ_l (g·n² + 12n) + g·s_1·n·n + s_2·n·o (dense);
* traditional: s0·m·n + s_1·n·n + s_2·n·o + 2·6n (correct);
* v1 and v2 alike: 2·s0·m·n (input encoder) + [2·s0·m·n + 2·s_1·n² + 8n] (layer 1)
  + [2·s_1·n² + s_2·n·o + 8n] (layer 2). Layer 1's input matrices are counted twice; for v1
  the 2·s_1·n² of layer 1 are recurrent products v1 does not have (its layer 2's input
  matrices are counted again as layer 2's own), and v2's layer 2 misses its 2·s_2·n²
  recurrent products.

Only the zero percentage over all layers is published, so every layer (and, for the spiking
models, the encoded input) is given the same non-zero fraction s = 1 − zeros/100; ``N_OUT``
is not published either: 1944 reproduces the GRU's 0.81.
"""
from __future__ import annotations

import sys
from typing import Dict, List, NamedTuple, Optional, Sequence

from pytorch_kaldi_snn.cli import command_parser
from pytorch_kaldi_snn.layers.cost import layer_mults

M, N, N_OUT, LAYERS = 40, 550, 1944, 2
ARCHS = ("lstm", "gru", "traditional", "v1", "v2")
KINDS = {"lstm": "lstm", "gru": "gru", "traditional": "snn_traditional", "v1": "snn_v1",
         "v2": "snn_v2"}


class PaperRow(NamedTuple):
    """Table 1's TIMIT columns: frame accuracy %, zero outputs %, avg ops/inf vs LSTM."""

    accuracy: float
    zeros_pct: float
    ops_vs_lstm: float


PAPER_TIMIT: Dict[str, PaperRow] = {
    "lstm": PaperRow(82.68, 0.0, 1.00), "gru": PaperRow(82.26, 0.0, 0.81),
    "traditional": PaperRow(70.66, 59.90, 0.13), "v1": PaperRow(79.64, 70.89, 0.15),
    "v2": PaperRow(81.28, 84.29, 0.08),
}


def authors_ops(arch: str, s: float, m: int = M, n: int = N, o: int = N_OUT) -> float:
    """Multiplications per frame as the authors' ``num_ops`` counts a two-layer model."""
    if arch in ("lstm", "gru"):
        g = 4 if arch == "lstm" else 3
        return g * m * n + LAYERS * (g * n * n + 12 * n) + g * s * n * n + s * n * o
    if arch == "traditional":
        return s * m * n + s * n * n + s * n * o + LAYERS * 6 * n
    encoder = 2 * s * m * n
    first = 2 * s * m * n + 2 * s * n * n + 8 * n
    second = 2 * s * n * n + s * n * o + 8 * n
    return encoder + first + second


def corrected_ops(arch: str, s: float, m: int = M, n: int = N, o: int = N_OUT) -> float:
    """The same model counted with this package's cost model (each product once)."""
    kind = KINDS[arch]
    dense = arch in ("lstm", "gru")
    first = layer_mults(kind, m, n, 1.0 if dense else s, s)
    second = layer_mults(kind, n, n, s, s)
    return first + second + layer_mults("mlp", n, o, s)


def table() -> List[Dict[str, float]]:
    """Per architecture: the paper's ratio, the authors' counter's, the corrected one."""
    rows = []
    lstm_a, lstm_c = authors_ops("lstm", 1.0), corrected_ops("lstm", 1.0)
    gru_a, gru_c = authors_ops("gru", 1.0), corrected_ops("gru", 1.0)
    for arch in ARCHS:
        paper = PAPER_TIMIT[arch]
        s = 1.0 - paper.zeros_pct / 100.0
        a, c = authors_ops(arch, s), corrected_ops(arch, s)
        rows.append({"arch": arch, "zeros_pct": paper.zeros_pct, "paper": paper.ops_vs_lstm,
                     "authors": a / lstm_a, "corrected": c / lstm_c,
                     "gru_saving_authors": gru_a / a, "gru_saving_corrected": gru_c / c})
    return rows


def render() -> str:
    lines = ["| arch | zeros % | paper ops/LSTM | authors' counter | corrected | "
             "GRU/arch (authors) | GRU/arch (corrected) |", "|---|---|---|---|---|---|---|"]
    for r in table():
        lines.append(f"| {r['arch']} | {r['zeros_pct']:.2f} | {r['paper']:.2f} | "
                     f"{r['authors']:.4f} | {r['corrected']:.4f} | "
                     f"{r['gru_saving_authors']:.2f} | {r['gru_saving_corrected']:.2f} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    command_parser("pytorch_kaldi_snn.report.paper_ops", __doc__).parse_args(argv)
    print(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
