"""Kaldi table I/O: float/double/compressed matrices and int vectors, read and written
through kaldi-native-io, which wraps Kaldi's own C++ table code.

Why kaldi-native-io and not kaldiio: on ``kaldi_golden_decode/test/raw_mfcc_compressed.ark``
kaldi-native-io decompresses ``CM`` matrices bit-exactly as Kaldi's ``copy-feats`` did
(max |diff| 0.0 against ``raw_mfcc.ark``) while kaldiio 2.18.1 is off by up to 2.29e-5.
Both pip readers say nothing when an input pipe fails; kaldi-native-io's low-level
``close()`` reports it, so every reader here checks it and raises :class:`DataError`.

Any Kaldi rspecifier works (``ark:``, ``scp:`` with ``file.ark:offset[rows]`` entries,
``ark:cmd |`` pipes, ``ark,t:``); a plain path is turned into one by :func:`as_rspecifier`.
"""
from __future__ import annotations

import codecs
import errno
import os
import re
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import (
    Any, Callable, ContextManager, Iterable, Iterator, Mapping, Optional, Tuple, Type, Union,
)

import kaldi_native_io as kio
import numpy as np

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.atomic import atomic_outputs
from pytorch_kaldi_snn.io.chatter import captured_stderr

PathLike = Union[str, os.PathLike]
_TABLE_PREFIX = re.compile(r"^(ark|scp)(,[a-z]+)*:")
_SCP_IN_SPEC = re.compile(r"(?:^|\s)scp(?:,[a-z]+)*:([^\s'\"|]+)")  # scp:x.scp, also inside a pipe
# Kaldi's copy-feats --compress=true default (--compression-method=1).
COMPRESSION = kio.CompressionMethod.kAutomaticMethod


def as_rspecifier(source: PathLike) -> str:
    """Turn a path into a Kaldi rspecifier; rspecifiers pass through unchanged.

    ``x.scp`` -> ``scp:x.scp``; ``x.gz`` -> ``ark:gunzip -c -- x.gz |``; ``cmd |`` -> ``ark:cmd |``;
    anything else -> ``ark:x``. Kaldi detects binary versus text per object, so text arks
    (``copy-int-vector ... ark,t:``) need no ``,t``. A missing file raises :class:`DataError`.
    """
    text = os.fspath(source)
    if _TABLE_PREFIX.match(text):
        return text
    if text.rstrip().endswith("|"):
        return f"ark:{text}"
    if not Path(text).is_file():
        raise DataError("no such file", file=text)
    if text.endswith(".gz"):
        return f"ark:gunzip -c -- {shlex.quote(text)} |"  # --: a path may start with '-'
    if text.endswith(".scp"):
        return f"scp:{text}"
    return f"ark:{text}"


def _read_table(
    reader_type: Type[Any], source: PathLike, convert: Callable[[Any], Any]
) -> Iterator[Tuple[str, Any]]:
    """Yield ``(key, convert(value))`` and raise if the table or its pipe failed."""
    rspecifier = as_rspecifier(source)
    try:
        reader = reader_type(rspecifier)
    except RuntimeError as err:
        raise DataError(f"cannot open table ({_last_line(err)})", file=rspecifier) from None
    key = None
    finished = False
    try:
        for key, value in reader:
            # Values are views into buffers the reader reuses on next(): copy them.
            yield key, convert(value)
        finished = True
    except RuntimeError as err:
        raise _failed(rspecifier, key, _last_line(err)) from None
    finally:
        if not finished:  # abandoned or failed: close the pipe now, not at garbage collection
            reader._impl.close()
    # The wrapper's close() drops Kaldi's status; the low-level one is False when a pipe
    # command exited non-zero or the archive ended in a broken object.
    if not reader._impl.close():
        raise _failed(rspecifier, key, "pipe exit status or corrupt archive")


