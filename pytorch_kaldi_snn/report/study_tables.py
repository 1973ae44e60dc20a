"""The study's statistics, tables and figure: mean ± std over seeds per point, Table 1 and
Fig. 5 as Markdown beside the paper's values, and Fig. 5's plot (``pytorch_kaldi_snn.study``)."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pytorch_kaldi_snn.io.atomic import atomic_write  # noqa: E402
from pytorch_kaldi_snn.report.paper_ops import KINDS, PAPER_TIMIT  # noqa: E402
from pytorch_kaldi_snn.report.results import scored_rate  # noqa: E402

# Fig. 5(a)'s values quoted in the text (TIMIT, 100 - PER %); the others are only plotted.
PAPER_FIG5A = {1: 8.8, 3: 70.0}
METRICS = ("frame_acc", "zero_outputs_pct", "mults_vs_lstm", "params")


class StudyPoint(Protocol):
    """What a row says of its point (``study.Point``)."""

    name: str
    arch: str
    n_bits: int
    k: int
    hidden: int


def mean_std(values: Sequence[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation of the values present; the deviation is None below
    two values (one seed has no spread to report, and 0.00 would claim one)."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else None


def summarise(point: StudyPoint, results: List[Dict], failures: Sequence[str] = ()) -> Dict:
    """Mean ± std over the finished seeds; ``failed`` lists the others' one-line errors."""
    row: Dict = {"point": point.name, "arch": point.arch, "n_bits": point.n_bits, "k": point.k,
                 "hidden": point.hidden, "seeds": len(results), "failed": list(failures)}
    for key in METRICS:
        row[key], row[f"{key}_std"] = mean_std([r[key] for r in results])
    rates = [scored_rate(r) for r in results]
    row["metric"] = "/".join(sorted({metric for metric, _ in rates})) or "PER"  # or WER on words
    row["error_rate"], row["error_rate_std"] = mean_std([rate for _, rate in rates])
    row["accuracy"] = None if row["error_rate"] is None else 100.0 - row["error_rate"]
    return row


def _cell(mean: Optional[float], std: Optional[float], failed: bool, digits: int) -> str:
    """``mean ± std``; the mean alone from one seed; ``failed`` / ``-`` when no seed finished."""
    if mean is None:
        return "failed" if failed else "-"
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _pm(row: Dict, key: str, digits: int = 2) -> str:
    return _cell(row[key], row[f"{key}_std"], bool(row["failed"]), digits)


def _accuracy(row: Dict) -> str:
    return _cell(row["accuracy"], row["error_rate_std"], bool(row["failed"]), 2)


def failure_notes(rows: List[Dict]) -> str:
    """The lines under a table naming each failed run and its one-line error ('' if none)."""
    notes = [f"- {row['point']} {reason}" for row in rows for reason in row["failed"]]
    return "\nfailed runs:\n\n" + "\n".join(notes) + "\n" if notes else ""


def table1_markdown(rows: List[Dict]) -> str:
    """Table 1's columns (ours: mean ± std over seeds) beside the paper's TIMIT column."""
    metric = "/".join(sorted({row["metric"] for row in rows}))
    lines = [f"| architecture | precision | threshold | 100 - {metric} % | frame acc % "
             "| zero outputs % "
             "| ops/inf vs LSTM | params | paper: acc % | paper: zeros % | paper: ops vs LSTM |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        spiking = KINDS[row["arch"]].startswith("snn")
        paper = PAPER_TIMIT[row["arch"]]
        precision = f"{row['n_bits']}-bit" if spiking else "full"
        threshold = f"b/{2 ** row['n_bits'] // row['k']}" if spiking else "-"
        params = "-" if row["params"] is None else f"{row['params']:.0f}"
        lines.append(
            f"| {row['arch']} | {precision} | {threshold} | {_accuracy(row)} "
            f"| {_pm(row, 'frame_acc')} | {_pm(row, 'zero_outputs_pct')} "
            f"| {_pm(row, 'mults_vs_lstm', 3)} | {params} | {paper.accuracy:.2f} "
            f"| {paper.zeros_pct:.2f} | {paper.ops_vs_lstm:.2f} |")
    return "\n".join(lines) + "\n" + failure_notes(rows)


def fig5_markdown(rows: List[Dict]) -> str:
    """Fig. 5's points as a table: bits, layer size, 100 − PER, frame accuracy, zero outputs."""
    metric = "/".join(sorted({row["metric"] for row in rows}))
    lines = [f"| N bits | threshold | units | 100 - {metric} % | frame acc % | zero outputs % "
             "| paper (TIMIT, text) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        paper = PAPER_FIG5A.get(row["n_bits"])
        lines.append(
            f"| {row['n_bits']} | b/{2 ** row['n_bits'] // row['k']} | {row['hidden']} "
            f"| {_accuracy(row)} | {_pm(row, 'frame_acc')} | {_pm(row, 'zero_outputs_pct')} "
            f"| {'-' if paper is None else paper} |")
    return "\n".join(lines) + "\n" + failure_notes(rows)


def _yerr(rows: List[Dict], key: str) -> Optional[List[float]]:
    """Error bars of ``key``: none where a point has one seed (no spread measured)."""
    spreads = [row[key] for row in rows]
    return None if all(s is None for s in spreads) else [s or 0.0 for s in spreads]


def plot_fig5(rows: List[Dict], path: Path) -> None:
    """Accuracy against output bits, one line per layer size, the paper's quoted points."""
    fig, (ax_per, ax_frame) = plt.subplots(1, 2, figsize=(9, 3.5))
    for hidden in sorted({row["hidden"] for row in rows}):
        group = [row for row in rows if row["hidden"] == hidden]
        scored = [row for row in group if row["accuracy"] is not None]
        if scored:
            ax_per.errorbar([row["n_bits"] for row in scored], [row["accuracy"] for row in scored],
                            _yerr(scored, "error_rate_std"), marker="o",
                            label=f"{hidden} units")
        done = [row for row in group if row["frame_acc"] is not None]
        ax_frame.errorbar([row["n_bits"] for row in done], [row["frame_acc"] for row in done],
                          _yerr(done, "frame_acc_std"), marker="s",
                          label=f"{hidden} units")
    failed = sorted({row["n_bits"] for row in rows if row["frame_acc"] is None})
    for ax in (ax_per, ax_frame):  # a point with no finished seed: a red cross on the axis
        if failed:
            ax.plot(failed, [0.0] * len(failed), "rx", ms=9, clip_on=False,
                    label="failed (see the .md)")
    ax_per.plot(list(PAPER_FIG5A), list(PAPER_FIG5A.values()), "kx", ms=9,
                label="paper (TIMIT, text)")
    metric = "/".join(sorted({row["metric"] for row in rows}))
    ax_per.set(xlabel="output bits N (threshold b/2^N)", ylabel=f"100 - {metric} (%)")
    ax_frame.set(xlabel="output bits N (threshold b/2^N)", ylabel="frame accuracy (%)")
    for ax in (ax_per, ax_frame):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
