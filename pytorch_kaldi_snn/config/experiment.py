"""The one place that reads a whole experiment cfg (PyTorch-Kaldi format) into frozen dataclasses.

A cfg has the sections ``[exp] [datasetN] [data_use] [batches] [architectureN] [model] [forward]
[decoding]``. The datasets are read by :mod:`.datasets`, the ``[model]`` language by
:mod:`.model_language`, each architecture's options by its adapter in :mod:`.architectures`;
this module reads the other sections, runs the cross-section checks and builds the
:class:`Experiment`.

Everything is checked here before any work starts, and every problem is a
:class:`~pytorch_kaldi_snn.errors.ConfigError` naming the file, section and key. Relative paths
are relative to the current directory, as in PyTorch-Kaldi; ``$VAR`` in any value is expanded
from the environment (``${KALDI_ROOT}/egs/timit/s5/...``; config/resolved.py says how). Paths
are checked after :func:`prepare_missing_data` had a chance to run ``[exp] prepare`` (the
built-in corpus recipe).
"""
from __future__ import annotations

import configparser
import dataclasses
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

from pytorch_kaldi_snn.config import checks
from pytorch_kaldi_snn.config.architectures import (
    ARCHITECTURES, N_OUT_PREFIX, ArchSpec, check_arch_class,
)
from pytorch_kaldi_snn.config.datasets import (
    DatasetSpec, DataUse, check_dataset_names, parse_data_use, parse_dataset,
)
from pytorch_kaldi_snn.config.options import Section, get_bool, get_float, get_int, get_str
from pytorch_kaldi_snn.config.latgen_opts import DecodeOptions
from pytorch_kaldi_snn.config.model_language import (
    FEATURE_OR_VALUE, LABEL, ModelSpec, check_model, parse_model,
)
from pytorch_kaldi_snn.config.optimizers import optimizer_kwargs
from pytorch_kaldi_snn.config.reading import read_cfg
from pytorch_kaldi_snn.config.registry import (
    OPTIMIZER_KEYS, PRECISIONS, SCHEDULES, SECTION_KEYS, architecture_extra_keys, check_keys,
    is_upstream_only,
)
from pytorch_kaldi_snn.config.resolved import Recorder, expand_cfg_vars
from pytorch_kaldi_snn.config.scoring_opts import ScoringOptions, parse_scoring_opts
from pytorch_kaldi_snn.errors import ConfigError

SECTIONS = ("exp", "data_use", "batches", "model", "forward", "decoding")
ON_NONFINITE = ("stop", "skip")  # [exp] on_nonfinite: what a NaN/Inf batch does (train/guards.py)


@dataclass(frozen=True)
class ExpSettings:
    out_folder: Path
    seed: int
    use_cuda: bool
    n_epochs_tr: int
    prepare: Optional[str]  # shell command that creates missing data (built-in corpus recipe)
    on_nonfinite: str  # "stop" the run or "skip" the batch when training meets NaN/Inf
    checkpoint_every_batches: int  # mid-epoch checkpoint after every N-th batch (0: off)
    checkpoint_every_minutes: float  # mid-epoch checkpoint after M minutes (0: off)
    multi_gpu: bool  # data-parallel over the processes torchrun starts (train/distributed.py)
    sync_batchnorm: bool  # batch-norm statistics over all processes' frames (multi_gpu only)
    data_workers: int  # background processes reading chunks (0: read in the training process)
    precision: str  # "float32" or "bf16": autocast for projections and readout (train/precision.py)


@dataclass(frozen=True)
class Batches:
    batch_size_train: int
    max_seq_length_train: int
    increase_seq_length_train: bool
    start_seq_len_train: int
    multply_factor_seq_len_train: int
    batch_size_valid: int
    max_seq_length_valid: int

    def train_seq_len(self, epoch: int) -> int:
        """Sequence-length curriculum: start, times the factor each epoch, capped at the maximum."""
        if not self.increase_seq_length_train:
            return self.max_seq_length_train
        grown = self.start_seq_len_train * self.multply_factor_seq_len_train ** epoch
        return min(grown, self.max_seq_length_train)


