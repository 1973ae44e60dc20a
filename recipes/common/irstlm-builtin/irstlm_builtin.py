"""The two IRSTLM calls of Kaldi's TIMIT dictionary script, answered by our phone bigram.

``build-lm -i TEXT -n 2 -o OUT.gz``: TEXT has one ``<s> p1 p2 ... </s>`` sentence a line; the
bigram of pytorch_kaldi_snn/graph/lm.py over its symbols goes to OUT.gz as ARPA.
``compile-lm IN.gz -t=yes OUT``: IN.gz (our ARPA) to OUT as text. Run by the scripts in bin/.
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
from pytorch_kaldi_snn.graph.lm import BOS, EOS, bigram_arpa  # noqa: E402


def _options(args: List[str], flags: List[str], prog: str) -> dict:
    if len(args) != 2 * len(flags) or args[0::2] != flags:
        raise SystemExit(f"{prog} (built-in): only `{' '.join(f + ' X' for f in flags)}` is supported, got: {' '.join(args)}")
    return dict(zip(flags, args[1::2]))


def build_lm(args: List[str]) -> None:
    opts = _options(args, ["-i", "-n", "-o"], "build-lm.sh")
    if opts["-n"] != "2":
        raise SystemExit(f"build-lm.sh (built-in): only -n 2 (a bigram) is supported, got -n {opts['-n']}")
    sentences = [[w for w in line.split() if w not in (BOS, EOS)]
                 for line in Path(opts["-i"]).read_text(encoding="utf-8").splitlines() if line.strip()]
    vocab = sorted({w for s in sentences for w in s})
    with gzip.open(opts["-o"], "wt", encoding="utf-8") as f:
        f.write(bigram_arpa(sentences, vocab))


def compile_lm(args: List[str]) -> None:
    if len(args) != 3 or args[1] != "-t=yes":
        raise SystemExit(f"compile-lm (built-in): only `compile-lm IN -t=yes OUT` is supported, got: {' '.join(args)}")
    with gzip.open(args[0], "rt", encoding="utf-8") as f:
        text = f.read()
    with open(args[2], "w", encoding="utf-8") as out:
        out.write(text)


if __name__ == "__main__":
    {"build-lm": build_lm, "compile-lm": compile_lm}[sys.argv[1]](sys.argv[2:])
