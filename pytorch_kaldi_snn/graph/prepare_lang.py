"""Recipe step: lang dir, phone bigram LM and G (``prepare_lang.sh`` + ``arpa2fst``)::

    python -m pytorch_kaldi_snn.graph.prepare_lang --phones data/phones.txt \\
        --train-text data/train/text --lang data/lang --lang-test data/lang_test_bg

Writes ``<lang>`` (see :mod:`pytorch_kaldi_snn.graph.lang`), ``<lang-test>`` = ``<lang>`` +
``G.fst``, and the ARPA to ``<lang-test>/phone_bigram.arpa``. The LM is estimated on the
training phone transcripts only.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Sequence

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.graph.lang import PhoneSet, read_inventory, write_lang
from pytorch_kaldi_snn.graph.lm import bigram_arpa, write_arpa_and_g
from pytorch_kaldi_snn.io.tables import read_kaldi_map


def prepare(phones: Path, train_text: Path, lang: Path, lang_test: Path) -> None:
    """Write the lang dir and the test lang dir with the training-transcript bigram G."""
    phone_set = PhoneSet.from_inventory(read_inventory(phones))
    write_lang(phone_set, lang)
    sentences = [line.split() for line in read_kaldi_map(train_text).values()]
    arpa = bigram_arpa(sentences, phone_set.phones)
    shutil.copytree(lang, lang_test, dirs_exist_ok=True)
    write_arpa_and_g(arpa, lang_test / "phone_bigram.arpa", lang_test / "words.txt", lang_test / "G.fst")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.graph.prepare_lang", __doc__)
    parser.add_argument("--phones", type=Path, required=True, help="the corpus's phone inventory")
    parser.add_argument("--train-text", type=Path, required=True, help="training phone transcripts")
    parser.add_argument("--lang", type=Path, required=True, help="lang dir to write")
    parser.add_argument("--lang-test", type=Path, required=True, help="lang dir with G.fst to write")
    args = parser.parse_args(argv)
    return run_reporting_errors(
        "prepare_lang", lambda: prepare(args.phones, args.train_text, args.lang, args.lang_test))


if __name__ == "__main__":
    sys.exit(main())
