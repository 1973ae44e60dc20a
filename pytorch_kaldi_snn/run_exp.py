"""``run_exp.sh CFG [--set section.key=value ...]``: train, forward, decode, score, report.

Stages, each resumable (rerun the same command after an interruption):

1. validate the cfg (prepare the built-in corpus first if ``[exp] prepare`` says how);
2. train with validation each epoch, an atomic checkpoint per epoch (and, with ``[exp]
   checkpoint_every_batches`` / ``checkpoint_every_minutes``, inside epochs);
3. forward the test set (log-posteriors minus log-priors into ``forward_test.ark``);
4. decode and score (Kaldi's ``latgen-faster-mapped`` when present, else the built-in decoder);
5. write ``results.json``, ``results.md`` and the plots.

Bad input (cfg or data) prints one line naming the file, section and key (or utterance) and
exits with code 2.

``torchrun --standalone --nproc_per_node=N -m pytorch_kaldi_snn.run_exp CFG`` with ``[exp]
multi_gpu = True`` trains data-parallel (:mod:`pytorch_kaldi_snn.train.distributed`): rank 0
runs every stage above and alone writes; the other ranks wait for it, train and evaluate their
shares, and stop after training.
"""
from __future__ import annotations

if __name__ == "__main__":  # before `import torch` loads OpenMP, which reads its wait policy once
    from pytorch_kaldi_snn.threads import bootstrap
    bootstrap()

import argparse
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import torch

from pytorch_kaldi_snn.config.experiment import Experiment, load_experiment
from pytorch_kaldi_snn.pipeline.inputs import check_paths, prepare_missing_data
from pytorch_kaldi_snn.config.resolved import changed_keys, same_results, training_view
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.data.loading import label_sizes
from pytorch_kaldi_snn.data.streamed import DataSource, open_source
from pytorch_kaldi_snn.cli import command_parser, one_line, run_interruptible
from pytorch_kaldi_snn.errors import ConfigError, UserInputError
from pytorch_kaldi_snn.forward import ForwardResult, forward_test
from pytorch_kaldi_snn.forward.decode import decode_test
from pytorch_kaldi_snn.forward.posteriors import prior_offsets
from pytorch_kaldi_snn.io.atomic import remove_stale_temps
from pytorch_kaldi_snn.io.chatter import captured_stderr
from pytorch_kaldi_snn.io.lock import FolderInUse, folder_lock
from pytorch_kaldi_snn.io.ownership import NotOurFolder, check_may_take, take
from pytorch_kaldi_snn.kernels import backend
from pytorch_kaldi_snn.kernels.fused import triton_check
from pytorch_kaldi_snn.layers.spiking import SpikingLayer
from pytorch_kaldi_snn.threads import apply_threads
from pytorch_kaldi_snn.report import (
    plot_layer_sparsity, plot_learning_curves, results_dict, write_results,
)
from pytorch_kaldi_snn.report.energy_model import from_model as energy_estimate
from pytorch_kaldi_snn.scoring.decoded import NOT_DECODED, DecodeResult
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel, check_readout_sizes
from pytorch_kaldi_snn.train.checkpoint import load_json, save_json
from pytorch_kaldi_snn.train.distributed import World, follower_log, start_world
from pytorch_kaldi_snn.train.loop import Trainer
from pytorch_kaldi_snn.train.precision import check_precision
from pytorch_kaldi_snn.train.pretrain import apply_pretrain_and_freeze

RESOLVED_CFG = "resolved.cfg"
SUPERSEDED = "results.superseded.json"  # results.json of the decoding settings before a re-decode
DECODE_JSON = "decode.json"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = command_parser("pytorch_kaldi_snn.run_exp",
                            "Train, forward, decode and score one cfg experiment (./run_exp.sh "
                            "runs this same command).")
    parser.add_argument("cfg", type=Path, help="experiment cfg (PyTorch-Kaldi format)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a cfg option (repeatable)")
    return parser.parse_args(argv)


