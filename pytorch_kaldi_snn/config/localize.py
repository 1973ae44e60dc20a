"""``python -m pytorch_kaldi_snn.config.localize CFG -o OUT.cfg``: a cfg with literal paths.

Upstream PyTorch-Kaldi reads every path literally and relative to its own checkout, while our
shipped cfgs name ``${KALDI_ROOT}/egs/...`` and project-relative ``recipes/synth/...``. This
command writes the same cfg with

1. ``$VAR`` / ``${VAR}`` expanded (``--var NAME=VALUE`` first, then the environment; an unset
   variable is an error naming the section and key; :func:`expand_vars` is also what our runner
   uses for ``fea``/``lab`` values),
2. path prefixes replaced (``--map OLD=NEW``, e.g. ``--map recipes/synth=/data/synth`` or
   ``--map '${KALDI_ROOT}/egs/timit/s5/data-fmllr-tri3=recipes/timit/data'``),
3. every remaining relative path made absolute against ``--base`` (default: the current
   directory), except the keys upstream resolves inside its own checkout
   (:data:`UPSTREAM_RELATIVE`: ``cfg_proto``, ``model_proto``, ``decoding_script_folder``...),
4. ``--set section.key=value`` overrides applied as ``./run_exp.sh --set`` applies them,
5. ``[exp] prepare`` dropped: it builds the built-in corpus at the shipped relative place, which
   a localized cfg no longer points to (its data must exist).

Both runners read the result: ``./run_exp.sh OUT.cfg`` and upstream's ``python run_exp.py OUT.cfg``.
"""
from __future__ import annotations

import argparse
import configparser
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.config.reading import read_cfg  # the runner's reader and --set
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.io.atomic import atomic_write

# keys whose paths upstream resolves relative to its own checkout: left as written
UPSTREAM_RELATIVE = frozenset({
    "cfg_proto", "cfg_proto_chunk", "model_proto", "decoding_script_folder", "decoding_proto",
    "decoding_script", "scoring_script",
})
_VAR_RE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# one word of a value: an optional "name=" ("fea_lst=", "--utt2spk="), an optional table
# prefix ("ark:", "scp:", "ark,t:"), then the text that may be a path
_WORD_RE = re.compile(r"(?P<head>(?:[\w-]+=)?(?:(?:ark|scp)(?:,\w+)*:)?)(?P<path>[^\s|\"']+)")


def expand_vars(value: str, env: Mapping[str, str], *, section: str, key: str) -> str:
    """``$VAR`` / ``${VAR}`` from ``env``; an unset variable is a ConfigError (never literal)."""
    def lookup(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise ConfigError(f"${{{name}}} is not set (export it, or pass --var {name}=...)",
                              section=section, key=key)
        return env[name]
    return _VAR_RE.sub(lookup, value)


def unset_vars(value: str, env: Mapping[str, str]) -> List[str]:
    """The ``$VAR`` names of ``value`` that ``env`` does not set."""
    return [m.group(1) or m.group(2) for m in _VAR_RE.finditer(value)
            if (m.group(1) or m.group(2)) not in env]


def _rewrite_paths(value: str, maps: Sequence[Tuple[str, str]], base: Path) -> str:
    def one(match: re.Match) -> str:
        path = match.group("path")
        if "/" not in path:
            return match.group(0)
        for old, new in maps:
            if path == old or path.startswith(old.rstrip("/") + "/"):
                path = new.rstrip("/") + path[len(old.rstrip("/")):]
                break
        if not path.startswith(("/", "-")):
            path = os.path.join(base, path)  # keeps a trailing "/" (Path would drop it)
        return match.group("head") + path
    return _WORD_RE.sub(one, value)


def _pair(text: str, option: str, form: str) -> Tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"{option} {text!r} is not of the form {form}")
    return name, value


def localize(parser: configparser.ConfigParser, env: Mapping[str, str],
             maps: Sequence[Tuple[str, str]], base: Path) -> configparser.ConfigParser:
    """Rewrite every value of ``parser`` in place (steps 1-3 and 5 of the module doc)."""
    maps = [tuple(expand_vars(side, env, section="command line", key=f"--map {old}")
                  for side in (old, new)) for old, new in maps]
    if parser.has_option("exp", "prepare"):
        parser.remove_option("exp", "prepare")
    for section in parser.sections():
        for key, value in parser[section].items():
            value = expand_vars(value, env, section=section, key=key)
            if key not in UPSTREAM_RELATIVE:
                value = "\n".join(_rewrite_paths(line, maps, base) for line in value.split("\n"))
            parser.set(section, key, value)
    return parser


def render(parser: configparser.ConfigParser, source: Path) -> str:
    """cfg text in the shipped layout (``key = value``, continuation lines indented by a tab)."""
    lines = [f"# localized from {source} by python -m pytorch_kaldi_snn.config.localize"]
    for section in parser.sections():
        lines.append(f"\n[{section}]")
        for key, value in parser[section].items():
            first, *rest = value.split("\n")
            lines.append(f"{key} = {first}".rstrip())
            lines.extend(f"\t{line}" if line else "\t" for line in rest)
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = command_parser(
        "pytorch_kaldi_snn.config.localize",
        "Write CFG with $VARs expanded and every path literal and absolute, for upstream "
        "PyTorch-Kaldi's run_exp.py (and ./run_exp.sh).")
    parser.add_argument("cfg", type=Path, help="the cfg to localize")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the cfg to write")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="value of $NAME (default: the environment)")
    parser.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                        help="replace the path prefix OLD by NEW (after $VAR expansion)")
    parser.add_argument("--base", type=Path, default=Path.cwd(),
                        help="directory relative paths are relative to (default: current)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="section.key=value", help="as ./run_exp.sh --set")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)

    def action() -> None:
        given = dict(_pair(v, "--var", "NAME=VALUE") for v in args.var)
        env: Dict[str, str] = {**os.environ, **given}
        maps: List[Tuple[str, str]] = [_pair(m, "--map", "OLD=NEW") for m in args.map]
        try:
            parser = localize(read_cfg(args.cfg, args.overrides), env, maps,
                              args.base.resolve())
        except ConfigError as err:
            raise err.with_file(str(args.cfg)) from None
        text = render(parser, args.cfg)
        atomic_write(args.output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        print(f"wrote {args.output}")
    return run_reporting_errors("localize", action)


if __name__ == "__main__":
    sys.exit(main())
