"""HCLG for a monophone model, built with kaldifst + kaldi-hmm-gmm as ``utils/mkgraph.sh`` does.

Steps (mkgraph.sh's, with the pip ports):

1. LG = determinize_star(L_disambig o G) in the log semiring, then minimize_encoded;
2. CLG, ilabels = compose_context(context width 1): monophones need no real C;
3. Ha = make-h-transducer (transition scale 1.0), disambiguation symbols become tids;
4. HCLGa = determinize_star(Ha o CLG), disambiguation tids replaced by epsilon
   (``fstrmsymbols``), rmepsilon (for ``fstrmepslocal``), minimize_encoded;
5. HCLG = add_self_loops(self-loop scale 0.1, reorder).

Not done: mkgraph's ``fstpushspecial`` (weight pushing only changes where costs sit, not
path costs) and the stochasticity checks. The graph is written as an OpenFst VectorFst,
which Kaldi's decoders read like the ConstFst mkgraph writes.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from pytorch_kaldi_snn.graph.lang import write_fst
from pytorch_kaldi_snn.io.tables import read_symbol_table
from pytorch_kaldi_snn.io.tables import atomic_outputs
from pytorch_kaldi_snn.kaldi_ports import kaldi_hmm_gmm as khg
from pytorch_kaldi_snn.kaldi_ports import kaldifst

SELF_LOOP_SCALE = 0.1
TRANSITION_SCALE = 1.0


def _relabel_inputs_to_eps(fst: kaldifst.StdVectorFst, labels: set[int]) -> kaldifst.StdVectorFst:
    """``fstrmsymbols``: input labels in ``labels`` become epsilon (kaldifst has no relabel)."""
    lines = []
    for line in fst.to_str().splitlines():
        fields = line.split()
        if len(fields) >= 4 and int(fields[2]) in labels:
            fields[2] = "0"
        lines.append(" ".join(fields))
    return kaldifst.compile("\n".join(lines) + "\n")


def compose_lg(lang_test: Path) -> kaldifst.StdVectorFst:
    """det(L_disambig o G), minimized."""
    lexicon = kaldifst.StdVectorFst.read(str(Path(lang_test) / "L_disambig.fst"))
    grammar = kaldifst.StdVectorFst.read(str(Path(lang_test) / "G.fst"))
    kaldifst.arcsort(lexicon, sort_type="olabel")
    kaldifst.arcsort(grammar, sort_type="ilabel")
    lg = kaldifst.compose(lexicon, grammar)
    kaldifst.determinize_star(lg, use_log=True)
    kaldifst.minimize_encoded(lg)
    return lg


def make_hclg(
    lang_test: Path, tree: khg.ContextDependency, trans_model: khg.TransitionModel,
    self_loop_scale: float = SELF_LOOP_SCALE,
) -> tuple[kaldifst.StdVectorFst, list[int]]:
    """Build HCLG; return it and the disambiguation transition-ids that were removed."""
    disambig = [int(x) for x in (Path(lang_test) / "phones" / "disambig.int").read_text().split()]
    lg = compose_lg(lang_test)
    clg, ilabels = kaldifst.compose_context(
        disambig_syms=disambig, context_width=1, central_position=0, ifst=lg
    )
    kaldifst.arcsort(clg, sort_type="ilabel")
    ha, disambig_tids = khg.get_h_transducer(
        ilabel_info=ilabels, ctx_dep=tree, trans_model=trans_model,
        config=khg.HTransducerConfig(transition_scale=TRANSITION_SCALE),
    )
    kaldifst.arcsort(ha, sort_type="olabel")
    hclga = kaldifst.compose(ha, clg)
    kaldifst.determinize_star(hclga, use_log=True)
    hclga = _relabel_inputs_to_eps(hclga, set(disambig_tids))
    kaldifst.rmepsilon(hclga)
    kaldifst.minimize_encoded(hclga)
    hclg = khg.add_self_loops(
        self_loop_scale=self_loop_scale, disambig_syms=[], reorder=True,
        trans_model=trans_model, ifst=hclga,
    )
    kaldifst.arcsort(hclg, sort_type="ilabel")
    return hclg, list(disambig_tids)


def _copy(src: Path, dst: Path) -> None:
    with atomic_outputs(dst) as (temp,):
        shutil.copyfile(src, temp)


def write_graph_dir(
    graph_dir: Path, lang_test: Path, hclg: kaldifst.StdVectorFst, disambig_tids: list[int], num_pdfs: int
) -> None:
    """mkgraph.sh's output dir: HCLG.fst, words.txt, phones.txt, phones/, disambig_tid.int, num_pdfs."""
    graph_dir, lang_test = Path(graph_dir), Path(lang_test)
    graph_dir.mkdir(parents=True, exist_ok=True)
    for name in ("words.txt", "phones.txt"):
        read_symbol_table(lang_test / name)  # validates before copying
        _copy(lang_test / name, graph_dir / name)
    (graph_dir / "phones").mkdir(exist_ok=True)
    for name in ("align_lexicon.int", "align_lexicon.txt", "disambig.int", "disambig.txt",
                 "optional_silence.csl", "optional_silence.int", "optional_silence.txt", "silence.csl"):
        _copy(lang_test / "phones" / name, graph_dir / "phones" / name)
    for name, text in (("disambig_tid.int", "".join(f"{t}\n" for t in disambig_tids)), ("num_pdfs", f"{num_pdfs}\n")):
        with atomic_outputs(graph_dir / name) as (temp,):
            Path(temp).write_text(text, encoding="utf-8")
    write_fst(graph_dir / "HCLG.fst", hclg)