@dataclass(frozen=True)
class Architecture:
    """One ``[architectureN]``: class, optimiser and schedule; ``spec`` goes to the class."""

    name: str
    section: str
    arch_class: str
    seq_model: bool
    lr: float  # the first epoch's rate
    lr_per_epoch: Tuple[float, ...]  # upstream's "0.08*10|0.04*5" (no halving), or ()
    halving_factor: float
    improvement_threshold: float
    patience: int  # 0 for arch_lr_schedule = upstream, which has none
    min_lr: float
    lr_schedule: str  # a name of train/scheduler.py's SCHEDULES
    opt: str
    opt_kwargs: Mapping[str, object]  # the torch.optim arguments besides lr (train/optimizers.py)
    freeze: bool
    pretrain_file: Optional[Path]
    spec: ArchSpec  # the class's options, typed (config/architectures.py)


@dataclass(frozen=True)
class ForwardSettings:
    forward_out: str
    normalize_posteriors: bool
    normalize_with_counts_from: str
    require_decoding: bool


@dataclass(frozen=True)
class DecodingSettings:
    """latgen-faster-mapped options and how the hypotheses are scored."""

    beam: float
    latbeam: float
    acwt: float
    max_active: int
    min_active: int
    max_mem: int
    scoring_fold: Optional[int]  # TIMIT phone set folded to 39 for scoring (61, 48) or None
    scoring_fold_given: bool  # False: the cfg has no scoring_fold (refused for TIMIT phones)
    scoring_mode: str  # "sclite" (NIST split, PyTorch-Kaldi's TIMIT scoring) or "kaldi"
    skip_scoring: bool
    scoring: ScoringOptions
    save_lattices: bool = True  # False: 1-best only (no lat.*.gz, no LM-weight sweep)
    nj: int = 1  # parallel decoding jobs (forward ark split in nj parts, lat.J.gz each)


@dataclass(frozen=True)
class Experiment:
    cfg_path: Path
    cfg_text: str  # the resolved cfg (config/resolved.py): overrides, defaults, $VARs applied
    exp: ExpSettings
    datasets: Mapping[str, DatasetSpec]
    data_use: DataUse
    batches: Batches
    architectures: Mapping[str, Architecture]
    model: ModelSpec
    forward: ForwardSettings
    decoding: DecodingSettings

    @property
    def train_set(self) -> DatasetSpec:
        return self.datasets[self.data_use.train_with]

    @property
    def test_set(self) -> DatasetSpec:
        return self.datasets[self.data_use.forward_with]

    def labels_used(self) -> List[str]:
        """Label sets the model language reads (cost_nll/cost_err second arguments)."""
        return sorted(set(self.model.arguments(LABEL)))

    def features_used(self) -> List[str]:
        """Feature streams the model language reads (compute inputs, concatenate arguments)."""
        names = {f.name for f in self.train_set.features}
        return sorted(set(self.model.arguments(FEATURE_OR_VALUE)) & names)


# ---------------------------------------------------------------------------------------------
# Sections


def _section(parser: configparser.ConfigParser, name: str, rec: Recorder) -> Section:
    return Section(name, dict(parser[name].items()), rec.section_defaults(name))


def _numbered(parser: configparser.ConfigParser, prefix: str, rec: Recorder) -> List[Section]:
    names = [s for s in parser.sections() if re.fullmatch(prefix + r"\d+", s)]
    if not names:
        raise ConfigError(f"no [{prefix}N] section", section=f"{prefix}1")
    names.sort(key=lambda s: int(s[len(prefix):]))
    return [Section(n, dict(parser[n].items()), rec.section_defaults(n)) for n in names]


