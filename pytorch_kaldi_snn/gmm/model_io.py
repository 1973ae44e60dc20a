"""Write a monophone model as a Kaldi text ``final.mdl``, and rebuild its TransitionModel.

kaldi-hmm-gmm cannot write ``.mdl`` files, so :func:`write_model` serialises the
TransitionModel and the AmDiagGmm token by token exactly as Kaldi's ``TransitionModel::Write``
and ``AmDiagGmm::Write`` do in text mode (compare
tests/fixtures/kaldi_golden_decode/model/final.mdl.txt, written by ``gmm-copy --binary=false``).
Kaldi reads text and binary models alike, so ``gmm-copy``, ``show-transitions`` and
``latgen-faster-mapped`` accept the file. Floats are printed with 7 significant digits,
the precision Kaldi's text streams use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from pytorch_kaldi_snn.decoding.kaldi_stream import KaldiStream
from pytorch_kaldi_snn.decoding.transition_model import read_transition_model
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.gmm.topology import build_hmm_system, model_topology_text, transition_tuples
from pytorch_kaldi_snn.io.tables import atomic_outputs
from pytorch_kaldi_snn.kaldi_ports import kaldi_hmm_gmm as khg


def _num(value: float) -> str:
    return f"{float(value):.7g}"


def _vector(values: Iterable[float]) -> str:
    """Kaldi's ``VectorBase::Write`` in text mode: `` [ a b ... ]`` and a newline."""
    return " [ " + "".join(_num(v) + " " for v in values) + "]\n"


def _matrix(rows: np.ndarray) -> str:
    """Kaldi's ``MatrixBase::Write`` in text mode: one ``\\n  a b ...`` per row, then ``]``."""
    body = "".join("\n  " + "".join(_num(v) + " " for v in row) for row in rows)
    return " [" + body + "]\n"


def transition_model_text(trans_model: khg.TransitionModel, topo_text: str) -> str:
    """``<TransitionModel> ... </TransitionModel>`` for a plain-HMM model (``<Triples>``)."""
    tuples = transition_tuples(trans_model)
    if np.any(tuples[:, 2] != tuples[:, 3]):
        raise DataError("only plain HMMs (forward pdf == self-loop pdf) can be written as <Triples>")
    parts = ["<TransitionModel> \n", model_topology_text(topo_text), f"<Triples> {len(tuples)} \n"]
    parts += [f"{phone} {state} {pdf} \n" for phone, state, pdf, _ in tuples]
    parts += ["</Triples> \n", "<LogProbs> \n", _vector(trans_model.log_probs), "</LogProbs> \n"]
    parts.append("</TransitionModel> \n")
    return "".join(parts)


def _diag_gmm_text(gmm: khg.DiagGmm) -> str:
    # The binding's arrays are views into ``gmm``, which the caller keeps alive.
    return (
        "<DiagGMM> \n"
        + "<GCONSTS> " + _vector(gmm.gconsts)
        + "<WEIGHTS> " + _vector(gmm.weights)
        + "<MEANS_INVVARS> " + _matrix(np.asarray(gmm.means_invvars))
        + "<INV_VARS> " + _matrix(np.asarray(gmm.inv_vars))
        + "</DiagGMM> \n"
    )


def am_diag_gmm_text(am: khg.AmDiagGmm) -> str:
    """``AmDiagGmm::Write`` in text mode: dimension, pdf count, then one ``<DiagGMM>`` per pdf."""
    head = f"<DIMENSION> {am.dim} <NUMPDFS> {am.num_pdfs} "
    gmms = [am.get_pdf(i) for i in range(am.num_pdfs)]
    return head + "".join(_diag_gmm_text(gmm) for gmm in gmms)


def write_model(
    path: Path, trans_model: khg.TransitionModel, am: khg.AmDiagGmm, topo_text: str
) -> None:
    """Atomically write ``final.mdl`` (text) from the trained transition model and GMMs.

    ``topo_text`` is the lang dir's ``topo``, the topology the transition model was built from.
    """
    text = transition_model_text(trans_model, topo_text) + am_diag_gmm_text(am)
    with atomic_outputs(path) as (temp,):
        Path(temp).write_text(text, encoding="utf-8")


