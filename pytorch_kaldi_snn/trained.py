"""A finished experiment folder as evaluation and transcription reuse it, without retraining.

``./run_exp.sh`` leaves in its ``out_folder`` the cfg after overrides (``resolved.cfg``), the
last checkpoint (``checkpoint.pt``) and ``results.json`` (present only when the run finished).
From them this module rebuilds the trained model, the priors it was decoded with (recomputed
from the training alignments exactly as the run did) and the test set's feature and label
specification moved to another data dir. Relative paths in ``resolved.cfg`` are relative to
the directory the experiment was run from, as in PyTorch-Kaldi.
"""
from __future__ import annotations

import dataclasses
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pytorch_kaldi_snn.config.datasets import DatasetSpec, FeatureSpec
from pytorch_kaldi_snn.config.experiment import Experiment, load_experiment
from pytorch_kaldi_snn.data.loading import label_sizes
from pytorch_kaldi_snn.data.streamed import open_source
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.forward.posteriors import prior_offsets
from pytorch_kaldi_snn.pipeline.runner import RESOLVED_CFG
from pytorch_kaldi_snn.pipeline.stages import pick_device
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel
from pytorch_kaldi_snn.train.checkpoint import load_torch
from pytorch_kaldi_snn.train.loop import CHECKPOINT


@dataclass(frozen=True)
class TrainedExperiment:
    folder: Path
    exp: Experiment
    model: AcousticModel
    offsets: np.ndarray  # log-priors subtracted from the log-posteriors (zeros without them)
    device: torch.device

    @property
    def test_set(self) -> DatasetSpec:
        return self.exp.test_set


def check_finished(folder: Path) -> None:
    """DataError unless ``folder`` holds a finished experiment (results, cfg, checkpoint)."""
    for name in ("results.json", RESOLVED_CFG, CHECKPOINT):
        if not (folder / name).is_file():
            raise DataError("missing: not a finished experiment folder (run ./run_exp.sh first)",
                            file=str(folder / name))


def load_trained(folder: Path, log: logging.Logger) -> TrainedExperiment:
    """The model and priors of the finished experiment in ``folder``."""
    folder = Path(folder)
    check_finished(folder)
    exp = load_experiment(folder / RESOLVED_CFG)
    counts_from = exp.forward.normalize_with_counts_from
    n_out = label_sizes(exp.train_set)
    train = open_source(exp.train_set, exp.features_used(), [counts_from], log)
    device = pick_device(exp, log)
    model = AcousticModel(exp, n_out, train.feature_dims())
    model.load_state_dict(load_torch(folder / CHECKPOINT)["model"])
    offsets = prior_offsets(exp, train, n_out[counts_from])
    return TrainedExperiment(folder, exp, model.to(device).eval(), offsets, device)


def moved_feature(spec: FeatureSpec, data_dir: Path) -> FeatureSpec:
    """The feature stream read from ``data_dir``: its feats.scp, and every path of the test
    set's data folder in ``fea_opts`` (utt2spk, cmvn_speaker.ark) pointing into ``data_dir``.

    ``fea_opts`` is a shell pipe, so ``data_dir`` goes in shell-quoted (``ark:'/my data'/utt2spk``
    is one word to the shell and to the built-in parser alike): a folder name never runs as a
    command. The cfg's own folder must appear there unquoted, as PyTorch-Kaldi's cfgs write it."""
    old = str(spec.scp.parent)
    return dataclasses.replace(spec, scp=Path(data_dir) / "feats.scp",
                               opts=spec.opts.replace(old, shlex.quote(str(data_dir))))


def dataset_at(trained: TrainedExperiment, data_dir: Path, ali_dir: Path, name: str) -> DatasetSpec:
    """The cfg's test set specification with its data in ``data_dir`` and alignments in
    ``ali_dir``; the graph and count files stay the experiment's."""
    test = trained.test_set
    train_mdl = next(lab.folder for lab in trained.exp.train_set.labels) / "final.mdl"
    given = Path(ali_dir) / "final.mdl"
    if not given.is_file():
        raise DataError("missing (not an alignment dir?)", file=str(given))
    if given.read_bytes() != train_mdl.read_bytes():
        raise DataError(f"aligned with another model than the experiment's {train_mdl}",
                        file=str(given))
    labels = tuple(dataclasses.replace(lab, folder=Path(ali_dir), data_folder=Path(data_dir))
                   for lab in test.labels)
    features = tuple(moved_feature(f, Path(data_dir)) for f in test.features)
    return dataclasses.replace(test, name=name, features=features, labels=labels)
