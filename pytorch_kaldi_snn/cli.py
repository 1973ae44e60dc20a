"""The one way command-line entry points report bad input: one line on stderr, exit code 2."""
from __future__ import annotations

import sys
from typing import Callable

from pytorch_kaldi_snn.errors import UserInputError


def one_line(err: BaseException) -> str:
    """The error's message on one line (a message may carry a file's line breaks)."""
    return " ".join(str(err).split())


def run_reporting_errors(prefix: str, action: Callable[[], None]) -> int:
    """Run ``action``; bad input (or a missing/unreadable file) prints ``prefix: message`` on one
    line, with no traceback, and gives exit code 2. Returns 0 on success."""
    try:
        action()
    except (UserInputError, OSError) as err:
        print(f"{prefix}: {one_line(err)}", file=sys.stderr)
        return 2
    return 0
