"""Upstream PyTorch-Kaldi's baseline cfgs with their data paths moved to a built-in corpus.

``python tests/support/upstream_cfgs.py CORPUS UPSTREAM`` (UPSTREAM: an upstream PyTorch-Kaldi
checkout) prints the table of ``docs/run_exp.md`` ("Upstream baseline cfgs"): for each cfg,
whether our runner loads it or the one line it stops with.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Iterator, Tuple

from pytorch_kaldi_snn.config.experiment import load_experiment
from pytorch_kaldi_snn.pipeline.inputs import check_paths
from pytorch_kaldi_snn.errors import ConfigError

FAMILIES = ("TIMIT_baselines", "Librispeech_baselines")
LOADS = "loads"


def upstream_cfgs(upstream: Path) -> list:
    return sorted(p for family in FAMILIES for p in (upstream / "cfg" / family).glob("*.cfg"))


def _part(data_name: str) -> str:
    name = data_name.lower()
    return "dev" if "dev" in name else "test" if "test" in name else "train"


def redirect(text: str, corpus: Path, out: Path) -> str:
    """The cfg with every input path of each dataset pointing at ``corpus`` (its part)."""
    def dataset(match: re.Match) -> str:
        block = match.group(0)
        part = _part(re.search(r"data_name\s*=\s*(\S+)", block).group(1))
        paths = {"fea_lst": corpus / "data" / part / "feats.scp",
                 "lab_folder": corpus / "exp" / f"mono_ali_{part}",
                 "lab_data_folder": corpus / "data" / part,
                 "lab_graph": corpus / "exp" / "mono" / "graph"}
        for key, path in paths.items():
            block = re.sub(rf"({key}\s*=\s*)\S+", lambda m: m.group(1) + str(path), block)
        return re.sub(r"quick_test/\S*", str(corpus / "data" / part / "cmvn_speaker.ark"), block)
    text = re.sub(r"^\[dataset\d+\][^\[]*", dataset, text, flags=re.M)
    return re.sub(r"^(out_folder\s*=\s*).*$", lambda m: m.group(1) + str(out), text, flags=re.M)


def outcome(cfg: Path, corpus: Path, tmp: Path, overrides: Tuple[str, ...] = ()) -> str:
    """``loads``, or the error line without the file name."""
    moved = tmp / cfg.name
    moved.write_text(redirect(cfg.read_text(), corpus, tmp / "out" / cfg.stem))
    try:
        check_paths(load_experiment(moved, overrides))
    except ConfigError as err:
        return str(err).replace(f"{moved}: ", "").replace(str(moved), cfg.name)
    return LOADS


# The built-in corpus's phones are TIMIT's 48, so its graph asks for an explicit scoring_fold.
FOLD = ("decoding.scoring_fold=48-39",)


def outcomes(upstream: Path, corpus: Path, tmp: Path) -> Iterator[Tuple[str, str, str]]:
    """Per cfg: its name, the outcome as it is, and with ``--set decoding.scoring_fold=48-39``."""
    for cfg in upstream_cfgs(upstream):
        yield (f"{cfg.parent.name}/{cfg.name}", outcome(cfg, corpus, tmp),
               outcome(cfg, corpus, tmp, FOLD))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(upstream: Path, corpus: Path, tmp: Path) -> str:
    rows = ["| upstream cfg | as it is | with `--set decoding.scoring_fold=48-39` |",
            "|---|---|---|"]
    rows += [f"| `{name}` | {_cell(plain)} | {_cell(folded)} |"
             for name, plain, folded in outcomes(upstream, corpus, tmp)]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        sys.stdout.write(table(Path(sys.argv[2]), Path(sys.argv[1]), Path(tmp)))
