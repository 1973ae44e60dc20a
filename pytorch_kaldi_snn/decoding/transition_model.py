"""The TransitionModel part of a Kaldi model file (``final.mdl``), binary or text.

A Kaldi acoustic model file starts with ``<TransitionModel>``: the HMM topology, one tuple
``(phone, hmm_state, forward_pdf[, self_loop_pdf])`` per transition-state (``<Triples>`` in
plain-HMM models, ``<Tuples>`` otherwise) and the transition log-probabilities indexed by
transition-id. This module reads that part and derives the maps that
``ali-to-pdf``/``ali-to-phones`` and ``DecodableMatrixScaledMapped`` use, following Kaldi's
``TransitionModel::ComputeDerived`` (transition-ids are numbered from 1, in order of
transition-state and then of the transitions leaving its HMM state). The acoustic model that
follows (e.g. ``<DIAGGMM>``) is not read: decoding from log-likelihoods does not need it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pytorch_kaldi_snn.decoding.kaldi_stream import KaldiStream
from pytorch_kaldi_snn.errors import DataError

NO_PDF = -1  # Kaldi's kNoPdf: the non-emitting final state of a topology entry


@dataclass(frozen=True)
class HmmState:
    """One state of a topology entry: pdf classes and ``(dst_state, prob)`` transitions."""

    forward_pdf_class: int
    self_loop_pdf_class: int
    transitions: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Topology:
    """Kaldi's HmmTopology: ``entries[phone2entry[phone]]`` is the HMM of ``phone``."""

    phones: tuple[int, ...]
    phone2entry: dict[int, int]
    entries: tuple[tuple[HmmState, ...], ...]

    def hmm_for(self, phone: int) -> tuple[HmmState, ...]:
        """The HMM (list of states) used by ``phone``."""
        return self.entries[self.phone2entry[phone]]


@dataclass(frozen=True)
class TransitionModel:
    """Kaldi's TransitionModel with its derived per-transition-id maps.

    Arrays indexed by transition-id have length ``num_tids + 1``; index 0 is unused (-1),
    as in Kaldi. ``tid2state`` is Kaldi's transition-state (``TransitionIdToTransitionState``,
    1-based), ``tid2hmm_state`` the HMM state inside the phone's topology entry.
    ``log_probs[tid]`` is the transition log-probability (``log_probs[0] == 0``).
    """

    topology: Topology
    tuples: np.ndarray  # (num_tstates, 4): phone, hmm_state, forward_pdf, self_loop_pdf
    log_probs: np.ndarray
    tid2pdf: np.ndarray
    tid2phone: np.ndarray
    tid2state: np.ndarray
    tid2hmm_state: np.ndarray
    is_self_loop: np.ndarray
    is_final: np.ndarray  # the transition enters the non-emitting final HMM state
    num_pdfs: int

    @property
    def num_tids(self) -> int:
        """Number of transition-ids (they run from 1 to ``num_tids``)."""
        return len(self.tid2pdf) - 1

    @property
    def num_tstates(self) -> int:
        """Number of transition-states."""
        return len(self.tuples)

    def _check_tids(self, alignment: np.ndarray) -> np.ndarray:
        ali = np.asarray(alignment, dtype=np.int64)
        bad = np.flatnonzero((ali < 1) | (ali > self.num_tids))
        if bad.size:
            raise DataError(f"transition-id {ali[bad[0]]} at frame {bad[0]} is out of range "
                            f"1..{self.num_tids} of the model")
        return ali

    def ali_to_pdf(self, alignment: np.ndarray) -> np.ndarray:
        """Per-frame pdf-ids, as Kaldi's ``ali-to-pdf``."""
        return self.tid2pdf[self._check_tids(alignment)]

    def ali_to_phones_per_frame(self, alignment: np.ndarray) -> np.ndarray:
        """Per-frame phones, as Kaldi's ``ali-to-phones --per-frame=true``."""
        return self.tid2phone[self._check_tids(alignment)]

    def ali_to_phone_seq(self, alignment: np.ndarray) -> list[int]:
        """The phone sequence, as Kaldi's ``ali-to-phones`` (handles reordered alignments).

        A phone ends after its final transition and any self-loops of the same
        transition-state that follow it (``--reorder=true``, Kaldi's default, puts the last
        state's self-loops after its forward transition).
        """
        ali = self._check_tids(alignment)
        phones: list[int] = []
        ended_in: int | None = None  # transition-state whose final transition was seen
        for i, tid in enumerate(ali):
            continues = ended_in is not None and self.is_self_loop[tid] and self.tid2state[tid] == ended_in
            if i == 0 or (ended_in is not None and not continues):
                phones.append(int(self.tid2phone[tid]))
                ended_in = None
            if self.is_final[tid]:
                ended_in = int(self.tid2state[tid])
        return phones


def _read_hmm_state_text(ks: KaldiStream, expected_index: int) -> HmmState:
    """One ``<State> n [<PdfClass> p | <ForwardPdfClass> f <SelfLoopPdfClass> s] ...``."""
    index = ks.read_int()
    if index != expected_index:
        raise ks.error(f"topology states must be numbered in order: expected {expected_index}, got {index}")
    forward = self_loop = NO_PDF
    token = ks.read_token()
    if token == "<PdfClass>":
        forward = self_loop = ks.read_int()
        token = ks.read_token()
    elif token == "<ForwardPdfClass>":
        forward = ks.read_int()
        ks.expect_token("<SelfLoopPdfClass>")
        self_loop = ks.read_int()
        token = ks.read_token()
    transitions = []
    while token == "<Transition>":
        transitions.append((ks.read_int(), ks.read_float()))
        token = ks.read_token()
    if token != "</State>":
        raise ks.error(f"expected </State>, got {token}")
    return HmmState(forward, self_loop, tuple(transitions))


