"""The paper's study in one command: Table 1 and Fig. 5 (a, b), resumable, mean ± std over seeds.

    python -m pytorch_kaldi_snn.study table1 --corpus synth-default --seeds 3 --out exp/study
    python -m pytorch_kaldi_snn.study fig5a  --corpus synth-default --seeds 1 --out exp/study
    python -m pytorch_kaldi_snn.study fig5b  --corpus synth-default --seeds 1 --out exp/study

Every run is a ``run_exp`` experiment of a ``cfg/synth_*.cfg`` moved to the corpus and set to
the paper's setup (Experimental Setup and Table 1): 2 layers of 550, 24 epochs, Adam 1e-3,
batch 64, dropout 0.1, 6-bit outputs with threshold b/16 (k = 4). ``table1`` runs the five
architectures; ``fig5a`` runs v2 with N = 1, 2, 3, 4, 6 bits at threshold b/2^N (k = 1);
``fig5b`` adds layer sizes 1x, 1.5x, 2x, 3x (the authors' cfgs) for N = 1, 3, 6. Each run lives
in ``OUT/<study>/<point>/seed<i>`` and is skipped when its ``results.json`` exists (an
interrupted one resumes from its last epoch), so rerunning the command resumes the study.
A run that fails with a one-line error (a diverged 1-bit network: ``training diverged at ...``)
does not stop the grid: its point is recorded as failed with that line in the JSON, the table
and the plot, the other points run, and the command exits with status 1; it wrote no
``results.json``, so a rerun retries it (and only the unfinished runs).
``--hidden``, ``--epochs`` and ``--set`` scale it down. A GPU is used when one is present.
``--jobs N`` trains N runs at once, the costliest first, each in its own process with
``cores / N`` threads, its console output in ``OUT/<study>/<point>/seed<i>.console.log``: one
run's recurrence is a chain of small products that a second thread speeds up little
(docs/study.md: 1.15-1.27x on 2 cores), so runs side by side finish a grid sooner (1.6-1.7x).

``--corpus``: ``synth-default`` / ``synth-timit`` (the built-in corpus, prepared in
``recipes/synth`` / ``recipes/synth_timit`` on first use) or the folder of a prepared built-in
corpus (``data/``, ``exp/`` as ``recipes/synth/run.sh`` writes them).
"""
from __future__ import annotations

if __name__ == "__main__":  # before `import torch`: the runs' processes inherit the wait policy
    from pytorch_kaldi_snn.threads import bootstrap
    bootstrap()

import sys
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors  # noqa: E402
from pytorch_kaldi_snn.config.experiment import Experiment, load_experiment  # noqa: E402
from pytorch_kaldi_snn.pipeline.inputs import prepare_missing_data  # noqa: E402
from pytorch_kaldi_snn.pipeline.logs import open_log, to_log_file  # noqa: E402
from pytorch_kaldi_snn.errors import ConfigError  # noqa: E402
from pytorch_kaldi_snn.io.atomic import atomic_write  # noqa: E402
from pytorch_kaldi_snn.io.ownership import take  # noqa: E402
from pytorch_kaldi_snn.layers.cost import layer_mults  # noqa: E402
from pytorch_kaldi_snn.report.paper_ops import KINDS  # noqa: E402
from pytorch_kaldi_snn.report.results import scored_rate  # noqa: E402
from pytorch_kaldi_snn.report.study_layout import (  # noqa: E402
    STUDIES, TABLE1, console_log, point_name, seed_folder)
from pytorch_kaldi_snn.report.study_tables import (  # noqa: E402
    fig5_markdown, plot_fig5, summarise, table1_markdown)
from pytorch_kaldi_snn.pipeline.grid import GridRun, Outcome, run_grid  # noqa: E402
from pytorch_kaldi_snn.train.checkpoint import save_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SYNTH_DIR = "recipes/synth"  # the corpus folder the shipped synth cfgs name
CORPORA = {"synth-default": ("default", "recipes/synth"),
           "synth-timit": ("timit", "recipes/synth_timit")}
ARCHS = ("lstm", "gru", "traditional", "v1", "v2")
CFG = {"lstm": "synth_LSTM", "gru": "synth_GRU", "traditional": "synth_snn", "v1": "synth_snn_v1",
       "v2": "synth_snn_v2"}
