"""Run or resume one experiment in its ``out_folder`` (what ``run_exp`` does, and what the study,
the sweep and the GPU check call): the folder taken and locked, a finished run read back, a
changed decoding setting re-decoded without training, the data prepared and checked, and the
other processes of a data-parallel world led."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

from pytorch_kaldi_snn.config.experiment import Experiment, load_experiment
from pytorch_kaldi_snn.config.resolved import changed_keys, same_results, training_view
from pytorch_kaldi_snn.data.loading import label_sizes
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.io.atomic import atomic_write, remove_stale_temps
from pytorch_kaldi_snn.io.lock import FolderInUse, folder_lock
from pytorch_kaldi_snn.io.ownership import NotOurFolder, check_may_take, take
from pytorch_kaldi_snn.pipeline.inputs import check_paths, prepare_missing_data
from pytorch_kaldi_snn.pipeline.logs import errors_logged, kernel_lines_to, open_log, to_log_file
from pytorch_kaldi_snn.pipeline.stages import load_sets, make_trainer, run
from pytorch_kaldi_snn.train.checkpoint import load_json
from pytorch_kaldi_snn.train.distributed import World, follower_log, start_world

RESOLVED_CFG = "resolved.cfg"
SUPERSEDED = "results.superseded.json"  # results.json of the decoding settings before a re-decode


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
    world = start_world(exp.exp, exp.cfg_path)
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
    prepare_missing_data(exp, log.info, to_log_file(log))
    check_paths(exp)
    check_same_experiment(exp, out)
    save_resolved(exp, out)
    world.broadcast(True)  # the other processes may read the data and train
    return run(exp, log, world)
