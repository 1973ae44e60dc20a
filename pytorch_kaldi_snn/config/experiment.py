"""The one place that reads a whole experiment cfg (PyTorch-Kaldi format) into frozen dataclasses.

A cfg has the sections ``[exp] [datasetN] [data_use] [batches] [architectureN] [model] [forward]
[decoding]``. ``fea``/``lab`` options of a dataset hold blocks of ``name=value`` lines, one block
per feature stream or label set, each starting with ``fea_name=`` / ``lab_name=``. ``[model]``
holds the model language, one operation per line (``out=compute(arch_name,input)``,
``loss=cost_nll(out,lab)``, ``err=cost_err(out,lab)``, ``sum(a,b)``, ``mult_constant(a,k)``,
``concatenate(a,b)``); ``loss_final`` and ``err_final`` must be defined.

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
import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from pytorch_kaldi_snn.config import checks
from pytorch_kaldi_snn.config.options import (
    get_bool, get_float, get_int, get_str,
)
from pytorch_kaldi_snn.config.localize import expand_vars
from pytorch_kaldi_snn.config.registry import (
    OPTIMIZER_KEYS, SECTION_KEYS, UPSTREAM_CLASSES, architecture_extra_keys, check_keys,
    is_upstream_only,
)
from pytorch_kaldi_snn.config.resolved import Recorder, expand_cfg_vars
from pytorch_kaldi_snn.decoding.decoder import DecodeOptions
from pytorch_kaldi_snn.io.chatter import relay_command
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.gmm.labels import LAB_OPTS
from pytorch_kaldi_snn.scoring import timit_fold_map
from pytorch_kaldi_snn.scoring.lm_sweep import ScoringOptions, parse_scoring_opts
from pytorch_kaldi_snn.train.optimizers import optimizer_kwargs
from pytorch_kaldi_snn.train.scheduler import SCHEDULES

ARCH_LIBRARY = "pytorch_kaldi_snn.neural_networks"
SECTIONS = ("exp", "data_use", "batches", "model", "forward", "decoding")
N_OUT_PREFIX = "N_out_"
ON_NONFINITE = ("stop", "skip")  # [exp] on_nonfinite: what a NaN/Inf batch does (train/guards.py)
OPERATIONS = {  # name -> number of arguments
    "compute": 2, "cost_nll": 2, "cost_err": 2, "sum": 2, "mult_constant": 2, "concatenate": 2,
}
_OPERATION_RE = re.compile(r"^(\w+)\s*=\s*(\w+)\s*\(([^()]*)\)$")


class Section(Mapping[str, str]):
    """Read-only cfg section: a name (for error messages) and string options."""

    def __init__(self, name: str, items: Mapping[str, str],
                 defaults: Optional[Dict[str, object]] = None) -> None:
        self.name = name
        self._items = dict(items)
        self.defaults = {} if defaults is None else defaults  # shared with resolved.Recorder

    def record_default(self, key: str, value: object) -> None:
        """Called by the option getters for a missing key (written into resolved.cfg)."""
        self.defaults.setdefault(key, value)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def replaced(self, values: Mapping[str, str]) -> "Section":
        """A copy with some values replaced (used to substitute ``N_out_<lab>``)."""
        return Section(self.name, {**self._items, **values}, self.defaults)


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


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    scp: Path
    opts: str  # Kaldi pipe, e.g. "apply-cmvn ... ark:- ark:- | add-deltas ... |"
    cw_left: int
    cw_right: int


@dataclass(frozen=True)
class LabelSpec:
    name: str
    folder: Path  # alignment dir: ali.*.gz and final.mdl
    opts: str  # "ali-to-pdf" or "ali-to-phones --per-frame=true"
    count_file: str  # "auto", "none" or a path
    data_folder: Path
    graph: Path

    @property
    def is_phones(self) -> bool:
        return self.opts.split()[0] == "ali-to-phones"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    section: str
    features: Tuple[FeatureSpec, ...]
    labels: Tuple[LabelSpec, ...]
    n_chunks: int  # parts read and trained one at a time per epoch (data/streamed.py)


@dataclass(frozen=True)
class DataUse:
    train_with: str
    valid_with: str
    forward_with: str


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
    """One ``[architectureN]``: class, optimiser and schedule; ``options`` go to the class."""

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
    options: Section

    def resolved_options(self, n_out: Mapping[str, int]) -> Section:
        """Options with every ``N_out_<lab_name>`` token replaced by that label set's size."""
        def substitute(value: str) -> str:
            return re.sub(N_OUT_PREFIX + r"(\w+)", lambda m: str(n_out[m.group(1)]), value)
        return self.options.replaced({k: substitute(v) for k, v in self.options.items()})


