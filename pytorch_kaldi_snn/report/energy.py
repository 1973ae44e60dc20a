"""Energy estimate per frame: this model's operations at its measured sparsity against a dense
LSTM and GRU of the same sizes, priced with 45 nm figures (Horowitz, ISSCC 2014).

``python -m pytorch_kaldi_snn.report.energy EXP`` prints the table of a finished experiment
from the activity its ``results.json`` recorded (``--pj NAME=VALUE`` overrides a constant);
``--study`` prints it for the study's 2 x 550 models from the zero-output percentages that
docs/study.md quotes (no checkpoint needed); ``--study-dir OUT`` from the per-layer activity
that the study's trained spiking runs measured (``python -m pytorch_kaldi_snn.study table1
--out OUT``, seed 0 of each point). Every run writes the table into results.json (``energy``)
and results.md.

Counted per layer and frame (m inputs, n units, g pre-activations per unit: 1 for the
traditional layer, 2 for v1/v2; s the measured non-zero fraction of the layer's inputs, r that
of its own outputs):

* **synaptic operations**: one per non-zero input and weight, g·s·m·n (v2 adds 2·r·n·n for its
  recurrent product). A *binary* input (the previous spiking layer has N = 1, so its level q is
  0 or 1 and Δ folds into the weights) costs an **accumulate** (one add). A *multi-bit* input
  (N > 1: q·Δ with q up to 2^N − 1) or a real-valued one (the features) costs a
  **multiply-accumulate**. Convention: q·w is priced as a multiply; shift-and-add (at most N
  adds per product) would be cheaper for small N and is not assumed.
* **state updates**: the cost model's per-neuron multiplies (Eq. 10: β⊙I and the membrane's 3n
  for the traditional layer; F⊙I, (1 − F)⊙C and 3n for v1/v2) and 3n adds (current, membrane,
  reset). Sigmoid and ReLU are not priced (a table look-up and a comparison).
* **weight reads**: one per synaptic operation (the row of each non-zero input); the dense
  LSTM/GRU read every weight every frame. Reads are priced as SRAM reads of the weight width
  (:class:`Constants`); DRAM would cost 100 x more and dominate everything else.
* the readout layer: s·m·o synaptic operations as above; the LSTM's and GRU's is dense.

Caveats the literature gives (and this estimate inherits): memory access, not arithmetic,
dominates (Horowitz: a 64-bit read from an 8 kB SRAM, 10 pJ, costs twice a float MAC; from
DRAM 1.3-2.6 nJ); sparse, event-driven hardware pays for addressing and for reading and
writing the neuron state every frame, which is not priced here beyond the state updates; and a
spiking model beats a *quantised* (int8) non-spiking one only below a spike rate, which the
table states as ``break-even non-zero %`` against the int8 GRU of the same sizes (the fraction,
applied to every layer, at which this model's int8 energy equals the GRU's).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.errors import DataError, UserInputError
from pytorch_kaldi_snn.report.energy_model import Constants, LayerActivity, estimate, render
from pytorch_kaldi_snn.report.paper_ops import PAPER_TIMIT
from pytorch_kaldi_snn.report.study_layout import TABLE1, finished_runs, seed_folder


# docs/study.md, 2 x 550 units, 40 inputs, 6-bit outputs, seed 1234: zero outputs % of each
# architecture on the test set (all layers together: each layer is given this fraction), and
# the synthetic corpus's 117 readout classes (from the parameter counts there).
STUDY_ZEROS = {"traditional": 71.32, "v1": 59.70, "v2": 73.15}
STUDY_M, STUDY_N, STUDY_OUT = 40, 550, 117


def study_activity(arch: str, n_bits: int = 6) -> List[LayerActivity]:
    """The study's 2 x 550 model of ``arch`` at its quoted sparsity (no checkpoint)."""
    kind = f"snn_{arch}"
    r = 1.0 - STUDY_ZEROS[arch] / 100.0
    binary = n_bits == 1
    return [LayerActivity("layer 1", kind, STUDY_M, STUDY_N, 1.0, r, False, binary),
            LayerActivity("layer 2", kind, STUDY_N, STUDY_N, r, r, binary, binary),
            LayerActivity("readout", "mlp", STUDY_N, STUDY_OUT, r, 1.0, binary, False)]


class PricedModel(NamedTuple):
    """One spiking model of the study's table: its architecture (the paper's row it is compared
    with), zero outputs % and the activity of each layer."""
    arch: str
    zeros_pct: float
    layers: List[LayerActivity]


def quoted_models() -> Dict[str, PricedModel]:
    """The study's three spiking models at docs/study.md's quoted sparsity, by row label."""
    return {arch: PricedModel(arch, zeros, study_activity(arch))
            for arch, zeros in STUDY_ZEROS.items()}


