#!/usr/bin/env python3
"""Extract the WordNet 3.0 example sentences shipped as package data of the synthetic corpus.

Run once on a machine with Debian's ``wordnet-base`` installed (``apt-get install wordnet-base``);
the output is committed, so users only need pip. The result is deterministic: sorted, unique.

Inputs:  /usr/share/wordnet/data.{noun,verb,adj,adv} (the ``"..."`` examples after ``|``)
Outputs: pytorch_kaldi_snn/corpus/data/wordnet_sentences.txt.gz, one sentence a line

Usage: recipes/synth/local/extract_wordnet_sentences.py [--wordnet-dir DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Set

POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
EXAMPLE = re.compile(r'"([^"]+)"')
# Plain English only: anything else (digits, brackets, quotes, ';') is read oddly by a synthesizer.
ALLOWED = re.compile(r"[A-Za-z][A-Za-z ,.'?!-]*")
# A '.' inside a sentence means an abbreviation (U.S., Mr.), which eSpeak spells or expands.
INNER_DOT = re.compile(r"\.(?!$)")
ACRONYM = re.compile(r"\b[A-Z]{2,}")
MIN_WORDS, MAX_WORDS = 5, 14
DEFAULT_OUT = (Path(__file__).resolve().parents[3]
               / "pytorch_kaldi_snn/corpus/data/wordnet_sentences.txt.gz")


def examples(path: Path) -> Iterator[str]:
    """Yield every quoted example in the gloss part of one WordNet data file."""
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:  # licence header lines start with spaces
                continue
            yield from (m.strip() for m in EXAMPLE.findall(line.split("|", 1)[1]))


def is_clean(sentence: str) -> bool:
    """True for a plain 5-14 word sentence a synthesizer reads as written."""
    words = sentence.split()
    return (
        MIN_WORDS <= len(words) <= MAX_WORDS
        and ALLOWED.fullmatch(sentence) is not None
        and INNER_DOT.search(sentence) is None
        and ACRONYM.search(sentence) is None
        and "--" not in sentence
        and not any(w.startswith(("'", "-")) or w.endswith(("-", "'")) for w in words)
    )


def clean_sentences(wordnet_dir: Path) -> Set[str]:
    """All clean, whitespace-normalised examples of the four part-of-speech files."""
    found: Set[str] = set()
    for name in POS_FILES:
        found.update(" ".join(s.split()) for s in examples(wordnet_dir / name) if is_clean(s))
    return found


def write_gz(lines: Iterable[str], out: Path) -> None:
    """Write lines gzipped, atomically; mtime 0 so the bytes depend only on the content."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write("".join(f"{line}\n" for line in lines).encode("ascii"))
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; package data must be readable by all
    os.replace(tmp, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    missing = [n for n in POS_FILES if not (args.wordnet_dir / n).is_file()]
    if missing:
        print(f"{args.wordnet_dir}: missing {', '.join(missing)} (apt-get install wordnet-base)",
              file=sys.stderr)
        return 2
    sentences = sorted(clean_sentences(args.wordnet_dir))
    write_gz(sentences, args.out)
    print(f"{len(sentences)} sentences -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