def _read_topology_text(ks: KaldiStream) -> Topology:
    phone2entry: dict[int, int] = {}
    entries: list[tuple[HmmState, ...]] = []
    while (token := ks.read_token()) != "</Topology>":
        if token != "<TopologyEntry>":
            raise ks.error(f"expected <TopologyEntry> or </Topology>, got {token}")
        ks.expect_token("<ForPhones>")
        while (word := ks.read_token()) != "</ForPhones>":
            if not word.isdigit() or int(word) in phone2entry:
                raise ks.error(f"bad or repeated phone {word!r} in <ForPhones>")
            phone2entry[int(word)] = len(entries)
        states: list[HmmState] = []
        while (token := ks.read_token()) != "</TopologyEntry>":
            if token != "<State>":
                raise ks.error(f"expected <State>, got {token}")
            states.append(_read_hmm_state_text(ks, len(states)))
        entries.append(tuple(states))
    return Topology(tuple(sorted(phone2entry)), phone2entry, tuple(entries))


def _read_topology_binary(ks: KaldiStream) -> Topology:
    phones = ks.read_int_vector()
    phone2idx = ks.read_int_vector()
    num_entries = ks.read_int()
    is_hmm = num_entries != -1  # -1 flags the format with separate self-loop pdf classes
    if not is_hmm:
        num_entries = ks.read_int()
    entries = []
    for _ in range(num_entries):
        states = []
        for _ in range(ks.read_int()):
            forward = ks.read_int()
            self_loop = forward if is_hmm else ks.read_int()
            transitions = tuple((ks.read_int(), ks.read_float()) for _ in range(ks.read_int()))
            states.append(HmmState(forward, self_loop, transitions))
        entries.append(tuple(states))
    ks.expect_token("</Topology>")
    phone2entry = {int(p): int(phone2idx[p]) for p in phones}
    return Topology(tuple(int(p) for p in phones), phone2entry, tuple(entries))


def _read_tuples(ks: KaldiStream) -> np.ndarray:
    token = ks.read_token()
    if token not in ("<Triples>", "<Tuples>"):
        raise ks.error(f"expected <Triples> or <Tuples>, got {token}")
    rows = []
    for _ in range(ks.read_int()):
        phone, hmm_state, forward = ks.read_int(), ks.read_int(), ks.read_int()
        self_loop = ks.read_int() if token == "<Tuples>" else forward
        rows.append((phone, hmm_state, forward, self_loop))
    ks.expect_token("</" + token[1:])
    return np.array(rows, dtype=np.int32).reshape(-1, 4)


def _derive(topology: Topology, tuples: np.ndarray, log_probs: np.ndarray, file: str) -> TransitionModel:
    """Kaldi's ComputeDerived: number the transition-ids and map each to pdf/phone/state."""
    pdf, phone, tstate, hmm_state, self_loop, final = ([-1] for _ in range(6))
    for ts, (ph, hs, fwd_pdf, loop_pdf) in enumerate(tuples.tolist(), start=1):
        if ph not in topology.phone2entry or hs >= len(topology.hmm_for(ph)):
            raise DataError(f"transition-state {ts} names phone {ph} state {hs} not in the topology", file=file)
        hmm = topology.hmm_for(ph)
        for dst, _prob in hmm[hs].transitions:
            loop = dst == hs
            pdf.append(loop_pdf if loop else fwd_pdf)
            phone.append(ph)
            tstate.append(ts)
            hmm_state.append(hs)
            self_loop.append(loop)
            final.append(dst == len(hmm) - 1)
    if len(log_probs) != len(pdf):
        raise DataError(f"<LogProbs> has {len(log_probs)} entries, expected {len(pdf)} (transition-ids + 1)", file=file)

    def frozen(values: list, dtype: type) -> np.ndarray:
        arr = np.array(values, dtype=dtype)
        arr.flags.writeable = False
        return arr

    log_probs.flags.writeable = False
    tuples.flags.writeable = False
    return TransitionModel(
        topology=topology,
        tuples=tuples,
        log_probs=log_probs,
        tid2pdf=frozen(pdf, np.int32),
        tid2phone=frozen(phone, np.int32),
        tid2state=frozen(tstate, np.int32),
        tid2hmm_state=frozen(hmm_state, np.int32),
        is_self_loop=frozen([False] + self_loop[1:], bool),
        is_final=frozen([False] + final[1:], bool),
        num_pdfs=int(tuples[:, 2:].max()) + 1 if len(tuples) else 0,
    )


def read_transition_model(path: Path | str) -> TransitionModel:
    """Read the TransitionModel at the start of a Kaldi model file (binary or text).

    Works on ``final.mdl`` (binary or ``gmm-copy --binary=false``), on
    ``copy-transition-model`` output and on any file that starts with ``<TransitionModel>``.
    Raises DataError naming the file and byte offset when the file is not such a model.
    """
    ks = KaldiStream.open(Path(path))
    ks.expect_token("<TransitionModel>")
    ks.expect_token("<Topology>")
    topology = _read_topology_binary(ks) if ks.binary else _read_topology_text(ks)
    tuples = _read_tuples(ks)
    ks.expect_token("<LogProbs>")
    log_probs = ks.read_float_vector().astype(np.float32)  # Kaldi's BaseFloat
    ks.expect_token("</LogProbs>")
    ks.expect_token("</TransitionModel>")
    return _derive(topology, tuples, log_probs, ks.file)