def trained_models(study: Path) -> Dict[str, PricedModel]:
    """The spiking points of a finished ``study table1 --out STUDY``: seed 0 of each, with the
    zero outputs % and the per-layer activity its run measured on the test set; a row is
    labelled by its point's folder where an architecture has several."""
    found = {}
    runs = finished_runs(study, TABLE1, seed=0)
    for arch in STUDY_ZEROS:
        for run in runs.get(arch, []):
            results, layers = read_activity(run)
            label = f"{arch} ({run.parent.name})" if len(runs[arch]) > 1 else arch
            found[label] = PricedModel(arch, float(results["zero_outputs_pct"]), layers)
    if not found:
        pattern = seed_folder(Path(), TABLE1, "<arch>_N*", 0) / "results.json"
        raise DataError(f"holds no finished spiking run of {TABLE1} ({pattern}): not the --out "
                        f"of `python -m pytorch_kaldi_snn.study {TABLE1}`?", file=str(study))
    return found


def study_table(models: Dict[str, PricedModel], constants: Constants = Constants()) -> str:
    """Totals of the study's spiking ``models`` (by row label) beside the LSTM and GRU of their
    sizes, with the paper's Table 1 ops column (report.paper_ops) for comparison."""
    lines = ["| model | zeros % | fp32 pJ/frame | int8 pJ/frame | fp32 vs LSTM | int8 vs LSTM "
             "| break-even non-zero % | paper ops vs LSTM |", "|---|---|---|---|---|---|---|---|"]
    reference = estimate(next(iter(models.values())).layers, constants)["total"]
    for label, row in (("lstm", reference[1]), ("gru", reference[2])):
        lines.append(f"| {label} | 0.00 | {row['fp32_pj']:.0f} | {row['int8_pj']:.0f} "
                     f"| {row['fp32_pj'] / reference[1]['fp32_pj']:.3f} "
                     f"| {row['int8_pj'] / reference[1]['int8_pj']:.3f} | - "
                     f"| {PAPER_TIMIT[label].ops_vs_lstm:.2f} |")
    for name, model in models.items():
        section = estimate(model.layers, constants)
        this = section["total"][0]
        lines.append(f"| {name} | {model.zeros_pct:.2f} | {this['fp32_pj']:.0f} "
                     f"| {this['int8_pj']:.0f} | {this['fp32_pj'] / reference[1]['fp32_pj']:.3f} "
                     f"| {this['int8_pj'] / reference[1]['int8_pj']:.3f} "
                     f"| {section['break_even_nonzero_pct']:.1f} "
                     f"| {PAPER_TIMIT[model.arch].ops_vs_lstm:.2f} |")
    return "\n".join(lines)


def parse_constants(pairs: Sequence[str]) -> Constants:
    """``NAME=VALUE`` overrides of :class:`Constants`; one line naming a bad one."""
    names = [f.name for f in fields(Constants)]
    values: Dict[str, float] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in names:
            raise UserInputError(f"--pj {pair}: unknown constant (known: {', '.join(names)})")
        try:
            values[name] = float(text)
        except ValueError:
            raise UserInputError(f"--pj {pair}: the value must be a number of picojoules") from None
        if values[name] < 0:
            raise UserInputError(f"--pj {pair}: an energy cannot be negative")
    return Constants(**values)


def read_activity(folder: Path) -> Tuple[Dict[str, Any], List[LayerActivity]]:
    """A finished experiment's results.json and the layer activity its energy section holds."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise DataError("missing: not a finished experiment folder (run ./run_exp.sh first)",
                        file=str(path))
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        return results, [LayerActivity(**row) for row in results["energy"]["activity"]]
    except (ValueError, KeyError, TypeError):
        raise DataError("has no energy section (written before energy estimates, or edited); "
                        "rerun the experiment", file=str(path)) from None


def experiment_section(folder: Path, constants: Constants) -> Dict[str, Any]:
    """The energy section of a finished experiment, recomputed with ``constants``."""
    return estimate(read_activity(folder)[1], constants)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = command_parser("pytorch_kaldi_snn.report.energy", __doc__)
    parser.add_argument("exp", type=Path, nargs="?", help="finished experiment folder")
    parser.add_argument("--study", action="store_true",
                        help="the study's 2 x 550 models at docs/study.md's sparsities")
    parser.add_argument("--study-dir", type=Path, metavar="OUT",
                        help="the study's trained spiking models: seed 0 of each point of "
                             "OUT/table1 (python -m pytorch_kaldi_snn.study table1 --out OUT)")
    parser.add_argument("--pj", action="append", default=[], metavar="NAME=VALUE",
                        help="override a constant in pJ, e.g. --pj fp32_read=100 (repeatable)")
    args: argparse.Namespace = parser.parse_args(argv)
    if [args.exp is not None, args.study, args.study_dir is not None].count(True) != 1:
        parser.error("give one of: an experiment folder, --study, --study-dir OUT")

    def run() -> None:
        constants = parse_constants(args.pj)
        if args.study:
            print(study_table(quoted_models(), constants))
        elif args.study_dir is not None:
            print(study_table(trained_models(args.study_dir), constants))
        else:
            print(render(experiment_section(args.exp, constants)))
    return run_reporting_errors("energy", run)


if __name__ == "__main__":
    sys.exit(main())
