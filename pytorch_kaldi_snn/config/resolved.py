"""``resolved.cfg``: the cfg as the runner understood it, itself a runnable cfg.

Every key a parser read is written with its value; every default it handed out is added (so the
file says what ran, not what was typed), and ``fea``/``lab`` blocks are written with their
continuation lines indented, so :func:`load_experiment` reads the file back to the same
experiment. ``$VAR`` / ``${VAR}`` are expanded in every value (:func:`expand_cfg_vars`, before
any parser reads the cfg), upstream-only keys included (``scoring_script =
${KALDI_ROOT}/egs/...``), as upstream's shell would expand them. The one exception: a variable
that is not set in an upstream-only key, which this runner never uses and so does not refuse
(the built-in path runs a TIMIT cfg without ``KALDI_ROOT``); that value stays as written and a
comment line above it says which variable was not set.

:func:`training_view` is the part of a resolved cfg that decides the trained weights: resume
compares it, so a finished run may change ``[forward]``, ``[decoding]``, ``forward_with`` or the
test set's entries and re-decode without retraining.
"""
from __future__ import annotations

import configparser
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from pytorch_kaldi_snn.config.localize import expand_vars, unset_vars

BLOCK_KEYS = ("fea", "lab")
# Sections and keys that only change forward, decoding and scoring.
NOT_TRAINING_SECTIONS = ("cfg_proto", "forward", "decoding")
# How often checkpoints are written changes no result (train/progress.py resumes inside an
# epoch exactly), so these keys are neither training settings nor decoding ones.
CHECKPOINT_KEYS = ("checkpoint_every_batches", "checkpoint_every_minutes")
# [exp] out_folder and use_cuda: a run (or its checkpoint) moved to another folder or machine is
# the same training; so is one continued on another number of processes (multi_gpu,
# sync_batchnorm: with synchronised batch norm the processes compute the single-process batch);
# data_workers reads the same batches with more or fewer processes.
NOT_TRAINING_KEYS = {"data_use": ("forward_with",),
                     "exp": ("prepare", "out_folder", "use_cuda", "multi_gpu", "sync_batchnorm",
                             "data_workers", *CHECKPOINT_KEYS)}


def expand_cfg_vars(parser: configparser.ConfigParser, env: Mapping[str, str],
                    upstream_only: Callable[[str, str], bool]) -> Dict[Tuple[str, str], List[str]]:
    """Expand ``$VAR`` in every value of ``parser`` in place; an unset variable is a ConfigError
    naming section and key, except in a key ``upstream_only(section, key)``, left as written.
    Returns ``{(section, key): unset variables}`` of those left."""
    left: Dict[Tuple[str, str], List[str]] = {}
    for name in parser.sections():
        for key, value in parser[name].items():
            if key in BLOCK_KEYS:
                continue  # fea/lab blocks: expanded per block key, so that an error names it
            missing = unset_vars(value, env)
            if missing and upstream_only(name, key):
                left[(name, key)] = missing
            elif "$" in value:
                parser.set(name, key, expand_vars(value, env, section=name, key=key))
    return left


def format_value(value: Any) -> str:
    """A value in cfg syntax: ``True``, ``0.9,0.999``, ``none``."""
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    if value is None:
        return "none"
    return str(value)


class Recorder:
    """Collects the defaults the parsers hand out, per section and per ``fea``/``lab`` block."""

    def __init__(self) -> None:
        self.defaults: Dict[str, Dict[str, Any]] = {}
        self.blocks: Dict[Tuple[str, str], List[Tuple[Mapping[str, str], Dict[str, Any]]]] = {}
        self.unexpanded: Dict[Tuple[str, str], List[str]] = {}  # from expand_cfg_vars

    def section_defaults(self, name: str) -> Dict[str, Any]:
        return self.defaults.setdefault(name, {})

    def block(self, section: str, key: str, items: Mapping[str, str]) -> Dict[str, Any]:
        defaults: Dict[str, Any] = {}
        self.blocks.setdefault((section, key), []).append((items, defaults))
        return defaults

    def _block_value(self, section: str, key: str) -> str:
        blocks = []
        for items, defaults in self.blocks[(section, key)]:
            lines = [f"{k}={v}" for k, v in items.items()]
            lines += [f"{k}={format_value(v)}" for k, v in defaults.items() if k not in items]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def text(self, parser: configparser.ConfigParser) -> str:
        """The resolved cfg: every section of ``parser``, blocks rebuilt, defaults added."""
        out = []
        for name in parser.sections():
            lines = [f"[{name}]"]
            for key, value in parser[name].items():
                if (name, key) in self.blocks:
                    value = self._block_value(name, key)
                for var in self.unexpanded.get((name, key), ()):
                    lines.append(f"# ${{{var}}} is not set: {key} is left as written "
                                 "(an upstream-only key, not used by this runner)")
                lines.append(f"{key} = " + "\n\t".join(value.splitlines()))
            for key, value in self.defaults.get(name, {}).items():
                if key not in parser[name] and value is not None:
                    lines.append(f"{key} = {format_value(value)}")
            out.append("\n".join(lines))
        return "\n\n".join(out) + "\n"


def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return parser


def training_view(text: str) -> str:
    """The training-relevant part of a resolved cfg, canonically ordered."""
    try:
        parser = _parse(text)
    except configparser.Error:
        return text  # not a cfg: compared as it is (and so never equal to a real one)
    used = {parser.get("data_use", k, fallback="") for k in ("train_with", "valid_with")}
    lines = []
    for name in sorted(parser.sections()):
        if name in NOT_TRAINING_SECTIONS:
            continue
        if name.startswith("dataset") and parser.get(name, "data_name", fallback="") not in used:
            continue
        skip: Sequence[str] = NOT_TRAINING_KEYS.get(name, ())
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in sorted(parser[name].items()) if k not in skip]
    return "\n".join(lines) + "\n"


def same_results(old: Optional[str], new: str) -> bool:
    """Whether two resolved cfgs give the same results: equal but for :data:`CHECKPOINT_KEYS`
    (a finished run rerun with another checkpoint interval, or written before those keys
    existed, is complete and is not forwarded or decoded again)."""
    if old is None:
        return False
    try:
        return _without_checkpoint_keys(old) == _without_checkpoint_keys(new)
    except configparser.Error:
        return old == new


def _without_checkpoint_keys(text: str) -> List[Tuple[str, List[Tuple[str, str]]]]:
    parser = _parse(text)
    if parser.has_section("exp"):
        for key in CHECKPOINT_KEYS:
            parser.remove_option("exp", key)
    return [(name, list(parser[name].items())) for name in parser.sections()]


def training_differences(old: str, new: str) -> List[Tuple[str, str, Optional[str], Optional[str]]]:
    """``(section, key, old value, new value)`` of every training-relevant difference, sorted
    (a value is None where the key is absent)."""
    try:
        a, b = _parse(training_view(old)), _parse(training_view(new))
    except configparser.Error:
        return []
    found = []
    for name in sorted(set(a.sections()) | set(b.sections())):
        items_a = dict(a[name].items()) if a.has_section(name) else {}
        items_b = dict(b[name].items()) if b.has_section(name) else {}
        found += [(name, k, items_a.get(k), items_b.get(k)) for k in sorted(set(items_a) | set(items_b))
                  if items_a.get(k) != items_b.get(k)]
    return found


def changed_keys(old: str, new: str) -> List[str]:
    """``[section] key`` of every training-relevant difference (for the refusal message)."""
    return [f"[{name}] {key}" for name, key, _, _ in training_differences(old, new)]
