"""Kaldi's monophone HMM topology, and the kaldi-hmm-gmm objects built from it.

The topology is the one ``utils/prepare_lang.sh --num-sil-states 3`` writes (and the one in
tests/fixtures/kaldi_golden_decode/lang/topo): three emitting states per phone, left to right
with self-loops; silence gets the same three states with 0.5/0.5 transitions out of its
first two states. Three states for silence keep every phone at 3 pdfs, so
``num_pdfs == 3 * num_phones`` as in the golden system.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pytorch_kaldi_snn.kaldi_ports import kaldi_hmm_gmm as khg
from pytorch_kaldi_snn.kaldi_ports import kaldifst

NUM_STATES = 3  # emitting states per phone (the non-emitting final state is state 3)

# (self-loop prob, forward prob) of each emitting state, as gen_topo.pl writes them.
_NONSIL_PROBS = ((0.75, 0.25), (0.75, 0.25), (0.75, 0.25))
_SIL_PROBS = ((0.5, 0.5), (0.5, 0.5), (0.75, 0.25))


def _entry_lines(phones: Sequence[int], probs: Sequence[tuple[float, float]]) -> list[str]:
    """One ``<TopologyEntry>``."""
    lines = ["<TopologyEntry>", "<ForPhones>", " ".join(str(p) for p in phones), "</ForPhones>"]
    for state, (loop, forward) in enumerate(probs):
        lines.append(
            f"<State> {state} <PdfClass> {state} <Transition> {state} {loop:g} "
            f"<Transition> {state + 1} {forward:g} </State>"
        )
    lines.append(f"<State> {len(probs)} </State>")
    lines.append("</TopologyEntry>")
    return lines


def topology_text(nonsil_phones: Sequence[int], sil_phone: int) -> str:
    """The ``lang/topo`` file in Kaldi's text format (as ``utils/gen_topo.pl`` writes it)."""
    lines = ["<Topology>"]
    lines += _entry_lines(nonsil_phones, _NONSIL_PROBS)
    lines += _entry_lines([sil_phone], _SIL_PROBS)
    lines.append("</Topology>")
    return "\n".join(lines) + "\n"


def model_topology_text(topo_text: str) -> str:
    """``topo_text`` as ``HmmTopology::Write`` puts it inside a text ``final.mdl``.

    Kaldi writes every token followed by a space, so each line of a topo file gains a
    trailing space; the tokens and their order are those of the file.
    """
    return "".join(line.rstrip() + " \n" for line in topo_text.strip().splitlines())


@dataclass
class HmmSystem:
    """The monophone structures: topology, tree (context dependency) and transition model."""

    topo: khg.HmmTopology
    tree: khg.ContextDependency
    trans_model: khg.TransitionModel


def build_hmm_system(topo_text: str) -> HmmSystem:
    """Parse ``topo_text`` and build the monophone tree and the (untrained) transition model."""
    topo = khg.HmmTopology()
    topo.read(topo_text)
    tree = khg.monophone_context_dependency(
        phones=topo.phones, phone2num_pdf_classes=topo.get_phone_to_num_pdf_classes()
    )
    return HmmSystem(topo, tree, khg.TransitionModel(ctx_dep=tree, hmm_topo=topo))


def transition_tuples(trans_model: khg.TransitionModel) -> np.ndarray:
    """``(phone, hmm_state, forward_pdf, self_loop_pdf)`` per transition-state, shape (N, 4).

    The binding's tuple objects expose their fields only through their pickle state.
    """
    return np.array([t.__getstate__() for t in trans_model.tuples], dtype=np.int64).reshape(-1, 4)


def identity_lexicon_fst(phone_ids: Sequence[int], disambig_id: int | None = None) -> kaldifst.StdVectorFst:
    """L: one final state with a ``p:p`` loop per phone (and ``#0:#0`` for L_disambig)."""
    labels = list(phone_ids) + ([disambig_id] if disambig_id is not None else [])
    return kaldifst.compile("".join(f"0 0 {i} {i}\n" for i in labels) + "0\n")
