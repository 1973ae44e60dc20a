"""``python -m pytorch_kaldi_snn.config.upstream_forward CFG -o FORWARD.cfg``: upstream's CPU forward.

Upstream PyTorch-Kaldi's own test forward fails on CPU after training (``run_exp.py:475``,
``TypeError: expected np.ndarray (got NoneType)``): ``read_lab_fea_refac01`` sets ``fea_only``
only inside ``_read_from_config``, so on CPU the forward data stay ``None``, with ``run_nn`` and
``run_nn_refac01`` alike. Without patching upstream, a second run of ``run_exp.py`` in its
*production* mode forwards and decodes: the forward set has ``lab_name=none``, upstream then
loads ``<out_folder>/exp_files/final_<arch>.pkl`` of the first run and skips training. This
command writes that second cfg from the (localized) cfg of the first run:

* ``[exp] run_nn_script = run_nn_refac01`` (the reader that supports production mode);
* the ``forward_with`` dataset's ``lab`` becomes ``lab_name=none`` with its ``lab_data_folder``
  and ``lab_graph`` (upstream decodes with ``<lab_graph>/..`` as the model dir);
* ``N_out_<lab>`` is replaced by the number of pdfs, read from the first run's count file, which
  becomes ``[forward] normalize_with_counts_from`` (production mode cannot count alignments).
"""
from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.config.reading import read_cfg
from pytorch_kaldi_snn.config.localize import render
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.io.atomic import atomic_write

PRODUCTION_READER = "run_nn_refac01"


def count_file(parser: configparser.ConfigParser) -> Path:
    """The count file upstream's first run wrote for ``normalize_with_counts_from``."""
    forward = parser["forward"]
    out_folder = Path(parser["exp"]["out_folder"])
    name = f"forward_{forward['forward_out']}_{forward['normalize_with_counts_from']}.count"
    path = out_folder / "exp_files" / name
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: run upstream's run_exp.py on this cfg first",
                          section="forward", key="normalize_with_counts_from")
    return path


def n_pdfs(counts: Path) -> int:
    """Entries of a Kaldi text vector ``[ c1 c2 ... ]`` (what analyze-counts writes)."""
    match = re.fullmatch(r"\s*\[([^\]]*)\]\s*", counts.read_text())
    if not match or not match.group(1).split():
        raise ConfigError(f"{counts} is not a Kaldi text vector", section="forward",
                          key="normalize_with_counts_from")
    return len(match.group(1).split())


def _forward_section(parser: configparser.ConfigParser) -> str:
    name = parser["data_use"]["forward_with"]
    for section in parser.sections():
        if section.startswith("dataset") and parser[section].get("data_name") == name:
            return section
    raise ConfigError(f"no [datasetN] has data_name = {name}", section="data_use",
                      key="forward_with")


def _first_block_value(lab: str, key: str, section: str) -> str:
    match = re.search(rf"^\s*{key}=(.*)$", lab, flags=re.M)
    if not match:
        raise ConfigError(f"lab has no {key}=", section=section, key="lab")
    return match.group(1).strip()


def production(parser: configparser.ConfigParser) -> configparser.ConfigParser:
    """Rewrite the first run's cfg into the production-mode forward cfg (see module doc)."""
    counts = count_file(parser)
    lab_name = parser["forward"]["normalize_with_counts_from"]
    section = _forward_section(parser)
    lab = parser[section]["lab"]
    parser.set(section, "lab", "\n".join([
        "lab_name=none",
        f"lab_data_folder={_first_block_value(lab, 'lab_data_folder', section)}",
        f"lab_graph={_first_block_value(lab, 'lab_graph', section)}"]))
    parser.set("exp", "run_nn_script", PRODUCTION_READER)
    parser.set("forward", "normalize_with_counts_from", str(counts))
    pattern, dim = f"N_out_{lab_name}", str(n_pdfs(counts))
    for name in parser.sections():
        for key, value in parser[name].items():
            if pattern in value:
                parser.set(name, key, value.replace(pattern, dim))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = command_parser(
        "pytorch_kaldi_snn.config.upstream_forward",
        "Write the production-mode cfg that makes upstream's run_exp.py forward and decode on CPU "
        "with the models of a finished run of CFG.")
    args.add_argument("cfg", type=Path, help="the localized cfg upstream trained with")
    args.add_argument("-o", "--output", type=Path, required=True, help="the forward cfg to write")
    ns = args.parse_args(argv)

    def action() -> None:
        try:
            parser = production(read_cfg(ns.cfg))
        except ConfigError as err:
            raise err.with_file(str(ns.cfg)) from None
        text = render(parser, ns.cfg).replace("localize", "upstream_forward", 1)
        atomic_write(ns.output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return run_reporting_errors("upstream_forward", action)


if __name__ == "__main__":
    sys.exit(main())
