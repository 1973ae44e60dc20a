"""OpenFst's binary ``FstHeader``: the start of every binary FST, graph or lattice."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from pytorch_kaldi_snn.errors import DataError

FST_MAGIC = 2125659606  # OpenFst's kFstMagicNumber
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


class _Cursor:
    def __init__(self, data: bytes, pos: int, file: str) -> None:
        self.data, self.pos, self.file = data, pos, file

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise DataError(f"truncated OpenFst binary at byte {self.pos}", file=self.file)
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def string(self) -> str:
        (length,) = self.unpack("<i")
        if length < 0 or length > 256:
            raise DataError(f"bad string length {length} in OpenFst header", file=self.file)
        return self.unpack(f"<{length}s")[0].decode("ascii", "replace")


def read_fst_header(data: bytes, file: str, offset: int = 0) -> FstHeader:
    """Parse an OpenFst binary header starting at ``offset``.

    Symbol tables are refused: Kaldi graphs and lattices never carry them.
    """
    cur = _Cursor(data, offset, file)
    if cur.unpack("<i")[0] != FST_MAGIC:
        raise DataError("not an OpenFst binary (bad magic number)", file=file)
    fst_type, arc_type = cur.string(), cur.string()
    version, flags = cur.unpack("<ii")
    properties, start, num_states, num_arcs = cur.unpack("<Qqqq")
    if flags & (_HAS_ISYMBOLS | _HAS_OSYMBOLS):
        raise DataError("FSTs with embedded symbol tables are not supported", file=file)
    return FstHeader(fst_type, arc_type, version, flags, properties, start, num_states, num_arcs, cur.pos - offset)
