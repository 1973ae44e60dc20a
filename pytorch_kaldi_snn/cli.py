"""The command-line entry points' common parts: one parser style for ``python -m`` commands, and
one way to report bad input (one line on stderr, exit code 2)."""
from __future__ import annotations

import argparse
import signal
import sys
from typing import Callable

from pytorch_kaldi_snn.errors import UserInputError

INTERRUPTED = 130  # the shell's status of a command ended by SIGINT


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line, as the command line prints it."""
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


def run_interruptible(prefix: str, action: Callable[[], None]) -> int:
    """:func:`run_reporting_errors` for a command that holds an out_folder lock and starts child
    jobs: SIGTERM is handled as Ctrl-C, so both unwind (child jobs end, then the lock is
    released) and print one line, exit code 130."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run_reporting_errors(prefix, action)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


class _DefaultsShown(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless it has none to show (required, a flag,
    an empty list) or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = (action.default is None or action.default is argparse.SUPPRESS
                   or action.nargs == 0 or action.default == [])  # nargs 0: a flag, off
        if action.option_strings and not nothing and "(default" not in text:
            text += " (default: %(default)s)"
        return text


def command_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``: that command in its usage and errors, the first
    paragraph of ``doc`` (the module docstring) as description, and every option's default."""
    summary = " ".join(doc.split("\n\n")[0].split())
    if summary.endswith("::"):  # reST's literal-block marker: the block is not shown here
        summary = summary[:-2] + "."
    return argparse.ArgumentParser(prog=f"python -m {module}", description=summary,
                                   formatter_class=_DefaultsShown)
