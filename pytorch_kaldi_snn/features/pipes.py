"""PyTorch-Kaldi feature pipes: ``fea_lst`` (a feats.scp) plus ``fea_opts`` (Kaldi commands).

PyTorch-Kaldi reads ``ark:copy-feats scp:<fea_lst> ark:- |<fea_opts>``. With Kaldi's
featbin on PATH (or under ``$KALDI_ROOT/src/featbin``) :func:`read_features` runs exactly
that pipeline, under ``bash -o pipefail`` so that a failure anywhere in it raises. Without
Kaldi it parses ``fea_opts`` and applies the commands natively; their output equals
Kaldi's bit for bit (see features/transforms.py): ``apply-cmvn``, ``add-deltas``,
``splice-feats`` and ``copy-feats`` reading ``ark:-`` and writing ``ark:-``.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Tuple

import numpy as np

from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.features.extract import parse_kaldi_bool
from pytorch_kaldi_snn.features.transforms import add_deltas, apply_cmvn, splice_feats
from pytorch_kaldi_snn.io.tables import read_double_matrices, read_matrices, read_tokens

Stage = Callable[[str, np.ndarray], np.ndarray]
# Options every Kaldi binary accepts that do not change the data.
_HARMLESS = {"print-args", "verbose"}


def kaldi_featbin() -> Optional[str]:
    """Folder holding Kaldi's ``copy-feats``: from PATH, else ``$KALDI_ROOT/src/featbin``."""
    found = shutil.which("copy-feats")
    if found:
        return str(Path(found).parent)
    root = os.environ.get("KALDI_ROOT")
    featbin = Path(root, "src", "featbin") if root else None
    return str(featbin) if featbin is not None and (featbin / "copy-feats").is_file() else None


def read_features(fea_scp: str, fea_opts: str, log: logging.Logger) -> Iterator[Tuple[str, np.ndarray]]:
    """Yield ``(utt, features)`` for ``fea_scp`` transformed by the ``fea_opts`` pipe."""
    featbin = kaldi_featbin()
    if featbin is not None:
        log.info("features: Kaldi binaries (%s)", featbin)
        return _checked(fea_scp, read_matrices(kaldi_rspecifier(fea_scp, fea_opts, featbin)))
    stages = parse_fea_opts(fea_opts)
    log.info("features: built-in pipe (%s)", " | ".join(s.command for s in stages) or "copy-feats")
    return _native(fea_scp, stages)


def _checked(fea_scp: str, items: Iterator[Tuple[str, np.ndarray]]) -> Iterator[Tuple[str, np.ndarray]]:
    """Refuse empty and non-finite matrices, naming the scp and the utterance."""
    with closing(items):  # a refused matrix closes the reader (and its pipe) at once
        yield from _check_each(fea_scp, items)


def _check_each(fea_scp: str, items: Iterator[Tuple[str, np.ndarray]]) -> Iterator[Tuple[str, np.ndarray]]:
    for utt, feats in items:
        if feats.shape[0] == 0:
            raise DataError(f"features have no frames ({feats.shape[0]} x {feats.shape[1]} "
                            f"matrix)", file=fea_scp, utt=utt)
        bad = np.argwhere(~np.isfinite(feats))
        if len(bad):
            frame, dim = bad[0]
            raise DataError(f"features hold {len(bad)} NaN/Inf values (first at frame {frame}, "
                            f"dimension {dim}: {feats[frame, dim]})", file=fea_scp, utt=utt)
        yield utt, feats


def kaldi_rspecifier(fea_scp: str, fea_opts: str, featbin: str) -> str:
    """PyTorch-Kaldi's rspecifier, run by bash with pipefail and ``featbin`` first on PATH."""
    # fea_scp is a path (the cfg's fea_lst, or a data dir given to evaluate): quoted, so that
    # the shell reads it as one word and runs nothing in it; fea_opts is the cfg's own pipe.
    pipeline = f"copy-feats scp:{shlex.quote(fea_scp)} ark:- |{fea_opts}".strip().rstrip("|").strip()
    script = f"PATH={shlex.quote(featbin)}:\"$PATH\"; {pipeline}"
    return f"ark:bash -o pipefail -c {shlex.quote(script)} |"


@dataclass(frozen=True)
class NativeStage:
    """One parsed ``fea_opts`` command: its name and the per-utterance transform."""

    command: str
    apply: Stage


def _native(fea_scp: str, stages: list[NativeStage]) -> Iterator[Tuple[str, np.ndarray]]:
    for utt, feats in _checked(fea_scp, read_matrices(f"scp:{fea_scp}")):
        for stage in stages:
            try:
                feats = stage.apply(utt, feats)
            except ValueError as err:  # e.g. CMVN stats of another dimension
                raise DataError(f"{stage.command}: {err}", file=fea_scp, utt=utt) from None
        yield utt, feats