def open_log(out: Path) -> logging.Logger:
    """Log to ``out/log.log`` and to stdout, one timestamped line per event."""
    out.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"pytorch_kaldi_snn.run_exp.{out.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in (logging.FileHandler(out / "log.log"), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log


def check_same_experiment(exp: Experiment, out: Path) -> bool:
    """Refuse an out_folder trained with other training-relevant settings. Returns whether the
    saved resolved cfg is the current one in every key that can change a result (all but the
    checkpoint interval)."""
    saved = out / RESOLVED_CFG
    old = saved.read_text() if saved.exists() else None
    if old is not None and training_view(old) != training_view(exp.cfg_text):
        changed = ", ".join(changed_keys(old, exp.cfg_text)) or "its training settings"
        raise ConfigError(f"{out} holds a run of a different cfg ({changed} differ); remove it "
                          f"or change out_folder (see {saved})", file=str(exp.cfg_path),
                          section="exp", key="out_folder")
    return same_results(old, exp.cfg_text)


def save_resolved(exp: Experiment, out: Path) -> None:
    atomic_write(out / RESOLVED_CFG, lambda tmp: tmp.write_text(exp.cfg_text))


def pick_device(exp: Experiment, log: logging.Logger) -> torch.device:
    if exp.exp.use_cuda and torch.cuda.is_available():
        log.info(f"device: cuda ({torch.cuda.get_device_name()})")
        return torch.device("cuda")
    reason = "use_cuda = False" if not exp.exp.use_cuda else "no CUDA device available"
    log.info(f"device: cpu ({reason}, {torch.get_num_threads()} threads)")
    return torch.device("cpu")


def to_log_file(log: logging.Logger, prefix: str = "kaldi: ") -> Callable[[str], None]:
    """Write a line to the log file only (not stdout): for the chatter of Kaldi's readers, and
    for the error line the terminal already gets on stderr."""
    files = [h for h in log.handlers if isinstance(h, logging.FileHandler)]

    def write(line: str) -> None:
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, f"{prefix}{line}", None, None)
        for handler in files:
            handler.handle(record)
    return write


@contextmanager
def kernel_lines_to(log: logging.Logger) -> Iterator[None]:
    """Put the kernel choice and its fallbacks (logger ``pytorch_kaldi_snn.kernels``, INFO and
    above) in this run's log.log and on its console."""
    kernels = logging.getLogger(backend.__name__.rpartition(".")[0])
    level = kernels.level
    kernels.setLevel(logging.INFO)
    for handler in log.handlers:
        kernels.addHandler(handler)
    try:
        yield
    finally:
        for handler in log.handlers:
            kernels.removeHandler(handler)
        kernels.setLevel(level)


def announce_kernels(model: torch.nn.Module, device: torch.device) -> None:
    """Choose (and log) the kernel of the fused spiking layers before the first batch, so that
    a Triton launch that fails on this machine is found, and replaced, before training."""
    fused = [m for m in model.modules() if isinstance(m, SpikingLayer) and m.impl == "fused"]
    if fused:
        backend.announce(device, fused[0].alpha.dtype, triton_check)


@contextmanager
def errors_logged(log: logging.Logger) -> Iterator[None]:
    """Put the one line of a run that fails on bad input or a failed write in log.log too."""
    try:
        yield
    except (UserInputError, OSError) as err:
        to_log_file(log, "error: ")(one_line(err))
        raise


def load_sets(exp: Experiment, log: logging.Logger,
              with_test: bool = True) -> List[DataSource]:
    """Train, dev and (unless ``with_test`` is False) test sets with the features and labels the
    model reads, streamed (labels read now, features chunk by chunk as they are used; Kaldi's
    chatter goes to the log)."""
    features = exp.features_used()
    labels = sorted(set(exp.labels_used()) | {exp.forward.normalize_with_counts_from})
    use = exp.data_use
    names = (use.train_with, use.valid_with) + ((use.forward_with,) if with_test else ())
    chatter = to_log_file(log)
    with captured_stderr(chatter):
        return [open_source(exp.datasets[name], features, labels, log, chatter)
                for name in names]