def _out_folder(sec: Section) -> Path:
    value = get_str(sec, "out_folder")
    if not value.strip():
        raise ConfigError("is empty: name a folder for the experiment's outputs (e.g. "
                          "exp/my_run)", section=sec.name, key="out_folder")
    return Path(value)


def _parse_exp(sec: Section) -> ExpSettings:
    return ExpSettings(
        out_folder=_out_folder(sec),
        seed=get_int(sec, "seed", min=0),
        use_cuda=get_bool(sec, "use_cuda", default=False),
        n_epochs_tr=get_int(sec, "n_epochs_tr", min=1),
        prepare=get_str(sec, "prepare", default=None),
        on_nonfinite=get_str(sec, "on_nonfinite", choices=ON_NONFINITE, default="stop"),
        checkpoint_every_batches=get_int(sec, "checkpoint_every_batches", min=0, default=0),
        checkpoint_every_minutes=get_float(sec, "checkpoint_every_minutes", min=0.0, default=0.0),
        multi_gpu=get_bool(sec, "multi_gpu", default=False),
        sync_batchnorm=get_bool(sec, "sync_batchnorm", default=True),
        data_workers=get_int(sec, "data_workers", min=0, default=0),
        precision=get_str(sec, "precision", choices=PRECISIONS, default="float32"),
    )


def _parse_batches(sec: Section) -> Batches:
    for key in ("batch_size_train", "max_seq_length_train"):
        if "|" in sec.get(key, ""):
            raise ConfigError(f"{key} = {sec[key]}: per-epoch values (upstream's value*count|...) "
                              f"are not supported for {key}; give one value", section=sec.name,
                              key=key)
    return Batches(
        batch_size_train=get_int(sec, "batch_size_train", min=1),
        max_seq_length_train=get_int(sec, "max_seq_length_train", min=1),
        increase_seq_length_train=get_bool(sec, "increase_seq_length_train", default=False),
        start_seq_len_train=get_int(sec, "start_seq_len_train", min=1, default=100),
        multply_factor_seq_len_train=get_int(sec, "multply_factor_seq_len_train", min=1,
                                             default=2),
        batch_size_valid=get_int(sec, "batch_size_valid", min=1),
        max_seq_length_valid=get_int(sec, "max_seq_length_valid", min=1),
    )


def _lr_per_epoch(sec: Section, n_epochs: int) -> Tuple[float, ...]:
    """Upstream's per-epoch ``arch_lr`` (``value*count|value...``, one rate per epoch)."""
    text = get_str(sec, "arch_lr")
    if "|" not in text:
        return ()
    rates: List[float] = []
    for item in text.split("|"):
        value, _, count = item.partition("*")
        try:
            rates += [float(value)] * (int(count) if count else 1)
        except ValueError:
            raise ConfigError(f"arch_lr = {text}: {item!r} is not value or value*count",
                              section=sec.name, key="arch_lr") from None
    if len(rates) != n_epochs:
        raise ConfigError(f"arch_lr = {text} gives {len(rates)} rates for n_epochs_tr = "
                          f"{n_epochs} epochs", section=sec.name, key="arch_lr")
    return tuple(rates)