@dataclass(frozen=True)
class Operation:
    out: str
    op: str
    args: Tuple[str, str]


@dataclass(frozen=True)
class ModelSpec:
    operations: Tuple[Operation, ...]

    def producer(self, name: str) -> Optional[Operation]:
        return next((o for o in self.operations if o.out == name), None)


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

    def labels_used(self) -> List[str]:
        """Label sets the model language reads (cost_nll/cost_err second arguments)."""
        ops = self.model.operations
        return sorted({o.args[1] for o in ops if o.op in ("cost_nll", "cost_err")})

    def features_used(self) -> List[str]:
        """Feature streams the model language reads (compute inputs, concatenate arguments)."""
        names = {f.name for f in self.train_set.features}
        return sorted({arg for o in self.model.operations if o.op in ("compute", "concatenate")
                       for arg in o.args if arg in names})


# ---------------------------------------------------------------------------------------------
# Reading the file and applying --set overrides


def read_cfg(path: Path, overrides: Sequence[str] = ()) -> configparser.ConfigParser:
    """Parse the cfg text (syntax only) and apply ``section.key=value`` overrides."""
    checks.check_cfg_file(path)
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(checks.read_cfg_text(path), source=str(path))
    except configparser.Error as err:
        message = " ".join(str(err).split())  # configparser errors span lines: keep one
        raise ConfigError(f"cannot parse cfg: {message}", file=str(path)) from None
    for override in overrides:
        _apply_override(parser, override, path)
    return parser


def _apply_override(parser: configparser.ConfigParser, override: str, path: Path) -> None:
    match = re.match(r"^([\w]+)\.(\w+)=(.*)$", override.strip(), flags=re.S)
    if not match:
        raise ConfigError(f"--set {override!r} is not of the form section.key=value",
                          file=str(path))
    section, key, value = match.groups()
    if not parser.has_section(section):
        raise ConfigError(f"--set {override!r}: no such section", file=str(path),
                          section=section)
    parser.set(section, key.lower(), value)


# ---------------------------------------------------------------------------------------------
# Sections


def _section(parser: configparser.ConfigParser, name: str, rec: Recorder) -> Section:
    if not parser.has_section(name):
        raise ConfigError(f"missing section [{name}]", section=name)
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
    )


def _blocks(sec: Section, key: str, first: str, rec: Recorder) -> List[Section]:
    """Split a multi-line ``fea``/``lab`` value into one Section per ``<first>=`` block."""
    blocks: List[Dict[str, str]] = []
    for line in get_str(sec, key).splitlines():
        line = line.strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"line {line!r} of {key} is not name=value", section=sec.name,
                              key=key)
        if name.strip() == first or not blocks:
            blocks.append({})
        # paths and pipes may name $KALDI_ROOT and the like, as Kaldi's path.sh does; the same
        # expansion as `localize` (an unset variable is an error, not a literal path)
        blocks[-1][name.strip()] = expand_vars(value.strip(), os.environ, section=sec.name,
                                               key=f"{key} {name.strip()}")
    for block in blocks:
        if first not in block:
            raise ConfigError(f"missing option {first}", section=sec.name, key=first)
        check_keys(sec.name, block, SECTION_KEYS[key])
    return [Section(sec.name, b, rec.block(sec.name, key, b)) for b in blocks]


def _parse_feature(block: Section) -> FeatureSpec:
    return FeatureSpec(
        name=get_str(block, "fea_name"),
        scp=Path(get_str(block, "fea_lst")),
        opts=get_str(block, "fea_opts", default=""),
        cw_left=get_int(block, "cw_left", min=0, default=0),
        cw_right=get_int(block, "cw_right", min=0, default=0),
    )


def _parse_label(block: Section) -> LabelSpec:
    if get_str(block, "lab_name").lower() == "none":
        raise ConfigError("lab_name = none is upstream's production mode (forward without "
                          "labels), not supported: every dataset needs alignments",
                          section=block.name, key="lab_name")
    opts = " ".join(get_str(block, "lab_opts").split())
    if opts not in LAB_OPTS:
        raise ConfigError(f"lab_opts = {opts!r} is not one of {', '.join(sorted(LAB_OPTS))}",
                          section=block.name, key="lab_opts")
    return LabelSpec(
        name=get_str(block, "lab_name"),
        folder=Path(get_str(block, "lab_folder")),
        opts=opts,
        count_file=get_str(block, "lab_count_file", default="auto"),
        data_folder=Path(get_str(block, "lab_data_folder")),
        graph=Path(get_str(block, "lab_graph")),
    )