def _failed(rspecifier: str, last_good: Optional[str], reason: str) -> DataError:
    """Name the entry that failed: the scp line after the last good key, with its offset.

    The reader only reports the last key it read; when the table (or the command feeding the
    pipe) reads an scp, the broken entry is the next line of that scp, and the error names
    that scp rather than the whole pipe.
    """
    scp = _SCP_IN_SPEC.search(rspecifier)
    file = scp.group(1) if scp and not rspecifier.startswith("scp") else rspecifier
    entry = _entry_after(rspecifier, last_good)
    if entry is not None:
        utt, location = entry
        if location in reason:  # Kaldi's own line only repeats the location
            reason = "a missing, truncated or corrupt record, a wrong offset or a failing command"
        return DataError(f"read failed at {location} ({reason})", file=file, utt=utt)
    where = f"after {last_good}" if last_good is not None else "before the first item"
    return DataError(f"read failed {where} ({reason})", file=file)


def _entry_after(rspecifier: str, last_good: Optional[str]) -> Optional[Tuple[str, str]]:
    """``(utt, location)`` of the scp line after ``last_good``, if the source is an scp."""
    match = _SCP_IN_SPEC.search(rspecifier)
    if match is None:
        return None
    try:
        lines = Path(match.group(1)).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    entries = [line.split(maxsplit=1) for line in lines if line.strip()]
    keys = [e[0] for e in entries]
    index = 0 if last_good is None else keys.index(last_good) + 1 if last_good in keys else None
    if index is None or index >= len(entries) or len(entries[index]) < 2:
        return None
    return entries[index][0], entries[index][1]


_PERMISSIVE_HINT = re.compile(r"\s*\(to suppress this error, add the permissive.*$")


def _last_line(err: Exception) -> str:
    """Kaldi's final ``[E]`` line without its level tag and its hint about ``p,`` options."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    return _PERMISSIVE_HINT.sub("", last.removeprefix("[E] ")).strip()


def read_matrices(source: PathLike) -> Iterator[Tuple[str, np.ndarray]]:
    """Float matrices (``FM``, ``CM``/``CM2``/``CM3`` decompressed exactly as Kaldi does)."""
    return _read_table(kio.SequentialFloatMatrixReader, source, lambda v: np.array(v, np.float32))


def read_double_matrices(source: PathLike) -> Iterator[Tuple[str, np.ndarray]]:
    """Double matrices (``DM``), e.g. CMVN stats from ``compute-cmvn-stats``."""
    return _read_table(kio.SequentialDoubleMatrixReader, source, lambda v: np.array(v, np.float64))


def read_int_vectors(source: PathLike) -> Iterator[Tuple[str, np.ndarray]]:
    """Int vectors (alignments): binary or text arks, ``ali.*.gz``, scp or pipes -> int32."""
    return _read_table(kio.SequentialInt32VectorReader, source, lambda v: np.asarray(v, np.int32))


def read_waves(source: PathLike) -> Iterator[Tuple[str, Tuple[float, np.ndarray]]]:
    """Audio through Kaldi's wave reader (``scp:wav.scp`` entries may be ``cmd |`` pipes).

    Yields ``(utt, (sample_rate, samples))`` with samples ``(channels, n)`` float32 at int16
    scale, as Kaldi's ``WaveData`` holds them.
    """
    return _read_table(
        kio.SequentialWaveReader, source, lambda w: (w.sample_freq, np.array(w.data.numpy(), np.float32))
    )


def read_tokens(source: PathLike) -> Iterator[Tuple[str, str]]:
    """One token per key (``utt2spk`` as an rspecifier such as ``ark:data/utt2spk``)."""
    return _read_table(kio.SequentialTokenReader, source, str)


class NotUtf8(ValueError):
    """Text that is not UTF-8; the message says where (line, byte, offset)."""


def decode_utf8(data: bytes) -> str:
    """``data`` as UTF-8 text, or :class:`NotUtf8` naming the first bad byte and its line (the
    caller adds the file and what to do)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise NotUtf8(f"line {line}: byte 0x{data[err.start]:02x} at offset {err.start} is not "
                      "UTF-8") from None