def _parse_architecture(sec: Section, n_epochs: int) -> Architecture:
    opt = get_str(sec, "arch_opt", choices=tuple(OPTIMIZER_KEYS))
    arch_class = get_str(sec, "arch_class")
    check_arch_class(arch_class, sec.name)
    extra, elsewhere = architecture_extra_keys(arch_class, opt)
    check_keys(sec.name, sec, SECTION_KEYS["architecture"], extra, elsewhere)
    pretrain = get_str(sec, "arch_pretrain_file", default="none")
    lr_list = _lr_per_epoch(sec, n_epochs)
    schedule = get_str(sec, "arch_lr_schedule", choices=SCHEDULES, default=SCHEDULES[0])
    if schedule == "upstream" and "arch_patience" in sec:
        raise ConfigError("arch_patience is not used by arch_lr_schedule = upstream (it halves "
                          "on every slow epoch); set arch_lr_schedule = fork or consecutive",
                          section=sec.name, key="arch_patience")
    return Architecture(
        name=get_str(sec, "arch_name"),
        section=sec.name,
        arch_class=arch_class,
        seq_model=get_bool(sec, "arch_seq_model"),
        lr=lr_list[0] if lr_list else get_float(sec, "arch_lr", min=0.0),
        lr_per_epoch=lr_list,
        halving_factor=get_float(sec, "arch_halving_factor", min=0.0, max=1.0, default=0.5),
        improvement_threshold=get_float(sec, "arch_improvement_threshold", min=0.0,
                                        default=0.001),
        patience=0 if schedule == "upstream" else get_int(sec, "arch_patience", min=1,
                                                          default=1),
        min_lr=get_float(sec, "arch_min_lr", min=0.0, default=0.0),
        lr_schedule=schedule,
        opt=opt,
        opt_kwargs=optimizer_kwargs(sec, opt),
        freeze=get_bool(sec, "arch_freeze", default=False),
        pretrain_file=None if pretrain.lower() == "none" else Path(pretrain),
        spec=ARCHITECTURES[arch_class](sec),
    )


