"""``results.json`` and ``results.md``: the numbers of Table 1 for one experiment."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from pytorch_kaldi_snn.report.names import layer_label
from pytorch_kaldi_snn.layers.cost import ModelReport
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.report.energy_model import render as render_energy
from pytorch_kaldi_snn.scoring.decoded import DecodeResult
from pytorch_kaldi_snn.train.checkpoint import save_json

RESULT_KEYS = ("arch", "per", "frame_acc", "zero_outputs_pct", "zero_outputs_pct_per_layer",
               "mults_per_frame", "mults_vs_lstm", "mults_vs_gru", "params", "decoder",
               "epochs", "wall_s")


def test_metrics(*, arch: str, frame_err: float, report: ModelReport,
                 decoded: DecodeResult) -> Dict[str, Any]:
    """PER and frame accuracy, activity and cost of one test set (eval mode)."""
    return {
        "arch": arch,
        "per": None if decoded.per is None else round(decoded.per, 2),
        "frame_acc": round(100.0 * (1.0 - frame_err), 2),
        "zero_outputs_pct": round(report.zero_output_pct, 2),
        "zero_outputs_pct_per_layer": {row.name: round(row.zero_output_pct, 2)
                                       for row in report.layers if row.recurrent},
        "mults_per_frame": round(report.mults_per_frame, 1),
        "mults_per_frame_per_layer": {row.name: round(row.mults_per_frame, 1)
                                      for row in report.layers},
        "mults_vs_lstm": round(report.ratio_vs_lstm, 4),
        "mults_vs_gru": round(report.ratio_vs_gru, 4),
        "params": report.params_total,
        "decoder": decoded.decoder,
    }


def scored_rate(results: Mapping[str, Any]) -> Tuple[str, Optional[float]]:
    """A results file's error rate under its own name: ``("PER", per)`` on a phone graph,
    ``("WER", wer)`` on a word graph (files written before ``metric`` existed are PER), so that
    tables and plots show what the run scored rather than an empty ``per``."""
    metric = results.get("metric") or "PER"
    return metric, results.get("wer") if metric == "WER" else results.get("per")


def results_dict(*, arch: str, frame_err: float, report: ModelReport, decoded: DecodeResult,
                 history: List[Dict[str, float]], wall_s: float,
                 extra: Dict[str, Any]) -> Dict[str, Any]:
    """Test-set PER and frame accuracy, activity and cost (test set, eval mode), training."""
    return {
        **test_metrics(arch=arch, frame_err=frame_err, report=report, decoded=decoded),
        "epochs": len(history),
        "wall_s": round(wall_s, 1),
        **extra,
        "history": history,
    }


WALL_NOTE = ("wall s: this run from reading the data to scoring, plus the training time of the "
             "interrupted runs it resumed (corpus preparation not included).")


def _markdown(results: Dict[str, Any]) -> str:
    metric, rate = scored_rate(results)
    header = (f"| arch | {metric} % | frame acc % | zeros % | mults/frame | vs LSTM | vs GRU "
              "| params | decoder | epochs | wall s |")
    per = "-" if rate is None else f"{rate:.2f}"
    row = (f"| {results['arch']} | {per} | {results['frame_acc']:.2f} "
           f"| {results['zero_outputs_pct']:.2f} | {results['mults_per_frame']:.0f} "
           f"| {results['mults_vs_lstm']:.3f} | {results['mults_vs_gru']:.3f} "
           f"| {results['params']} | {results['decoder']} | {results['epochs']} "
           f"| {results['wall_s']:.0f} |")
    layers = "\n".join(f"| {layer_label(name)} | {pct:.2f} |"
                       for name, pct in results["zero_outputs_pct_per_layer"].items())
    energy = f"\n{render_energy(results['energy'])}" if "energy" in results else ""
    return (f"{header}\n|{'---|' * 11}\n{row}\n\n{WALL_NOTE}\n\n"
            f"| layer | zero outputs % |\n|---|---|\n{layers}\n{energy}")


def write_results(out: Path, results: Dict[str, Any]) -> None:
    """Write ``results.md`` then ``results.json`` (last: its presence means the run is done)."""
    text = _markdown(results)
    atomic_write(out / "results.md", lambda tmp: tmp.write_text(text))
    save_json(out / "results.json", results)
