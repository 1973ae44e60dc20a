"""The file layout the Kaldi recipes leave behind, as the cfgs and the built-in recipe see it.

``recipes/timit/run.sh`` and ``recipes/librispeech/run.sh`` run Kaldi's egs stages and then link
what PyTorch-Kaldi needs (fMLLR data dirs with per-speaker CMVN, alignments, the model and its
decoding graph) into one directory, ``--out-dir``. ``recipes/<corpus>/layout.txt`` describes it,
one entry per line::

    <path under out-dir>  <path under the Kaldi egs dir>  <files it holds>...
    data/test             data-fmllr-tri3/test            feats.scp utt2spk ... cmvn_speaker.ark
    exp/tri3_ali_test     exp/tri3_ali_test               final.mdl tree num_jobs ali.*.gz

A file may be a glob (``ali.*.gz``: at least one file matches). A path starting with ``?`` marks
an optional entry, made by stages a user may skip (TIMIT's DNN alignments): it is linked and
checked only when it exists. The same text file drives the
shell (which makes the links) and this module (which checks them), so the names live in one place.
The cfg files (``cfg/TIMIT_*.cfg``, ``cfg/Librispeech_*.cfg``) point into this layout, and the
built-in recipe writes the same names, so either root serves the same cfg.

Command line (used by run.sh's last stage; prints one line and exits 2 when files are missing)::

    python pytorch_kaldi_snn/recipes_layout.py check recipes/timit/layout.txt <out-dir>
    python pytorch_kaldi_snn/recipes_layout.py list timit
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, List, Optional, Sequence, Tuple, Union

if __package__ in (None, ""):  # run as a script by the recipes: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytorch_kaldi_snn.cli import command_parser  # noqa: E402
from pytorch_kaldi_snn.errors import DataError  # noqa: E402

#: Corpora with a Kaldi recipe, i.e. a ``recipes/<corpus>/layout.txt``.
CORPORA = ("timit", "librispeech")

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


@dataclass(frozen=True)
class LayoutEntry:
    """One directory of the layout: where it sits under out-dir, where Kaldi made it, its files."""

    path: str
    kaldi_path: str
    files: Tuple[str, ...]
    optional: bool = False


def layout_file(corpus: str) -> Path:
    """``recipes/<corpus>/layout.txt`` of this checkout."""
    if corpus not in CORPORA:
        raise DataError(f"unknown corpus {corpus!r}; the Kaldi recipes are {', '.join(CORPORA)}")
    return RECIPES_DIR / corpus / "layout.txt"


def load_layout(source: Union[str, Path]) -> Tuple[LayoutEntry, ...]:
    """Entries of a layout file, given its path or a corpus name (``timit``, ``librispeech``)."""
    path = layout_file(source) if str(source) in CORPORA else Path(source)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"cannot read layout: {err.strerror}", file=str(path)) from err
    entries = []
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) < 2:
            raise DataError(f"line {number}: expected <path> <kaldi path> <files>...", file=str(path))
        optional = words[0].startswith("?")
        entries.append(LayoutEntry(_clean(words[0].lstrip("?")), _clean(words[1]), tuple(words[2:]), optional))
    if not entries:
        raise DataError("no entries", file=str(path))
    return tuple(entries)


def _clean(path: str) -> str:
    return str(PurePosixPath(path))


def covers(entries: Sequence[LayoutEntry], rel_path: str, side: str = "out") -> bool:
    """Whether ``rel_path`` is a directory or file the layout provides.

    ``side`` says what ``rel_path`` is relative to: ``"out"`` (the recipe's ``--out-dir``, the
    built-in recipe's names) or ``"kaldi"`` (the Kaldi egs dir, PyTorch-Kaldi's names). An entry
    covers its directory, the files it lists (globs match: ``ali.1.gz`` is covered by
    ``ali.*.gz``) and the folders on the way to them (``exp/tri3/graph``); a trailing slash is
    ignored.
    """
    if side not in ("out", "kaldi"):
        raise ValueError(f"side must be 'out' or 'kaldi', not {side!r}")
    rel = _clean(rel_path.rstrip("/"))
    for entry in entries:
        base = entry.path if side == "out" else entry.kaldi_path
        if rel == base:
            return True
        if not rel.startswith(base + "/"):
            continue
        inner = rel[len(base) + 1:]
        for name in entry.files:
            if fnmatch.fnmatchcase(inner, name) or name.startswith(inner + "/"):
                return True
    return False


def expected_paths(entries: Iterable[LayoutEntry]) -> List[str]:
    """Every directory and file of the layout, relative to out-dir (globs as written)."""
    paths = []
    for entry in entries:
        paths.append(entry.path)
        paths.extend(f"{entry.path}/{name}" for name in entry.files)
    return paths


def missing(entries: Iterable[LayoutEntry], root: Union[str, Path]) -> List[str]:
    """The layout's directories and files that do not exist under ``root`` (a glob needs a match;
    an optional entry whose directory is absent is not missing)."""
    root = Path(root)
    absent = []
    for entry in entries:
        directory = root / entry.path
        if not directory.is_dir():
            if not entry.optional:
                absent.append(entry.path)
            continue
        for name in entry.files:
            found = any(directory.glob(name)) if any(c in name for c in "*?[") else (directory / name).exists()
            if not found:
                absent.append(f"{entry.path}/{name}")
    return absent


def check(layout: Union[str, Path], root: Union[str, Path]) -> None:
    """Raise :class:`DataError` naming the first missing paths when ``root`` lacks part of the layout."""
    absent = missing(load_layout(layout), root)
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise DataError(f"missing from the recipe layout: {shown}", file=str(root))


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("pytorch_kaldi_snn.recipes_layout",
                            "Check or list the file layout the Kaldi recipes leave behind.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{check,list}")
    layout_help = f"a layout.txt or a corpus name ({', '.join(CORPORA)})"
    check_cmd = commands.add_parser("check", help="fail with one line naming what is missing")
    check_cmd.add_argument("layout", help=layout_help)
    check_cmd.add_argument("out_dir", help="the recipe's --out-dir")
    list_cmd = commands.add_parser("list", help="print every path of the layout")
    list_cmd.add_argument("layout", help=layout_help)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``check <layout|corpus> <out-dir>`` or ``list <layout|corpus>``; errors print one line,
    exit 2."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            check(args.layout, args.out_dir)
            print(f"layout ok: {args.out_dir}")
        else:
            print("\n".join(expected_paths(load_layout(args.layout))))
    except DataError as err:
        print(str(err), file=sys.stderr)
        return 2
    return 0

if __name__ == "__main__":
    sys.exit(main())
