"""The ``latgen-faster-mapped`` options: their defaults and the option list, in one place.

Both the runner's Kaldi path (:mod:`pytorch_kaldi_snn.decoding.kaldi_bridge`) and the recipe
script ``recipes/common/decode_dnn.sh`` pass latgen the list :func:`latgen_options` builds;
the script gets it by running this file::

    python3 pytorch_kaldi_snn/config/latgen_opts.py --acwt 0.2 --beam 13 \\
        --word-symbol-table exp/tri3/graph/words.txt

which prints one option per line (options left out take :class:`DecodeOptions`' defaults).
This file imports nothing but the standard library, so that any ``python3`` runs it: the
recipe script stays usable without this project's dependencies.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields
from typing import List, Optional, Sequence


@dataclass(frozen=True)
class DecodeOptions:
    """latgen-faster-mapped options.

    Defaults are the golden system's ``decode/decode_opts.txt``: PyTorch-Kaldi's usual
    ``[decoding]`` beam/latbeam/max_active/min_active (its cfgs set ``acwt`` per recipe). These
    are also the cfg defaults of ``[decoding]`` (config/experiment.py reads them from here)
    and ``decode_dnn.sh``'s. Kaldi's own binary defaults differ: beam 16, lattice-beam 10,
    max-active unlimited, allow-partial false.
    """

    acoustic_scale: float = 0.1
    beam: float = 13.0
    max_active: int = 7000
    min_active: int = 200
    lattice_beam: float = 8.0
    allow_partial: bool = True
    max_mem: int = 50000000  # latgen --max-mem (decode_dnn.sh's); the built-in decoder has no cap

    def __post_init__(self) -> None:
        if not (self.acoustic_scale > 0 and self.beam > 0 and self.lattice_beam > 0):
            raise ValueError("acoustic_scale, beam and lattice_beam must be positive")
        if not 0 < self.min_active <= self.max_active:
            raise ValueError("need 0 < min_active <= max_active")
        if self.max_mem <= 0:
            raise ValueError("max_mem must be positive")


def latgen_options(opts: DecodeOptions, word_symbol_table: str) -> List[str]:
    """The ``--name=value`` options of latgen-faster-mapped for ``opts``, in decode_dnn.sh's order."""
    return [
        f"--min-active={opts.min_active}",
        f"--max-active={opts.max_active}",
        f"--max-mem={opts.max_mem}",
        f"--beam={opts.beam:g}",
        f"--lattice-beam={opts.lattice_beam:g}",
        f"--acoustic-scale={opts.acoustic_scale:g}",
        f"--allow-partial={'true' if opts.allow_partial else 'false'}",
        f"--word-symbol-table={word_symbol_table}",
    ]


_FLAGS = {  # command-line flag (decode_dnn.sh's option names) -> DecodeOptions field
    "--acwt": "acoustic_scale", "--beam": "beam", "--lattice-beam": "lattice_beam",
    "--max-active": "max_active", "--min-active": "min_active", "--max-mem": "max_mem",
    "--allow-partial": "allow_partial",
}


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"takes true or false, got {text!r}")
    return text == "true"


def _parser() -> argparse.ArgumentParser:
    # decode_dnn.sh runs this file as a script (no package, no __spec__); else it is a module
    prog = f"python -m {__spec__.name}" if __spec__ else "latgen_opts.py"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    types = {f.name: f.type for f in fields(DecodeOptions)}
    convert = {"float": float, "int": int, "bool": _bool}
    for flag, field in _FLAGS.items():
        parser.add_argument(flag, dest=field, type=convert[types[field]], default=None,
                            help=f"default {getattr(DecodeOptions, field)}")
    parser.add_argument("--word-symbol-table", required=True, help="the graph's words.txt")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the options one per line; a bad value prints one line and exits 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    given = {f: getattr(args, f) for f in _FLAGS.values() if getattr(args, f) is not None}
    try:
        opts = DecodeOptions(**given)
    except ValueError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(latgen_options(opts, args.word_symbol_table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