def main_arch(exp: Experiment) -> str:
    """The class of the first architecture the model computes (the recurrent stack)."""
    first = next(op for op in exp.model.operations if op.op == "compute")
    return exp.architectures[first.args[0]].arch_class


def decode_stage(exp: Experiment, forwarded: ForwardResult, log: logging.Logger) -> DecodeResult:
    """Decode and score; ``decode.json`` keeps the result for reruns of the same resolved cfg
    (a changed ``[decoding]`` or ``[forward]`` key re-decodes)."""
    out = exp.exp.out_folder
    saved = load_json(out / DECODE_JSON)
    if saved is not None and same_results(saved.get("cfg"), exp.cfg_text):
        return DecodeResult.from_json(saved)
    if not exp.forward.require_decoding:
        log.info("decoding: skipped (require_decoding = False)")
        return NOT_DECODED
    decoded = decode_test(exp, forwarded.ark, out, log)
    save_json(out / DECODE_JSON, {**decoded.to_json(), "cfg": exp.cfg_text})
    return decoded


def make_trainer(exp: Experiment, train: DataSource, n_out: Dict[str, int],
                 log: logging.Logger, world: World) -> Trainer:
    """The model (seeded, pretrained and frozen as the cfg says) on its device, with its
    optimisers: the same in every process of a world."""
    log.info(f"threads: {apply_threads()}")
    device = world.device or pick_device(exp, log)
    check_precision(exp.exp.precision, device, str(exp.cfg_path))
    torch.manual_seed(exp.exp.seed)
    model = AcousticModel(exp, n_out, train.feature_dims())
    try:
        apply_pretrain_and_freeze(model.nets, exp.architectures, log)
    except ConfigError as err:
        raise err.with_file(str(exp.cfg_path)) from None
    model = model.to(device)
    check_readout_sizes(exp, model, n_out)
    announce_kernels(model, device)
    world.prepare_model(model, log)
    return Trainer(exp, model, device, exp.exp.out_folder, log, world)


def run(exp: Experiment, log: logging.Logger, world: World = World()) -> dict:
    out = exp.exp.out_folder
    start = time.monotonic()
    n_out = label_sizes(exp.train_set)
    train, dev, test = load_sets(exp, log)
    trainer = make_trainer(exp, train, n_out, log, world)
    model, device = trainer.model, trainer.device
    history = trainer.fit(train, dev)

    offsets = prior_offsets(exp, train, n_out[exp.forward.normalize_with_counts_from])
    forwarded = forward_test(exp, model, test, offsets, device, out)
    log.info(f"forward: {forwarded.ark} (test frame accuracy "
             f"{100 * (1 - forwarded.frame_err):.2f}%, zero outputs "
             f"{forwarded.report.zero_output_pct:.2f}%)")
    decoded = decode_stage(exp, forwarded, log)
    results = results_dict(
        arch=main_arch(exp), frame_err=forwarded.frame_err, report=forwarded.report,
        decoded=decoded, history=history,
        wall_s=trainer.wall_s_before + time.monotonic() - start,
        extra={"cfg": str(exp.cfg_path), "test_loss": forwarded.loss,
               "params_weights": forwarded.report.params_weights,
               "energy": energy_estimate(model),  # the test set's counters, as the report
               **decoded.results_fields()})
    plot_learning_curves(history, out / "learning_curves.png")
    plot_layer_sparsity(results["zero_outputs_pct_per_layer"], out / "sparsity_per_layer.png")
    write_results(out, results)
    rate = decoded.error_rate
    score = "not scored" if rate is None else f"{decoded.metric} {rate:.2f}%"
    log.info(f"done: {score} ({results['decoder']} decoder), frame accuracy "
             f"{results['frame_acc']:.2f}%, zero outputs {results['zero_outputs_pct']:.2f}% "
             f"-> {out / 'results.json'}")
    return results


