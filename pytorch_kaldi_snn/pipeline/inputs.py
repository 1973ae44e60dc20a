"""An experiment's input files: prepared by ``[exp] prepare`` when missing, then checked."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

from pytorch_kaldi_snn.config.experiment import Experiment
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.io.chatter import relay_command
from pytorch_kaldi_snn.scoring import timit_fold_map
from pytorch_kaldi_snn.scoring.decoded import graph_words


def check_paths(exp: Experiment) -> None:
    """Every input file named in the cfg exists (run after the built-in corpus is prepared)."""
    for path, section, key in _input_paths(exp):
        if not path.exists():
            raise ConfigError(f"{path} does not exist", file=str(exp.cfg_path), section=section,
                              key=key)
    for arch in exp.architectures.values():
        if arch.pretrain_file is not None and not arch.pretrain_file.is_file():
            raise ConfigError(f"{arch.pretrain_file} does not exist", file=str(exp.cfg_path),
                              section=arch.section, key="arch_pretrain_file")
    _check_timit_fold(exp)


def _check_timit_fold(exp: Experiment) -> None:
    """A TIMIT phone graph needs an explicit scoring_fold: Kaldi's TIMIT score.sh folds to 39
    phones, and scoring the 48 unfolded would silently give a different PER."""
    if exp.decoding.scoring_fold_given or not exp.forward.require_decoding:
        return
    graph = exp.test_set.label_set(exp.forward.normalize_with_counts_from).graph
    if not (graph / "words.txt").is_file():
        return
    if len(graph_words(graph) & set(timit_fold_map(48))) >= 39:
        raise ConfigError("the test graph's words are TIMIT phones: say scoring_fold = 48-39 "
                          "(Kaldi's TIMIT scoring, 39 phones) or none (48 phones)",
                          file=str(exp.cfg_path), section="decoding", key="scoring_fold")


def _input_paths(exp: Experiment) -> Iterator[Tuple[Path, str, str]]:
    used = {exp.data_use.train_with, exp.data_use.valid_with, exp.data_use.forward_with}
    for ds in (exp.datasets[name] for name in sorted(used)):
        for fea in ds.features:
            yield fea.scp, ds.section, "fea_lst"
        for lab in ds.labels:
            yield lab.folder, ds.section, "lab_folder"
            yield lab.data_folder, ds.section, "lab_data_folder"
            if ds.name == exp.data_use.forward_with:
                yield lab.graph, ds.section, "lab_graph"
            if lab.count_file not in ("auto", "none"):
                yield Path(lab.count_file), ds.section, "lab_count_file"


def prepare_missing_data(exp: Experiment, log: Callable[[str], None],
                         chatter: Optional[Callable[[str], None]] = None) -> None:
    """Run ``[exp] prepare`` (the built-in corpus recipe) when some input path is missing. Its
    lines go to ``log`` (with the caller's timestamp in place of the recipe's), Kaldi's
    informational C++ output to ``chatter`` (default: ``log`` too)."""
    missing = [p for p, _, _ in _input_paths(exp) if not p.exists()]
    if not missing or exp.exp.prepare is None:
        return
    log(f"{missing[0]} is missing: preparing the data with `{exp.exp.prepare}` (a few minutes)")
    code = relay_command(exp.exp.prepare, log, chatter or log)
    if code != 0:
        raise ConfigError(f"the prepare command failed with exit code {code}",
                          file=str(exp.cfg_path), section="exp", key="prepare")