PREFIX = {"lstm": "lstm", "gru": "gru", "traditional": "snn", "v1": "snn", "v2": "snn"}
PAPER_HIDDEN, PAPER_EPOCHS = 550, 24
FIG5A_BITS = (1, 2, 3, 4, 6)
FIG5B_BITS, FIG5B_SCALES = (1, 3, 6), (1.0, 1.5, 2.0, 3.0)
FAILED_EXIT = 1  # some point failed (bad input, before any run, stays 2)


@dataclass(frozen=True)
class Point:
    """One configuration of a study: architecture, output bits, threshold k, layer size."""

    arch: str
    n_bits: int
    k: int
    hidden: int

    @property
    def name(self) -> str:
        return point_name(self.arch, self.n_bits, self.k, self.hidden)


def study_points(study: str, hidden: int) -> List[Point]:
    if study == TABLE1:
        return [Point(arch, 6, 4, hidden) for arch in ARCHS]
    if study == "fig5a":
        return [Point("v2", n, 1, hidden) for n in FIG5A_BITS]
    return [Point("v2", n, 1, max(1, round(hidden * scale)))
            for scale in FIG5B_SCALES for n in FIG5B_BITS]


def corpus_cfg(arch: str, corpus: str, cfg_dir: Path) -> Path:
    """``cfg/<arch>.cfg`` with its corpus folder replaced; written to ``cfg_dir``."""
    lines = (ROOT / "cfg" / f"{CFG[arch]}.cfg").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.startswith("prepare ="))
    if corpus in CORPORA:
        size, folder = CORPORA[corpus]
        folder_path = ROOT / folder
        text = text.replace(f"{SYNTH_DIR}/", f"{folder_path}/")
        prepare = f"prepare = {ROOT / SYNTH_DIR / 'run.sh'} --size {size} --dir {folder_path}"
        text = text.replace("[exp]", f"[exp]\n{prepare}", 1)
    else:
        folder_path = Path(corpus).resolve()
        if not (folder_path / "data").is_dir():
            raise ConfigError(f"--corpus {corpus}: neither {', '.join(CORPORA)} nor a prepared "
                              f"corpus folder (no {folder_path / 'data'})")
        text = text.replace(f"{SYNTH_DIR}/", f"{folder_path}/")
    cfg_dir.mkdir(parents=True, exist_ok=True)
    path = cfg_dir / f"{CFG[arch]}.cfg"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))
    return path


def point_overrides(point: Point, epochs: int, seed: int, out: Path) -> List[str]:
    """The paper's setup for one run (architecture1 = the recurrent stack, 2 = the readout)."""
    p = PREFIX[point.arch]
    sets = [f"exp.n_epochs_tr={epochs}", f"exp.seed={seed}", "exp.use_cuda=True",
            f"exp.out_folder={out}", "batches.batch_size_train=64",
            f"architecture1.{p}_lay={point.hidden},{point.hidden}",
            f"architecture1.{p}_drop=0.1,0.1"]
    for arch in ("architecture1", "architecture2"):
        sets += [f"{arch}.arch_opt=adam", f"{arch}.arch_lr=0.001"]
    if p == "snn":
        sets += [f"architecture1.snn_n_bits={point.n_bits}",
                 f"architecture1.snn_threshold={point.k}"]
    return sets


def training_cost(point: Point) -> float:
    """Multiplications per frame of one of the point's layers as training runs it (dense, its
    input as wide as its output). Submitting the costliest runs first keeps a cheap run from
    being the one left running alone: on 2 cores this orders Table 1 LSTM, GRU, v2, v1,
    traditional, as their epoch times do, and ends it in about 2 h 13 min instead of the 2 h 21
    min of table order (docs/study.md)."""
    return layer_mults(KINDS[point.arch], point.hidden, point.hidden)


def run_points(study: str, points: Sequence[Point], cfgs: Dict[str, Path], out: Path, seeds: int,
               epochs: int, extra: Sequence[str], jobs: int) -> List[Dict]:
    """Every seed of every point (``jobs`` at a time, the costliest first), summarised per point
    in the order given."""
    runs, names = [], []
    for point in points:
        for seed in range(seeds):
            console = None if jobs == 1 else console_log(out, study, point.name, seed)
            sets = (*point_overrides(point, epochs, 1234 + seed,
                                     seed_folder(out, study, point.name, seed)), *extra)
            runs.append(GridRun(f"study: {point.name} seed {seed}"
                                + ("" if console is None else f" (output: {console})"),
                                cfgs[point.arch], sets, console, training_cost(point)))
            names.append(f"{point.name} seed {seed}")
    outcomes = run_grid(runs, jobs, "study", keep_going=True,
                        on_done=lambda index, future: report_done(names[index], future))
    return [summarise(point, *collect(outcomes[i * seeds:(i + 1) * seeds]))
            for i, point in enumerate(points)]


