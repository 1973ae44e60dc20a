"""``arpa2fst`` through kaldilm (see bin/arpa2fst): Kaldi's options, ARPA from a file or stdin."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
from pytorch_kaldi_snn.kaldi_ports import kaldilm  # noqa: E402  (the import order that works)

OPTIONS = {"--disambig-symbol": "disambig_symbol", "--read-symbol-table": "read_symbol_table"}


def main(args: List[str]) -> int:
    kwargs = {}
    paths = []
    for arg in args:
        name, _, value = arg.partition("=")
        if name in OPTIONS:
            kwargs[OPTIONS[name]] = value
        elif arg.startswith("--"):
            print(f"arpa2fst (built-in): option {name} is not supported (only {', '.join(OPTIONS)})",
                  file=sys.stderr)
            return 2
        else:
            paths.append(arg)
    if len(paths) != 2:
        print("usage: arpa2fst [--disambig-symbol=S] [--read-symbol-table=F] <in.arpa|-> <out.fst>",
              file=sys.stderr)
        return 2
    with tempfile.NamedTemporaryFile("wb", suffix=".arpa") as tmp:
        source = paths[0]
        if source == "-":
            shutil.copyfileobj(sys.stdin.buffer, tmp)
            tmp.flush()
            source = tmp.name
        kaldilm.arpa2fst(input_arpa=source, output_fst=paths[1], **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