def _parse_dataset(sec: Section, rec: Recorder) -> DatasetSpec:
    check_keys(sec.name, sec, SECTION_KEYS["dataset"])
    features = tuple(_parse_feature(b) for b in _blocks(sec, "fea", "fea_name", rec))
    labels = tuple(_parse_label(b) for b in _blocks(sec, "lab", "lab_name", rec))
    return DatasetSpec(name=get_str(sec, "data_name"), section=sec.name, features=features,
                       labels=labels, n_chunks=get_int(sec, "n_chunks", min=1, default=1))


def _parse_data_use(sec: Section, datasets: Mapping[str, DatasetSpec]) -> DataUse:
    names = {}
    for key in ("train_with", "valid_with", "forward_with"):
        names[key] = get_str(sec, key)
        if names[key] not in datasets:
            defined = ", ".join(sorted(datasets))
            raise ConfigError(f"dataset {names[key]!r} is not defined (defined: {defined})",
                              section=sec.name, key=key)
    return DataUse(**names)


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
    class_by_name(arch_class, sec.name)
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
        options=sec,
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


def _parse_model(sec: Section) -> ModelSpec:
    operations = []
    for line in get_str(sec, "model").splitlines():
        if not line.strip():
            continue
        match = _OPERATION_RE.match(line.strip())
        if not match:
            raise ConfigError(f"{line.strip()!r} is not of the form out=operation(a,b)",
                              section=sec.name, key="model")
        out, op, args = match.groups()
        if op not in OPERATIONS:
            raise ConfigError(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})",
                              section=sec.name, key="model")
        parts = tuple(a.strip() for a in args.split(","))
        if len(parts) != OPERATIONS[op]:
            raise ConfigError(f"{op} takes {OPERATIONS[op]} arguments: {line.strip()!r}",
                              section=sec.name, key="model")
        operations.append(Operation(out, op, parts))  # type: ignore[arg-type]
    return ModelSpec(tuple(operations))


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
        beam=get_float(sec, "beam", min=0.001, default=13.0),
        latbeam=get_float(sec, "latbeam", min=0.001, default=8.0),
        acwt=get_float(sec, "acwt", min=0.001, default=DecodeOptions.acoustic_scale),
        max_active=get_int(sec, "max_active", min=1, default=7000),
        min_active=get_int(sec, "min_active", min=1, default=200),
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


def _check_model(exp: Experiment, model_sec: Section, forward_sec: Section) -> None:
    """Every name the model language reads must be defined before it is used."""
    features = {f.name for f in exp.train_set.features}
    labels = {lab.name for lab in exp.train_set.labels}
    defined: set = set()

    def need(name: str, kinds: set, what: str) -> None:
        if name not in kinds:
            raise ConfigError(f"{what} {name!r} is not defined", section=model_sec.name,
                              key="model")

    for op in exp.model.operations:
        a, b = op.args
        if op.op == "compute":
            need(a, set(exp.architectures), "architecture")
            need(b, features | defined, "input")
        elif op.op in ("cost_nll", "cost_err"):
            need(a, defined, "output")
            need(b, labels, "label set")
        elif op.op == "mult_constant":
            need(a, defined, "value")
            try:
                float(b)
            except ValueError:
                raise ConfigError(f"mult_constant constant {b!r} is not a number",
                                  section=model_sec.name, key="model") from None
        elif op.op == "concatenate":  # of feature streams (conc1=concatenate(mfcc,fbank)) too
            need(a, features | defined, "value")
            need(b, features | defined, "value")
        else:
            need(a, defined, "value")
            need(b, defined, "value")
        defined.add(op.out)
    for final in ("loss_final", "err_final"):
        need(final, defined, "output")
    if exp.forward.forward_out not in defined:
        raise ConfigError(f"forward_out {exp.forward.forward_out!r} is not a model output",
                          section=forward_sec.name, key="forward_out")
    if exp.forward.normalize_with_counts_from not in labels:
        raise ConfigError(f"label set {exp.forward.normalize_with_counts_from!r} is not defined",
                          section=forward_sec.name, key="normalize_with_counts_from")


def _check_dataset_names(exp: Experiment) -> None:
    """Every dataset must define the features and labels the model reads."""
    for ds in exp.datasets.values():
        features = {f.name for f in ds.features}
        labels = {lab.name for lab in ds.labels}
        for name in exp.features_used():
            if name not in features:
                raise ConfigError(f"feature {name!r} is not defined", section=ds.section,
                                  key="fea")
        for name in exp.labels_used():
            if name not in labels:
                raise ConfigError(f"label set {name!r} is not defined", section=ds.section,
                                  key="lab")


