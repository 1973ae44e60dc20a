"""Loading a decoding graph (``HCLG.fst``) for the pip decoders.

``utils/mkgraph.sh`` writes HCLG as an OpenFst *const* FST (``fstconvert --fst_type=const``),
but kaldifst 1.7.17 cannot read that type: ``StdConstFst.read`` fails with "Unknown FST type
const" (its registry only holds vector FSTs). So a const FST is parsed here from OpenFst's
binary layout (``FstHeader`` + ``ConstState[num_states]`` + ``StdArc[num_arcs]``), rewritten
with numpy into the *vector* binary layout in one pass and parsed by kaldifst's C++ reader
(``StdVectorFst.read``): no Python call per arc, so a word HCLG of millions of arcs loads in
about the time of reading the file. A vector FST is read by kaldifst itself. Both keep every
state number, label and weight (checked against ``fstprint`` output and against a per-arc
rebuild in the tests).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.fst_header import FstHeader, read_fst_header, vector_fst_header
from pytorch_kaldi_snn.kaldi_ports import kaldifst

_IS_ALIGNED = 0x4
_ALIGNMENT = 16  # OpenFst's kArchAlignment for aligned const FSTs
_MUTABLE = 0x2  # OpenFst's kMutable property bit
_CONST_STATE = np.dtype(
    [("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("niepsilons", "<u4"), ("noepsilons", "<u4")]
)
_STD_ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"), ("nextstate", "<i4")])


def const_arrays(data: bytes, header: FstHeader, file: str) -> tuple[np.ndarray, np.ndarray]:
    """The ConstState and arc arrays that follow a const FST header."""
    pos = header.size

    def align(p: int) -> int:
        return -(-p // _ALIGNMENT) * _ALIGNMENT if header.flags & _IS_ALIGNED else p

    pos = align(pos)
    states_end = pos + header.num_states * _CONST_STATE.itemsize
    arcs_pos = align(states_end)
    arcs_end = arcs_pos + header.num_arcs * _STD_ARC.itemsize
    if arcs_end > len(data):
        raise DataError(f"truncated const FST: needs {arcs_end} bytes, has {len(data)}", file=file)
    states = np.frombuffer(data, _CONST_STATE, header.num_states, pos)
    arcs = np.frombuffer(data, _STD_ARC, header.num_arcs, arcs_pos)
    return states, arcs


def const_to_vector_bytes(data: bytes, header: FstHeader, file: str) -> bytes:
    """The same FST in OpenFst's *vector* binary layout, built with numpy in one pass.

    A vector FST stores, per state, ``float final, int64 narcs`` then its ``StdArc``s; all
    fields are 4-byte words, so state ``s`` starts at word ``3 s + 4 pos[s]`` when the const
    FST's arcs are stored in state order (``pos`` = running sum of ``narcs``, as OpenFst writes).
    """
    states, arcs = const_arrays(data, header, file)
    narcs = states["narcs"].astype(np.int64)
    pos = np.concatenate(([0], np.cumsum(narcs)[:-1])) if len(narcs) else narcs
    if not np.array_equal(states["pos"], pos) or int(narcs.sum()) != header.num_arcs:
        raise DataError("const FST arcs are not stored in state order", file=file)
    words = np.zeros(3 * header.num_states + 4 * header.num_arcs, np.uint32)
    state_word = 3 * np.arange(header.num_states, dtype=np.int64) + 4 * pos
    words[state_word] = states["final"].view(np.uint32)
    words[state_word + 1] = (narcs & 0xFFFFFFFF).astype(np.uint32)
    words[state_word + 2] = (narcs >> 32).astype(np.uint32)
    owner = np.repeat(np.arange(header.num_states, dtype=np.int64), narcs)
    arc_word = 3 * (owner + 1) + 4 * np.arange(header.num_arcs, dtype=np.int64)
    for field, column in enumerate(("ilabel", "olabel", "weight", "nextstate")):
        words[arc_word + field] = arcs[column].view(np.uint32)
    # a vector FST is mutable; the const FST's other properties stay true
    vector = vector_fst_header(header.arc_type, header.properties | _MUTABLE, header.start, header.num_states)
    return vector + words.astype("<u4", copy=False).tobytes()


def _read_vector(path: str, file: str) -> "kaldifst.StdVectorFst":
    fst = kaldifst.StdVectorFst.read(path)
    if fst is None:
        raise DataError("kaldifst could not read the vector FST", file=file)
    return fst


def _const_to_vector(data: bytes, header: FstHeader, file: str) -> "kaldifst.StdVectorFst":
    """Rebuild a const FST as a StdVectorFst: numpy writes the vector layout, kaldifst parses it."""
    with tempfile.TemporaryDirectory(prefix="hclg-") as tmp:
        vector = Path(tmp) / "HCLG.vector.fst"
        vector.write_bytes(const_to_vector_bytes(data, header, file))
        return _read_vector(str(vector), file)


def load_graph(path: Path | str) -> "kaldifst.StdVectorFst":
    """Load ``HCLG.fst`` (OpenFst binary, const or vector, standard arcs) for decoding.

    Returns a ``kaldifst.StdVectorFst`` that kaldi-hmm-gmm and kaldi-decoder accept.
    Raises DataError for a missing file, another arc type or a malformed binary.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read graph: {err.strerror}", file=str(path)) from err
    header = read_fst_header(data, str(path))
    if header.arc_type != "standard":
        raise DataError(f"graph arc type is {header.arc_type!r}, expected 'standard'", file=str(path))
    if header.fst_type == "const":
        return _const_to_vector(data, header, str(path))
    if header.fst_type == "vector":
        return _read_vector(str(path), str(path))
    raise DataError(f"unsupported FST type {header.fst_type!r} (expected const or vector)", file=str(path))
