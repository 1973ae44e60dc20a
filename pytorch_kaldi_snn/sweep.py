"""Sweep a grid of cfg values, run or resume each point, and draw accuracy vs. output precision.

    python -m pytorch_kaldi_snn.sweep cfg/synth_snn_v2.cfg --out exp/sweep_bits \\
        --grid architecture1.snn_n_bits=1:2:3:4:5:6 --set architecture1.snn_threshold=1

Each ``--grid section.key=v1:v2:...`` adds a grid axis (values are separated by ``:`` so that a
value may hold commas, e.g. ``architecture1.snn_lay=256,256:550,550``); every point runs in
``OUT/<key>=<value>...`` and is skipped when its ``results.json`` exists, so rerunning the same
command resumes the sweep. All points are validated before the first one runs. The figure
follows the paper's Fig. 5: accuracy (100 - the error rate and frame accuracy) against the
first grid axis, one line per value of the other axes; the error rate is each run's own, PER on a
phone graph and WER on a word graph. The threshold ``b/2^N`` of Fig. 5 is ``snn_threshold = 1``.
"""
from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pytorch_kaldi_snn.config.experiment import load_experiment  # noqa: E402
from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors  # noqa: E402
from pytorch_kaldi_snn.errors import ConfigError  # noqa: E402
from pytorch_kaldi_snn.pipeline.grid import GridRun, run_grid  # noqa: E402
from pytorch_kaldi_snn.io.atomic import atomic_write  # noqa: E402
from pytorch_kaldi_snn.io.ownership import take  # noqa: E402
from pytorch_kaldi_snn.report.results import scored_rate  # noqa: E402
from pytorch_kaldi_snn.train.checkpoint import save_json  # noqa: E402

Axis = Tuple[str, List[str]]
Point = Tuple[Tuple[str, str], ...]


def parse_grid(specs: Sequence[str]) -> List[Axis]:
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or "." not in key or not values:
            raise ConfigError(f"--grid {spec!r} is not of the form section.key=v1:v2:...")
        axes.append((key, values.split(":")))
    return axes


def points(axes: List[Axis]) -> List[Point]:
    keys = [key for key, _ in axes]
    return [tuple(zip(keys, combo)) for combo in itertools.product(*(v for _, v in axes))]


def point_dir(out: Path, point: Point) -> Path:
    name = "_".join(f"{key.split('.')[-1]}={value}" for key, value in point)
    return out / re.sub(r"[^\w.=,-]", "_", name)


def point_overrides(cfg_sets: Sequence[str], out: Path, point: Point) -> List[str]:
    return [*cfg_sets, *(f"{k}={v}" for k, v in point), f"exp.out_folder={point_dir(out, point)}"]


ROW_KEYS = ("frame_acc", "zero_outputs_pct", "mults_vs_gru", "params")


def sweep_row(point: Point, results: Mapping[str, Any]) -> Dict[str, Any]:
    """One ``sweep.json`` row: the point, its error rate under its own name, the other figures."""
    metric, rate = scored_rate(results)
    return {"point": dict(point), "metric": metric, "error_rate": rate,
            **{k: results[k] for k in ROW_KEYS}}


def _groups(rows: List[Dict], axes: List[Axis]) -> Dict[str, List[Dict]]:
    """The rows per combination of the other axes (one plotted line each)."""
    groups: Dict[str, List[Dict]] = {}
    for row in rows:
        label = ", ".join(f"{k.split('.')[-1]}={row['point'][k]}" for k, _ in axes[1:])
        groups.setdefault(label, []).append(row)
    return groups


def accuracy_lines(rows: List[Dict], axes: List[Axis]) -> Dict[str, List[Tuple[str, float]]]:
    """Per line, ``(first-axis value, 100 - error rate)`` of its scored points (an unscored
    point has no error rate to draw)."""
    return {label: [(row["point"][axes[0][0]], 100 - row["error_rate"]) for row in group
                    if row["error_rate"] is not None]
            for label, group in _groups(rows, axes).items()}


def plot_accuracy(rows: List[Dict], axes: List[Axis], path: Path) -> None:
    """Fig. 5 style: accuracy against the first axis, one line per other-axes combination."""
    x_key = axes[0][0]
    fig, (ax_per, ax_frame) = plt.subplots(1, 2, figsize=(9, 3.5))
    groups = _groups(rows, axes)
    for label, points in accuracy_lines(rows, axes).items():
        if points:
            ax_per.plot(*zip(*points), "o-", label=label or None)
    for label, group in groups.items():
        xs = [row["point"][x_key] for row in group]
        ax_frame.plot(xs, [row["frame_acc"] for row in group], "s-", label=label or None)
    metric = "/".join(sorted({row["metric"] for row in rows}))
    ax_per.set(xlabel=x_key.split(".")[-1], ylabel=f"accuracy = 100 - {metric} (%)")
    ax_frame.set(xlabel=x_key.split(".")[-1], ylabel="frame accuracy (%)")
    for ax in (ax_per, ax_frame):
        ax.grid(alpha=0.3)
        if len(groups) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def point_name(point: Point) -> str:
    return " ".join(f"{key}={value}" for key, value in point)


def check_point(cfg: Path, cfg_sets: Sequence[str], out: Path, point: Point) -> None:
    """Validate one point. Where the cfg with its ``--set`` values is itself wrong in a key that
    no grid axis sets, the fault is the file's and is reported as such; any other is the grid's,
    so it names the grid point, not the file, and says how to fix the grid when the key at fault
    is not one of its axes."""
    try:
        load_experiment(cfg, point_overrides(cfg_sets, out, point))
    except ConfigError as err:
        try:
            load_experiment(cfg, cfg_sets)
        except ConfigError as base_err:
            if f"{base_err.section}.{base_err.key}" not in dict(point):
                raise
        where = ConfigError(err.message, section=err.section, key=err.key)
        fault = f"{err.section}.{err.key}"
        hint = ("" if not err.key or fault in dict(point) else
                f"; --set {fault} to a value every grid point admits, or drop this point from "
                "the grid")
        raise ConfigError(f"grid point {point_name(point)}: {where}{hint}") from None


def run_sweep(cfg: Path, axes: List[Axis], out: Path, cfg_sets: Sequence[str]) -> List[Dict]:
    grid = points(axes)
    for point in grid:  # fail on any bad point before spending time on the others
        check_point(cfg, cfg_sets, out, point)
    take(out, "a sweep of pytorch_kaldi_snn.sweep", legacy=("sweep.json",))
    runs = [GridRun(f"sweep point {i}/{len(grid)}: {dict(point)}", cfg,
                    tuple(point_overrides(cfg_sets, out, point))) for i, point in enumerate(grid, 1)]
    outcomes = run_grid(runs, 1, "sweep", keep_going=False)
    rows = [sweep_row(point, results) for point, (results, _) in zip(grid, outcomes)]
    save_json(out / "sweep.json", rows)
    plot_accuracy(rows, axes, out / "accuracy_vs_precision.png")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = command_parser("pytorch_kaldi_snn.sweep", "Run a grid of cfg variants (resumable).")
    parser.add_argument("cfg", type=Path, help="experiment cfg every point starts from")
    parser.add_argument("--grid", action="append", required=True,
                        metavar="SECTION.KEY=V1:V2:...", help="a grid axis (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the sweep")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="fixed override for every point")
    args = parser.parse_args(argv)
    def sweep() -> None:
        for row in run_sweep(args.cfg, parse_grid(args.grid), args.out, args.overrides):
            print(row)
    return run_reporting_errors("sweep", sweep)


if __name__ == "__main__":
    sys.exit(main())