def read_table_lines(path: PathLike) -> list[str]:
    """The lines of a text table a user may have written (a data-dir file, ali.txt, a ctm).

    Kaldi reads keys as bytes, so a byte-order mark would become an invisible part of a key
    (``\ufeffu1``): instead of stripping it here and leaving Kaldi's binaries to misread the
    same file later, a table holding one is refused by name, as is one that is not UTF-8.
    """
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as err:
        raise DataError(f"cannot read ({err.strerror})", file=name) from None
    try:
        text = decode_utf8(data)
    except NotUtf8 as err:
        raise DataError(f"{err}; save it as UTF-8", file=name) from None
    if data.startswith(codecs.BOM_UTF8):
        raise DataError("starts with a UTF-8 byte-order mark (BOM); save it without one", file=name)
    if "\ufeff" in text:
        line = text[:text.index("\ufeff")].count("\n") + 1
        raise DataError(f"line {line}: holds a UTF-8 byte-order mark (BOM, invisible; files joined "
                        "with cat?); remove it", file=name)
    return text.splitlines()


def read_kaldi_map(path: PathLike, allow_empty: bool = False) -> dict[str, str]:
    """Read a ``key rest-of-line`` file (utt2spk, spk2utt, wav.scp, text, utt2num_frames).

    Values keep their inner spaces (``wav.scp`` pipes, ``text`` transcripts); split them
    yourself for ``spk2utt``. Duplicate keys or a key without a value (unless
    ``allow_empty``, e.g. for an empty transcript) raise :class:`DataError`, and so does a
    byte-order mark (:func:`read_table_lines`).
    """
    name = os.fspath(path)
    lines = read_table_lines(name)
    table: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        fields = line.strip().split(maxsplit=1)
        if not fields:
            raise DataError(f"line {number} is empty", file=name)
        key, value = fields[0], fields[1] if len(fields) > 1 else ""
        if key in table:
            raise DataError(f"line {number}: duplicate key", file=name, utt=key)
        if not value and not allow_empty:
            raise DataError(f"line {number}: key has no value", file=name, utt=key)
        table[key] = value
    return table


def write_kaldi_map(path: PathLike, table: Mapping[str, object]) -> None:
    """Write ``key value`` lines (utt2num_frames, scp, utt2spk) atomically, in the given order."""
    with atomic_outputs(path) as (temp,):
        Path(temp).write_text("".join(f"{key} {value}\n" for key, value in table.items()), "utf-8")


def _write_ark(
    path_ark: PathLike,
    path_scp: Optional[PathLike],
    text: bool,
    writer_type: Type[Any],
    items: Iterable[Tuple[str, Any]],
    write: Callable[[Any, str, Any], None],
) -> int:
    """Write a table to ``path_ark`` (+ ``path_scp``) atomically with ``write(writer, key, value)``."""
    count = 0
    with _table_writer(path_ark, path_scp, text, writer_type, write) as put:
        for key, value in items:
            put(key, value)
            count += 1
    return count


@contextmanager
def _table_writer(
    path_ark: PathLike,
    path_scp: Optional[PathLike],
    text: bool,
    writer_type: Type[Any],
    write: Callable[[Any, str, Any], None],
) -> Iterator[Callable[[str, Any], None]]:
    """Yield ``put(key, value)``; the table appears at its paths only if the block succeeds."""
    targets = [path_ark] if path_scp is None else [path_ark, path_scp]
    with atomic_outputs(*targets) as temps:
        spec = ("ark,t" if text else "ark") + (",scp:" if path_scp else ":") + ",".join(temps)
        writer = writer_type(spec)
        try:
            yield lambda key, value: _checked(lambda: write(writer, key, value), temps[0])
        except BaseException:
            with captured_stderr(lambda _line: None):  # its warnings name the temporary
                writer.close()
            raise
        _checked(writer.close, temps[0])
        if path_scp is not None:
            _rename_ark_in_scp(temps[1], temps[0], os.fspath(path_ark))