def load_trans_model(mdl: Path, topo_text: str) -> khg.TransitionModel:
    """A kaldi-hmm-gmm TransitionModel carrying the transition probabilities of ``mdl``.

    kaldi-hmm-gmm cannot read ``.mdl`` files, so the structure is rebuilt from ``topo_text``
    (the lang dir's ``topo``) and the log-probabilities read by the decoding package's reader
    are put in through the pickle state. The tuples must agree, which proves the topology
    matches the model.
    """
    read = read_transition_model(mdl)
    trans_model = build_hmm_system(topo_text).trans_model
    mine = transition_tuples(trans_model)
    if mine.shape != read.tuples.shape or not np.array_equal(mine, read.tuples):
        raise DataError("the model's transition-states do not match the lang dir's topo", file=str(mdl))
    state = list(trans_model.__getstate__())
    state[6] = [float(x) for x in read.log_probs]
    state[7] = [float(x) for x in _non_self_loop_log_probs(read.log_probs, read.is_self_loop, read.tid2state)]
    loaded = khg.TransitionModel.__new__(khg.TransitionModel)
    loaded.__setstate__(tuple(state))  # pybind11 restores state only into a fresh instance
    return loaded


def _non_self_loop_log_probs(log_probs: np.ndarray, is_self_loop: np.ndarray, tid2state: np.ndarray) -> np.ndarray:
    """Kaldi's ``ComputeDerivedOfProbs``: log(1 - p(self-loop)) per transition-state (1-based)."""
    out = np.zeros(int(tid2state.max()) + 1)
    loops = np.flatnonzero(is_self_loop)
    out[tid2state[loops]] = np.log1p(-np.exp(log_probs[loops]))
    return out


def read_am_diag_gmm(mdl: Path) -> khg.AmDiagGmm:
    """The GMMs of a text ``final.mdl`` (as :func:`write_model` or ``gmm-copy --binary=false``
    writes it), so that a trained model can align new data without retraining.

    kaldi-hmm-gmm cannot read models; the tokens after ``</TransitionModel>`` are parsed here.
    Means are ``MEANS_INVVARS / INV_VARS``, as ``DiagGmm::Read`` stores them.
    """
    ks = KaldiStream.open(Path(mdl))
    if ks.binary:
        raise DataError("binary model; write it as text with gmm-copy --binary=false", file=str(mdl))
    while ks.read_token() != "</TransitionModel>":
        pass
    ks.expect_token("<DIMENSION>")
    dim = ks.read_int()
    ks.expect_token("<NUMPDFS>")
    num_pdfs = ks.read_int()
    am = khg.AmDiagGmm()
    for _ in range(num_pdfs):
        am.add_pdf(_read_diag_gmm(ks, dim))
    return am


def _read_diag_gmm(ks: KaldiStream, dim: int) -> khg.DiagGmm:
    ks.expect_token("<DiagGMM>")
    ks.expect_token("<GCONSTS>")
    ks.read_float_vector()  # recomputed below from weights and variances
    ks.expect_token("<WEIGHTS>")
    weights = ks.read_float_vector()
    ks.expect_token("<MEANS_INVVARS>")
    means_invvars = ks.read_float_vector().reshape(len(weights), dim)
    ks.expect_token("<INV_VARS>")
    inv_vars = ks.read_float_vector().reshape(len(weights), dim)
    ks.expect_token("</DiagGMM>")
    gmm = khg.DiagGmm(nmix=len(weights), dim=dim)
    gmm.set_weights(weights.astype(np.float32))
    gmm.set_invvars_and_means(inv_vars.astype(np.float32), (means_invvars / inv_vars).astype(np.float32))
    gmm.compute_gconsts()
    return gmm
