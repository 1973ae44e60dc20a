"""The log of a run: ``log.log`` and stdout, the lines that go to the file only (Kaldi's
chatter, the error line), and the kernel choice."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from pytorch_kaldi_snn.cli import one_line
from pytorch_kaldi_snn.errors import UserInputError
from pytorch_kaldi_snn.kernels import backend



class SaidOnce(logging.Filter):
    """Drop the repeats of a message that starts with one of ``prefixes``: which path reads
    the features is the same for the train, dev and test sets, and said once."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes, self.said = prefixes, set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self.prefixes):
            return True
        new = message not in self.said
        self.said.add(message)
        return new


def open_log(out: Path) -> logging.Logger:
    """Log to ``out/log.log`` and to stdout, one timestamped line per event."""
    out.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"pytorch_kaldi_snn.run_exp.{out.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers.clear()
    log.filters.clear()
    log.addFilter(SaidOnce("features: "))
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in (logging.FileHandler(out / "log.log"), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log


def to_log_file(log: logging.Logger, prefix: str = "kaldi: ") -> Callable[[str], None]:
    """Write a line to the log file only (not stdout): for the chatter of Kaldi's readers, and
    for the error line the terminal already gets on stderr."""
    files = [h for h in log.handlers if isinstance(h, logging.FileHandler)]

    def write(line: str) -> None:
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, f"{prefix}{line}", None, None)
        for handler in files:
            handler.handle(record)
    return write


@contextmanager
def kernel_lines_to(log: logging.Logger) -> Iterator[None]:
    """Put the kernel choice and its fallbacks (logger ``pytorch_kaldi_snn.kernels``, INFO and
    above) in this run's log.log and on its console."""
    kernels = logging.getLogger(backend.__name__.rpartition(".")[0])
    level = kernels.level
    kernels.setLevel(logging.INFO)
    for handler in log.handlers:
        kernels.addHandler(handler)
    try:
        yield
    finally:
        for handler in log.handlers:
            kernels.removeHandler(handler)
        kernels.setLevel(level)


@contextmanager
def errors_logged(log: logging.Logger) -> Iterator[None]:
    """Put the one line of a run that fails on bad input or a failed write in log.log too."""
    try:
        yield
    except (UserInputError, OSError) as err:
        to_log_file(log, "error: ")(one_line(err))
        raise