def check_out_folder(exp: Experiment) -> None:
    """Refuse an out_folder that holds files this project did not make (io/ownership.py)."""
    try:
        check_may_take(exp.exp.out_folder, legacy=(RESOLVED_CFG,))
    except NotOurFolder as refused:
        raise ConfigError(refused.message, file=str(exp.cfg_path), section="exp",
                          key="out_folder") from None


@contextmanager
def exclusive_out_folder(exp: Experiment) -> Iterator[None]:
    """Take the out_folder as the project's and hold its lock (a second run is refused,
    naming the holder)."""
    take(exp.exp.out_folder, "an experiment of run_exp", legacy=(RESOLVED_CFG,))
    try:
        with folder_lock(exp.exp.out_folder):
            yield
    except FolderInUse as busy:
        raise ConfigError(f"{busy.folder} is in use by another run ({busy.holder}); wait for it "
                          f"or change out_folder", file=str(exp.cfg_path), section="exp",
                          key="out_folder") from None


def run_experiment(cfg: Path, overrides: Sequence[str] = ()) -> Optional[dict]:
    """Validate, then run or resume; returns the results (also used by the sweep), None in a
    process other than rank 0 of a data-parallel world."""
    exp = load_experiment(cfg, overrides)
    if exp.exp.prepare is None:
        check_paths(exp)  # fail before the out_folder is created when nothing can fix it
    world = start_world(exp)
    try:
        if not world.is_writer:
            return _follow(exp, world)
        check_out_folder(exp)
        with exclusive_out_folder(exp):
            return _run_locked(exp, cfg, overrides, world)
    finally:
        world.close()


def _follow(exp: Experiment, world: World) -> None:
    """A process other than rank 0: wait until rank 0 has prepared the out_folder (and the
    data), then train and evaluate this process's shares; rank 0 writes everything."""
    log = follower_log(world.rank)
    if not world.broadcast(None):
        return None  # rank 0 found the experiment trained: it forwards and decodes alone
    check_paths(exp)
    train, dev = load_sets(exp, log, with_test=False)
    make_trainer(exp, train, label_sizes(exp.train_set), log, world).fit(train, dev)
    return None


def _run_locked(exp: Experiment, cfg: Path, overrides: Sequence[str], world: World) -> dict:
    out = exp.exp.out_folder
    done = load_json(out / "results.json")
    log = open_log(out)
    with errors_logged(log), kernel_lines_to(log):
        return _start_or_resume(exp, cfg, overrides, world, log, done)


def _start_or_resume(exp: Experiment, cfg: Path, overrides: Sequence[str], world: World,
                     log: logging.Logger, done: Optional[dict]) -> dict:
    out = exp.exp.out_folder
    for stale in remove_stale_temps(out):
        log.info(f"removed {stale}, left by an interrupted write")
    if done is not None and check_same_experiment(exp, out):
        log.info(f"{out / 'results.json'} exists: the experiment is complete")
        world.broadcast(False)  # nothing to train
        return done
    log.info(f"run_exp {cfg} {' '.join('--set ' + o for o in overrides)}".rstrip())
    if world.size > 1:
        log.info(world.describe())
    if done is not None:
        log.info("decoding or scoring settings changed: forward, decode and score again "
                 f"with the trained model (the old results move to {SUPERSEDED})")
        # first, so that an interrupted re-decode is redone; kept, so that nothing is lost
        os.replace(out / "results.json", out / SUPERSEDED)
    prepare_missing_data(exp, log.info)
    check_paths(exp)
    check_same_experiment(exp, out)
    save_resolved(exp, out)
    world.broadcast(True)  # the other processes may read the data and train
    return run(exp, log, world)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    return run_interruptible("error", lambda: run_experiment(args.cfg, args.overrides))


if __name__ == "__main__":
    sys.exit(main())