def saved_architectures(cfg_text: str) -> Dict[str, Architecture]:
    """The ``[architectureN]`` sections of a checkpoint's ``cfg_text`` (its resolved cfg), by
    ``arch_name``."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(cfg_text)
    rec = Recorder()
    n_epochs = _parse_exp(_section(parser, "exp", rec)).n_epochs_tr
    archs = [_parse_architecture(sec, n_epochs) for sec in _numbered(parser, "architecture", rec)]
    return {arch.name: arch for arch in archs}


def _parse_forward(sec: Section) -> ForwardSettings:
    return ForwardSettings(
        forward_out=get_str(sec, "forward_out"),
        normalize_posteriors=get_bool(sec, "normalize_posteriors", default=True),
        normalize_with_counts_from=get_str(sec, "normalize_with_counts_from"),
        require_decoding=get_bool(sec, "require_decoding", default=True),
    )


def _scoring_options(sec: Section) -> ScoringOptions:
    if "scoring_opts" in sec:
        return parse_scoring_opts(sec["scoring_opts"], sec.name)
    sec.record_default("scoring_opts", ScoringOptions().as_opts())
    return ScoringOptions()


def _parse_decoding(sec: Section) -> DecodingSettings:
    fold = get_str(sec, "scoring_fold", choices=("none", "61-39", "48-39"), default="none")
    settings = DecodingSettings(
        beam=get_float(sec, "beam", min=0.001, default=DecodeOptions.beam),
        latbeam=get_float(sec, "latbeam", min=0.001, default=DecodeOptions.lattice_beam),
        acwt=get_float(sec, "acwt", min=0.001, default=DecodeOptions.acoustic_scale),
        max_active=get_int(sec, "max_active", min=1, default=DecodeOptions.max_active),
        min_active=get_int(sec, "min_active", min=1, default=DecodeOptions.min_active),
        max_mem=get_int(sec, "max_mem", min=1, default=DecodeOptions.max_mem),
        scoring_fold=None if fold == "none" else int(fold.split("-")[0]),
        scoring_fold_given="scoring_fold" in sec,
        scoring_mode=get_str(sec, "scoring_mode", choices=("sclite", "kaldi"), default="sclite"),
        skip_scoring=get_bool(sec, "skip_scoring", default=False),
        scoring=_scoring_options(sec),
        save_lattices=get_bool(sec, "save_lattices", default=DecodingSettings.save_lattices),
        nj=get_int(sec, "nj", min=1, default=DecodingSettings.nj),
    )
    if settings.min_active > settings.max_active:
        raise ConfigError("min_active is above max_active", section=sec.name, key="min_active")
    return settings


# ---------------------------------------------------------------------------------------------
# Cross-section checks


def _check_forward(forward: ForwardSettings, defined: Set[str], labels: Sequence[str],
                   forward_sec: Section) -> None:
    if forward.forward_out not in defined:
        raise ConfigError(f"forward_out {forward.forward_out!r} is not a model output",
                          section=forward_sec.name, key="forward_out")
    if forward.normalize_with_counts_from not in labels:
        raise ConfigError(f"label set {forward.normalize_with_counts_from!r} is not defined",
                          section=forward_sec.name, key="normalize_with_counts_from")


# ---------------------------------------------------------------------------------------------
# Entry point


def load_experiment(path: Path, overrides: Sequence[str] = ()) -> Experiment:
    """Read, override and validate a cfg; paths are checked separately by :func:`check_paths`."""
    try:
        return _load(path, overrides)
    except ConfigError as err:
        raise err.with_file(str(path)) from None


def _check_section_names(parser: configparser.ConfigParser) -> None:
    """Every fixed section present and no unknown one. Checked before ``$VAR`` expansion, so
    that a misspelt section is named as such, not by an unset variable among its keys."""
    for name in SECTIONS:
        if not parser.has_section(name):
            raise ConfigError(f"missing section [{name}]", section=name)
    known = [*SECTIONS, "cfg_proto"]
    for name in parser.sections():
        if name not in known and not re.fullmatch(r"(dataset|architecture)\d+", name):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise ConfigError(f"unknown section [{name}]{hint}", section=name)


def _check_section_keys(parser: configparser.ConfigParser, sections: Mapping[str, Section]) -> None:
    """Every key of the fixed sections known and honoured."""
    for name in parser.sections():
        if name in SECTION_KEYS:
            check_keys(name, sections.get(name, parser[name]), SECTION_KEYS[name])


def _load(path: Path, overrides: Sequence[str]) -> Experiment:
    parser = read_cfg(path, overrides)
    _check_section_names(parser)
    rec = Recorder()
    rec.unexpanded = expand_cfg_vars(parser, os.environ, is_upstream_only)
    sections = {name: _section(parser, name, rec) for name in SECTIONS}
    _check_section_keys(parser, sections)
    datasets: Dict[str, DatasetSpec] = {}
    for sec in _numbered(parser, "dataset", rec):
        ds = parse_dataset(sec, rec)
        if ds.name in datasets:
            raise ConfigError(f"dataset {ds.name!r} is defined twice", section=sec.name,
                              key="data_name")
        datasets[ds.name] = ds
    settings = _parse_exp(sections["exp"])
    arch_sections = _numbered(parser, "architecture", rec)
    parsed = [_parse_architecture(sec, settings.n_epochs_tr) for sec in arch_sections]
    checks.check_unique([a.name for a in parsed], [a.section for a in parsed], "arch_name",
                        "architecture")
    architectures = {arch.name: arch for arch in parsed}
    exp = Experiment(
        cfg_path=path,
        cfg_text="",
        exp=settings,
        datasets=datasets,
        data_use=parse_data_use(sections["data_use"], datasets),
        batches=_parse_batches(sections["batches"]),
        architectures=architectures,
        model=parse_model(sections["model"]),
        forward=_parse_forward(sections["forward"]),
        decoding=_parse_decoding(sections["decoding"]),
    )
    checks.check_defined_once([op.out for op in exp.model.operations], "model")
    labels = [lab.name for lab in exp.train_set.labels]
    defined = check_model(exp.model, exp.architectures,
                          {f.name for f in exp.train_set.features}, set(labels), sections["model"])
    _check_forward(exp.forward, defined, labels, sections["forward"])
    for arch, sec in zip(parsed, arch_sections):
        checks.check_learning_rate(arch.lr, arch.section)
        checks.check_n_out_names(dict(sec), arch.section, labels, N_OUT_PREFIX)
    check_dataset_names(exp.datasets.values(), exp.features_used(), exp.labels_used())
    return dataclasses.replace(exp, cfg_text=rec.text(parser))
