"""Capture what Kaldi's C++ readers and pipe commands print on stderr (file descriptor 2).

kaldi-native-io and the Kaldi binaries of a ``fea_opts`` pipe write ``[W]``/``[E]`` lines,
sometimes with raw bytes of a broken archive, straight to fd 2, around the one-line
:class:`~pytorch_kaldi_snn.errors.DataError` that already names the file and utterance. They
belong in the log, not on the terminal.
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Callable, Iterator


def _printable(line: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in line)


@contextmanager
def captured_stderr(sink: Callable[[str], None]) -> Iterator[None]:
    """Send everything written to fd 2 inside the block to ``sink``, one printable line each."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip():
                    sink(_printable(line))