def architecture_class(arch: Architecture) -> Callable:
    """The network class named by ``arch_class`` (PyTorch-Kaldi's arch_library registry)."""
    return class_by_name(arch.arch_class, arch.section)


def class_by_name(name: str, section: str) -> Callable:
    module = importlib.import_module(ARCH_LIBRARY)
    cls = getattr(module, name, None)
    if isinstance(cls, type) and not name.startswith("_"):
        return cls
    if name in UPSTREAM_CLASSES:
        raise ConfigError(f"arch_class = {name} is upstream's: {UPSTREAM_CLASSES[name]}",
                          section=section, key="arch_class")
    known = ", ".join(n for n, obj in vars(module).items() if isinstance(obj, type)
                      and obj.__module__ == ARCH_LIBRARY and not n.startswith("_"))
    raise ConfigError(f"unknown architecture class {name!r} (known: {known})", section=section,
                      key="arch_class")


def _check_architectures(exp: Experiment) -> None:
    """Build every network once with placeholder sizes so that its class checks its options."""
    placeholder = {lab.name: 2 for lab in exp.train_set.labels}
    for arch in exp.architectures.values():
        architecture_class(arch)(arch.resolved_options(placeholder), 4)


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
    test = exp.datasets[exp.data_use.forward_with]
    words_txt = next(lab.graph for lab in test.labels
                     if lab.name == exp.forward.normalize_with_counts_from) / "words.txt"
    if not words_txt.is_file():
        return
    words = {line.split()[0] for line in words_txt.read_text().splitlines() if line.strip()}
    if len(words & set(timit_fold_map(48))) >= 39:
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


# ---------------------------------------------------------------------------------------------
# Entry point


def load_experiment(path: Path, overrides: Sequence[str] = ()) -> Experiment:
    """Read, override and validate a cfg; paths are checked separately by :func:`check_paths`."""
    try:
        return _load(path, overrides)
    except ConfigError as err:
        raise err.with_file(str(path)) from None


def _check_sections(parser: configparser.ConfigParser, sections: Mapping[str, Section]) -> None:
    """No unknown section; every key of the fixed sections known and honoured."""
    known = [*SECTIONS, "cfg_proto"]
    for name in parser.sections():
        if re.fullmatch(r"(dataset|architecture)\d+", name):
            continue
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise ConfigError(f"unknown section [{name}]{hint}", section=name)
        check_keys(name, sections.get(name, parser[name]), SECTION_KEYS[name])


def _load(path: Path, overrides: Sequence[str]) -> Experiment:
    parser = read_cfg(path, overrides)
    rec = Recorder()
    rec.unexpanded = expand_cfg_vars(parser, os.environ, is_upstream_only)
    sections = {name: _section(parser, name, rec) for name in SECTIONS}
    _check_sections(parser, sections)
    datasets: Dict[str, DatasetSpec] = {}
    for sec in _numbered(parser, "dataset", rec):
        ds = _parse_dataset(sec, rec)
        if ds.name in datasets:
            raise ConfigError(f"dataset {ds.name!r} is defined twice", section=sec.name,
                              key="data_name")
        datasets[ds.name] = ds
    settings = _parse_exp(sections["exp"])
    parsed = [_parse_architecture(sec, settings.n_epochs_tr)
              for sec in _numbered(parser, "architecture", rec)]
    checks.check_unique([a.name for a in parsed], [a.section for a in parsed], "arch_name",
                        "architecture")
    architectures = {arch.name: arch for arch in parsed}
    exp = Experiment(
        cfg_path=path,
        cfg_text="",
        exp=settings,
        datasets=datasets,
        data_use=_parse_data_use(sections["data_use"], datasets),
        batches=_parse_batches(sections["batches"]),
        architectures=architectures,
        model=_parse_model(sections["model"]),
        forward=_parse_forward(sections["forward"]),
        decoding=_parse_decoding(sections["decoding"]),
    )
    checks.check_defined_once([op.out for op in exp.model.operations], "model")
    _check_model(exp, sections["model"], sections["forward"])
    labels = [lab.name for lab in exp.train_set.labels]
    for arch in parsed:
        checks.check_learning_rate(arch.lr, arch.section)
        checks.check_n_out_names(dict(arch.options), arch.section, labels, N_OUT_PREFIX)
    _check_dataset_names(exp)
    _check_architectures(exp)
    return dataclasses.replace(exp, cfg_text=rec.text(parser))