def _checked(call: Callable[[], None], temp: str) -> None:
    """One write (or the close) of a kaldi-native-io table writer. Its failures are a
    RuntimeError, or at close only a warning on fd 2, both naming the temporary: raise the
    OSError behind them (disk full...) instead, which ``atomic_outputs`` reports naming the
    target. The writer's own lines are dropped then, and kept on stderr otherwise."""
    chatter: list[str] = []
    with captured_stderr(chatter.append):
        try:
            call()
        except RuntimeError:
            cause = _write_error(temp)
            if cause is None:
                raise  # not a failed write (a bad key...): Kaldi's message says what
            raise cause from None
    if any("Error closing stream" in line for line in chatter):  # its buffer did not reach the disk
        raise _write_error(temp) or OSError(errno.EIO, "Kaldi's table writer could not close it", temp)
    for line in chatter:
        print(line, file=sys.stderr)


def _write_error(temp: str) -> Optional[OSError]:
    """Why writing to ``temp`` fails (Kaldi's writer does not say): write 64 KiB to it (more than
    its last block holds) and return the error, naming ``temp``, or None when that works."""
    try:
        with open(temp, "ab") as probe:
            probe.write(bytes(1 << 16))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        return OSError(err.errno, err.strerror, temp)
    return None


def mat_ark_writer(path_ark: PathLike) -> ContextManager[Callable[[str, np.ndarray], None]]:
    """``with mat_ark_writer(p) as put: put(key, matrix)``: float matrices written to the ark as
    they are produced (nothing is held), which appears at ``p`` only when the block succeeds."""
    return _table_writer(path_ark, None, False, kio.FloatMatrixWriter,
                         lambda w, key, m: w.write(key, _float_matrix(m)))


def _rename_ark_in_scp(scp: str, temp_ark: str, ark: str) -> None:
    """Point scp lines written against the temporary ark at the final ark name."""
    lines = Path(scp).read_text(encoding="utf-8").splitlines()
    prefix = f" {temp_ark}:"
    Path(scp).write_text("".join(line.replace(prefix, f" {ark}:", 1) + "\n" for line in lines), "utf-8")


def _float_matrix(value: np.ndarray) -> np.ndarray:
    matrix = np.ascontiguousarray(value, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {matrix.shape}")
    return matrix


def write_mat_ark(
    path_ark: PathLike,
    path_scp: Optional[PathLike],
    items: Iterable[Tuple[str, np.ndarray]],
    compress: bool = False,
    text: bool = False,
) -> int:
    """Write float matrices to an ark (and its scp) atomically; return the count.

    The equivalent of Kaldi's ``ark,scp:x.ark,x.scp`` (``ark,t:`` with ``text``).
    ``compress=True`` writes ``CM`` records like ``copy-feats --compress=true``
    (byte-identical to Kaldi's on ``kaldi_golden/fbank40_compressed.ark``). The scp lines
    name ``path_ark`` as given, so pass the path the scp's readers should use.
    """
    if compress:
        return _write_ark(
            path_ark, path_scp, text, kio.CompressedMatrixWriter, items,
            lambda w, key, m: w.write(key, _float_matrix(m), COMPRESSION),
        )
    return _write_ark(
        path_ark, path_scp, text, kio.FloatMatrixWriter, items,
        lambda w, key, m: w.write(key, _float_matrix(m)),
    )


def write_double_matrices(
    path_ark: PathLike, path_scp: Optional[PathLike], items: Iterable[Tuple[str, np.ndarray]]
) -> int:
    """Write double matrices (``DM``, e.g. CMVN stats) to a binary ark (+ scp) atomically."""
    return _write_ark(
        path_ark, path_scp, False, kio.DoubleMatrixWriter, items,
        lambda w, key, m: w.write(key, np.ascontiguousarray(m, np.float64)),
    )


def write_int_vectors(path_ark: PathLike, items: Iterable[Tuple[str, np.ndarray]], text: bool = False) -> int:
    """Write int vectors (alignments) to a binary (or ``text``) ark atomically."""
    return _write_ark(
        path_ark, None, text, kio.Int32VectorWriter, items,
        lambda w, key, v: w.write(key, np.asarray(v, np.int64).ravel().tolist()),
    )


def read_symbol_table(path: Path) -> dict[str, int]:
    """A Kaldi ``symbol id`` table (phones.txt, words.txt)."""
    table = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise DataError(f"line {number}: expected 'symbol id'", file=str(path))
        table[fields[0]] = int(fields[1])
    return table