def report_done(name: str, future: Future) -> None:
    """One line as a run ends (an unexpected error is raised by :func:`run_grid` instead)."""
    if future.exception() is not None:
        return
    result, reason = future.result()
    if reason is not None:
        print(f"study: {name} failed: {reason}", file=sys.stderr, flush=True)
        return
    metric, rate = scored_rate(result)
    score = "not scored" if rate is None else f"{metric} {rate:.2f}%"
    print(f"study: {name} finished: {score}, frame accuracy "
          f"{result['frame_acc']:.2f}%", flush=True)


def collect(outcomes: Sequence[Outcome]) -> Tuple[List[Dict], List[str]]:
    """The results of the seeds that finished and ``seed<i>: <one-line error>`` of the others."""
    results, failures = [], []
    for seed, (result, reason) in enumerate(outcomes):
        if reason is None:
            results.append(result)
        else:
            failures.append(f"seed{seed}: {reason}")
    return results, failures


def prepare_corpus(exp: Experiment, out: Path) -> None:
    """Run ``[exp] prepare`` (the corpus recipe) if the data are missing, logged as a run logs
    it: its lines on the console and in ``OUT/log.log`` with a timestamp, the informational
    chatter of Kaldi's C++ code (kaldilm's ``[I] ...`` lines) in ``OUT/log.log`` only."""
    log = open_log(out)
    try:
        prepare_missing_data(exp, log.info, to_log_file(log))
    finally:
        for handler in log.handlers:
            handler.close()


def run_study(study: str, corpus: str, out: Path, seeds: int, hidden: int, epochs: int,
              extra: Sequence[str], jobs: int = 1) -> List[Dict]:
    points = study_points(study, hidden)
    take(out, "a study of pytorch_kaldi_snn.study", legacy=tuple(f"{s}.json" for s in STUDIES))
    cfgs = {arch: corpus_cfg(arch, corpus, out / "cfg") for arch in {p.arch for p in points}}
    checked = [load_experiment(cfgs[point.arch], [*point_overrides(point, epochs, 0,
                                                                   out / "check"), *extra])
               for point in points]  # fail on a bad override before the first run
    prepare_corpus(checked[0], out)  # once, before runs that would race to do it
    rows = run_points(study, points, cfgs, out, seeds, epochs, extra, jobs)
    save_json(out / f"{study}.json", rows)
    text = table1_markdown(rows) if study == TABLE1 else fig5_markdown(rows)
    atomic_write(out / f"{study}.md", lambda tmp: Path(tmp).write_text(text))
    print(text, end="")
    if study != TABLE1:
        plot_fig5(rows, out / f"{study}.png")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = command_parser("pytorch_kaldi_snn.study", "Table 1 / Fig. 5 of the paper (resumable).")
    parser.add_argument("study", choices=STUDIES,
                        help="table1: the five architectures; fig5a: v2 over output bits; "
                             "fig5b: v2 over layer sizes")
    parser.add_argument("--corpus", default="synth-default",
                        help="synth-default, synth-timit or a prepared corpus folder")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per point (mean ± std)")
    parser.add_argument("--out", type=Path, default=Path("exp/study"), help="study folder (a run per point)")
    parser.add_argument("--hidden", type=int, default=PAPER_HIDDEN, help="units per layer")
    parser.add_argument("--epochs", type=int, default=PAPER_EPOCHS, help="training epochs per run")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, each in its own process")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="extra override for every run")
    args = parser.parse_args(argv)
    if min(args.seeds, args.hidden, args.epochs, args.jobs) < 1:
        parser.error("--seeds, --hidden, --epochs and --jobs must be positive")
    rows: List[Dict] = []
    status = run_reporting_errors("error", lambda: rows.extend(run_study(
        args.study, args.corpus, args.out, args.seeds, args.hidden, args.epochs, args.overrides,
        args.jobs)))
    failed = [row["point"] for row in rows if row["failed"]]
    if status == 0 and failed:
        print(f"error: {len(failed)} of {len(rows)} points failed ({', '.join(failed)}); "
              "rerun the command to retry them", file=sys.stderr)
        return FAILED_EXIT
    return status


if __name__ == "__main__":
    sys.exit(main())