def parse_fea_opts(fea_opts: str) -> list[NativeStage]:
    """Parse ``cmd opts ark:- ark:- | cmd ... |`` into native stages; unsupported -> ConfigError."""
    lexer = shlex.shlex(fea_opts, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True  # split on spaces and '|' only, keeping ark:DIR/x.ark whole
    try:
        tokens = list(lexer)
    except ValueError as err:
        raise ConfigError(f"cannot parse fea_opts ({err})", key="fea_opts") from None
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token == "|":
            commands.append([])
        else:
            commands[-1].append(token)
    return [_stage(words) for words in commands if words]


def _stage(words: list[str]) -> NativeStage:
    command, options, positional = words[0], {}, []
    for word in words[1:]:
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            options[name] = value  # a bare --flag gives "", which Kaldi's booleans read as true
        else:
            positional.append(word)
    for name in _HARMLESS:
        options.pop(name, None)
    builder = _BUILDERS.get(command)
    if builder is None:
        supported = ", ".join(_BUILDERS)
        message = f"unsupported command {command!r} in the built-in pipe (supported: {supported})"
        raise ConfigError(message, key="fea_opts")
    return NativeStage(command, builder(command, options, positional))


def _take(command: str, options: dict[str, str], name: str, parse: Callable[[str], Any], default: Any) -> Any:
    """Pop option ``name`` parsed with ``parse`` (``default`` when absent); bad values -> ConfigError."""
    if name not in options:
        return default
    try:
        return parse(options.pop(name))
    except ValueError as err:
        raise ConfigError(f"{command} --{name}: {err}", key="fea_opts") from None


def _check_rest(command: str, options: dict[str, str], positional: list[str], expected: int) -> None:
    """Leftover options are unsupported; stream arguments must be ``ark:-`` (stdin/stdout)."""
    if options:
        name = next(iter(options))
        raise ConfigError(f"{command}: unsupported option --{name} in the built-in pipe", key="fea_opts")
    streams = positional[-2:]
    if len(positional) != expected or any(s != "ark:-" for s in streams):
        got = " ".join(positional)
        raise ConfigError(f"{command}: expected '... ark:- ark:-', got {got!r}", key="fea_opts")


def _copy_feats(command: str, options: dict[str, str], positional: list[str]) -> Stage:
    _check_rest(command, options, positional, 2)
    return lambda utt, feats: feats


def _add_deltas(command: str, options: dict[str, str], positional: list[str]) -> Stage:
    order = _take(command, options, "delta-order", int, 2)
    window = _take(command, options, "delta-window", int, 2)
    _check_rest(command, options, positional, 2)
    return lambda utt, feats: add_deltas(feats, order, window)


def _splice_feats(command: str, options: dict[str, str], positional: list[str]) -> Stage:
    left = _take(command, options, "left-context", int, 4)
    right = _take(command, options, "right-context", int, 4)
    _check_rest(command, options, positional, 2)
    return lambda utt, feats: splice_feats(feats, left, right)


def _apply_cmvn(command: str, options: dict[str, str], positional: list[str]) -> Stage:
    utt2spk = _take(command, options, "utt2spk", str, None)
    norm_vars = _take(command, options, "norm-vars", parse_kaldi_bool, False)
    norm_means = _take(command, options, "norm-means", parse_kaldi_bool, True)
    _check_rest(command, options, positional, 3)
    if norm_vars and not norm_means:
        raise ConfigError("apply-cmvn: cannot normalize variances without means", key="fea_opts")
    if not norm_means:  # Kaldi's apply-cmvn just copies the features then
        return lambda utt, feats: feats
    speakers = dict(read_tokens(utt2spk)) if utt2spk else None
    stats = _load_stats(positional[0])

    def apply(utt: str, feats: np.ndarray) -> np.ndarray:
        key = speakers.get(utt) if speakers is not None else utt
        if key is None:
            raise DataError("no speaker in utt2spk", file=utt2spk, utt=utt)
        if key not in stats:
            raise DataError(f"no CMVN stats for {key}", file=positional[0], utt=utt)
        return apply_cmvn(feats, stats[key], norm_vars)

    return apply


def _load_stats(rspecifier: str) -> dict[str, np.ndarray]:
    """Per-speaker (or per-utterance) stats; a table rspecifier, as apply-cmvn's usual form."""
    if not rspecifier.startswith(("ark", "scp")):
        message = f"apply-cmvn: global stats file {rspecifier!r} is not supported; use ark: or scp:"
        raise ConfigError(message, key="fea_opts")
    return dict(read_double_matrices(rspecifier))


_BUILDERS = {
    "apply-cmvn": _apply_cmvn,
    "add-deltas": _add_deltas,
    "splice-feats": _splice_feats,
    "copy-feats": _copy_feats,
}
