"""Reading Kaldi objects written by ``Write(os, binary)``: tokens, basic types and vectors.

Kaldi writes an object either in binary (the file starts with ``"\\0B"``; a basic type is a
one-byte size followed by the little-endian value, a token is its text followed by a space)
or in text (whitespace-separated words, vectors as ``[ 1 2 3 ]``). ``KaldiStream`` reads both
with one interface, so object readers (the transition model) are written once.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from pytorch_kaldi_snn.errors import DataError


class KaldiStream:
    """A cursor over the bytes of one Kaldi object file, binary or text."""

    def __init__(self, data: bytes, file: str) -> None:
        self.file = file
        self.binary = data.startswith(b"\0B")
        self._data = data
        self._pos = 2 if self.binary else 0

    @classmethod
    def open(cls, path: Path) -> "KaldiStream":
        """Read the whole file (models are small) and detect binary or text mode."""
        try:
            return cls(Path(path).read_bytes(), str(path))
        except OSError as err:
            raise DataError(f"cannot read Kaldi object: {err.strerror}", file=str(path)) from err

    def error(self, message: str) -> DataError:
        """A DataError naming the file and the byte offset, for malformed input."""
        return DataError(f"{message} (at byte {self._pos})", file=self.file)

    def _skip_space(self) -> None:
        while self._pos < len(self._data) and self._data[self._pos : self._pos + 1].isspace():
            self._pos += 1

    def _word(self) -> str:
        """The next whitespace-delimited word (text mode; also tokens in binary mode)."""
        self._skip_space()
        end = self._pos
        while end < len(self._data) and not self._data[end : end + 1].isspace():
            end += 1
        if end == self._pos:
            raise self.error("unexpected end of file")
        word = self._data[self._pos : end].decode("latin-1")
        # Kaldi's binary WriteToken puts exactly one space after the token.
        self._pos = end + 1 if self.binary else end
        return word

    def peek_token(self) -> str:
        """The next token, without consuming it."""
        pos = self._pos
        token = self._word()
        self._pos = pos
        return token

    def read_token(self) -> str:
        """Read one token such as ``<Topology>``."""
        return self._word()

    def expect_token(self, token: str) -> None:
        """Read a token and fail with a clear message if it is not ``token``."""
        got = self.read_token()
        if got != token:
            raise self.error(f"expected {token}, got {got}")

    def _take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise self.error("unexpected end of file")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def _binary_basic(self, fmt: str) -> float | int:
        size = self._take(1)[0]
        if size != struct.calcsize(fmt):
            raise self.error(f"basic type of size {size}, expected {struct.calcsize(fmt)}")
        return struct.unpack("<" + fmt, self._take(size))[0]

    def read_int(self) -> int:
        """Read an int32 written by ``WriteBasicType``."""
        if self.binary:
            return int(self._binary_basic("i"))
        word = self._word()
        try:
            return int(word)
        except ValueError:
            raise self.error(f"expected an integer, got {word!r}") from None

    def read_float(self) -> float:
        """Read a float written by ``WriteBasicType``."""
        if self.binary:
            return float(self._binary_basic("f"))
        word = self._word()
        try:
            return float(word)
        except ValueError:
            raise self.error(f"expected a number, got {word!r}") from None

    def _text_numbers(self, dtype: type) -> np.ndarray:
        """A text vector ``[ a b c ]`` as an array of ``dtype``."""
        self.expect_token("[")
        words = []
        while (word := self._word()) != "]":
            words.append(word)
        try:
            return np.array([dtype(w) for w in words], dtype=dtype)
        except ValueError:
            raise self.error("vector holds a non-number") from None

    def read_int_vector(self) -> np.ndarray:
        """Read a ``WriteIntegerVector`` of int32."""
        if not self.binary:
            return self._text_numbers(int).astype(np.int32)
        if self._take(1)[0] != 4:
            raise self.error("integer vector of non-int32 elements")
        (size,) = struct.unpack("<i", self._take(4))
        return np.frombuffer(self._take(4 * size), dtype="<i4").astype(np.int32)

    def read_float_vector(self) -> np.ndarray:
        """Read a ``Vector<float|double>`` (binary ``FV``/``DV``: float32/float64; text: float64)."""
        if not self.binary:
            return self._text_numbers(float)
        token = self.read_token()
        if token not in ("FV", "DV"):
            raise self.error(f"expected a vector (FV or DV), got {token}")
        size = self.read_int()
        dtype = "<f4" if token == "FV" else "<f8"
        width = 4 if token == "FV" else 8
        return np.frombuffer(self._take(width * size), dtype=dtype).astype(dtype[1:])
