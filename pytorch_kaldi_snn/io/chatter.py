"""Capture what Kaldi's C++ readers and pipe commands print on stderr (file descriptor 2).

kaldi-native-io and the Kaldi binaries of a ``fea_opts`` pipe write ``[W]``/``[E]`` lines,
sometimes with raw bytes of a broken archive, straight to fd 2, around the one-line
:class:`~pytorch_kaldi_snn.errors.DataError` that already names the file and utterance. They
belong in the log, not on the terminal.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Optional

from pytorch_kaldi_snn.io.commands import end_group, start


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


# Informational lines of Kaldi-style C++ code: kaldilm's ``[I] Reading \\data\\ section.`` and
# the ``file.cc:function:line`` before each of its lines, Kaldi binaries' ``LOG (...)``/``VLOG``.
_KALDI_INFO = re.compile(r"^(\[I\] |LOG \(|VLOG\[\d+\] \(|\S+\.(cc|h|cpp):.*:\d+$)")
# A timestamp a recipe's own log line starts with (``date`` in run.sh, Python's logging):
# the caller's logger puts its own in front.
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(,\d+)? ")


def relay_command(command: str, say: Callable[[str], None], chatter: Callable[[str], None],
                  env: Optional[Mapping[str, str]] = None) -> int:
    """Run ``command`` (a shell command from a cfg) and pass each line it prints, stdout and
    stderr together, to ``say`` without its own timestamp, or to ``chatter`` where it is Kaldi's
    informational output. Returns the exit code. The command ends with this process
    (io/commands.py)."""
    with start(["/bin/sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
               env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
               text=True, errors="replace", bufsize=1) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                _relay(_printable(line.rstrip("\n")), say, chatter)
        except BaseException:  # Ctrl-C (or SIGTERM as Ctrl-C): the command's group ends too
            end_group(process)
            raise
    return process.returncode


def _relay(line: str, say: Callable[[str], None], chatter: Callable[[str], None]) -> None:
    if not line.strip():
        return
    if _KALDI_INFO.match(line):
        chatter(line)
    else:
        say(_TIMESTAMP.sub("", line, count=1))
