"""OpenFst's binary ``FstHeader``: the start of every binary FST, graph or lattice. Read here,
written here for the vector FSTs the project makes, and the byte cursor that reads OpenFst
binaries (the header and the lattice bodies after it)."""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from pytorch_kaldi_snn.errors import DataError

FST_MAGIC = 2125659606  # OpenFst's kFstMagicNumber
VECTOR_VERSION = 2  # VectorFst's file version
_HAS_ISYMBOLS, _HAS_OSYMBOLS = 0x1, 0x2


@dataclass(frozen=True)
class FstHeader:
    """OpenFst's binary ``FstHeader``; ``size`` is its length in bytes."""

    fst_type: str
    arc_type: str
    version: int
    flags: int
    properties: int
    start: int
    num_states: int
    num_arcs: int
    size: int


class ByteCursor:
    """Reads little-endian ``struct`` fields one after another from ``data``, from byte ``pos``
    on; where ``data`` ends first it raises ``truncated(pos)``, the reader's own one line."""

    def __init__(self, data: bytes, pos: int, truncated: Callable[[int], DataError]) -> None:
        self.data, self.pos, self.truncated = data, pos, truncated

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise self.truncated(self.pos)
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values


def _read_string(cur: ByteCursor, error: Callable[[str], DataError]) -> str:
    (length,) = cur.take("<i")
    if length < 0 or length > 256:
        raise error(f"bad string length {length} in OpenFst header")
    return cur.take(f"<{length}s")[0].decode("ascii", "replace")


def read_fst_header(data: bytes, file: str | None, offset: int = 0, utt: str | None = None) -> FstHeader:
    """Parse an OpenFst binary header starting at ``offset``: of a graph ``file``, or of
    utterance ``utt``'s lattice in an archive (whose reader names the file). Errors name both;
    a truncation's byte is counted from ``offset``, the FST's first byte.

    Symbol tables are refused: Kaldi graphs and lattices never carry them.
    """
    def error(message: str) -> DataError:
        return DataError(message, file=file, utt=utt)

    where = " of the lattice" if utt else ""
    cur = ByteCursor(data, offset, lambda pos: error(f"truncated OpenFst header at byte {pos - offset}{where}"))
    if cur.take("<i")[0] != FST_MAGIC:
        raise error("not an OpenFst binary (bad magic number)")
    fst_type, arc_type = _read_string(cur, error), _read_string(cur, error)
    version, flags = cur.take("<ii")
    properties, start, num_states, num_arcs = cur.take("<Qqqq")
    if flags & (_HAS_ISYMBOLS | _HAS_OSYMBOLS):
        raise error("FSTs with embedded symbol tables are not supported")
    return FstHeader(fst_type, arc_type, version, flags, properties, start, num_states, num_arcs, cur.pos - offset)


def vector_fst_header(arc_type: str, properties: int, start: int, num_states: int) -> bytes:
    """The header OpenFst's ``VectorFst::WriteFst`` writes: no symbol tables, and ``num_arcs``
    0 (readers count the arcs state by state)."""
    def string(text: str) -> bytes:
        return struct.pack("<i", len(text)) + text.encode("ascii")

    return (struct.pack("<i", FST_MAGIC) + string("vector") + string(arc_type)
            + struct.pack("<iiQqqq", VECTOR_VERSION, 0, properties, start, num_states, 0))
