"""Recipe step: ``utils/mkgraph.sh <lang-test> <model-dir> <graph-dir>`` for a monophone model::

    python -m pytorch_kaldi_snn.graph.mkgraph data/lang_test_bg exp/mono exp/mono/graph

Reads ``<model-dir>/final.mdl`` (its transition probabilities go into H and the self-loops)
and writes ``HCLG.fst``, ``words.txt``, ``phones.txt``, ``phones/``, ``disambig_tid.int``
and ``num_pdfs`` to the graph dir.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.gmm.model_io import load_trans_model
from pytorch_kaldi_snn.gmm.topology import build_hmm_system
from pytorch_kaldi_snn.graph.hclg import SELF_LOOP_SCALE, make_hclg, write_graph_dir


def mkgraph(lang_test: Path, model_dir: Path, graph_dir: Path, self_loop_scale: float = SELF_LOOP_SCALE) -> None:
    """Build HCLG for ``model_dir/final.mdl`` over ``lang_test`` and write the graph dir."""
    topo_text = (Path(lang_test) / "topo").read_text(encoding="utf-8")
    trans_model = load_trans_model(Path(model_dir) / "final.mdl", topo_text)
    tree = build_hmm_system(topo_text).tree
    hclg, disambig_tids = make_hclg(lang_test, tree, trans_model, self_loop_scale)
    write_graph_dir(graph_dir, lang_test, hclg, disambig_tids, trans_model.num_pdfs)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.graph.mkgraph", __doc__)
    parser.add_argument("lang_test", type=Path, help="lang dir with G.fst")
    parser.add_argument("model_dir", type=Path, help="dir with final.mdl")
    parser.add_argument("graph_dir", type=Path, help="graph dir to write (HCLG.fst, words.txt, ...)")
    parser.add_argument("--self-loop-scale", type=float, default=SELF_LOOP_SCALE,
                        help="scale of the self-loop transition probabilities")
    args = parser.parse_args(argv)
    return run_reporting_errors(
        "mkgraph", lambda: mkgraph(args.lang_test, args.model_dir, args.graph_dir, args.self_loop_scale))


if __name__ == "__main__":
    sys.exit(main())
