"""Errors that carry where the bad input is, so the command line can print one clear line."""
from __future__ import annotations

from typing import Optional


class UserInputError(Exception):
    """Bad user input: a cfg value, a data file, an utterance. Printed as one line, exit code 2.

    ``location`` parts are joined as ``file: [section] key: message`` (or ``file: utt: message``
    for data), so a user sees exactly which file, section and key or utterance is at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Optional[str] = None,
        section: Optional[str] = None,
        key: Optional[str] = None,
        utt: Optional[str] = None,
    ) -> None:
        self.message = message
        self.file = file
        self.section = section
        self.key = key
        self.utt = utt
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:")
        if self.section:
            parts.append(f"[{self.section}]")
        if self.key:
            parts.append(f"{self.key}:")
        if self.utt:
            parts.append(f"utterance {self.utt}:")
        parts.append(self.message)
        return " ".join(parts)

    def with_file(self, file: str) -> "UserInputError":
        """Return the same error with the file filled in (options parsers do not know it)."""
        return type(self)(self.message, file=file, section=self.section, key=self.key, utt=self.utt)


class ConfigError(UserInputError):
    """A malformed cfg: missing section or key, wrong type or range, unknown class, bad path."""


class DataError(UserInputError):
    """Malformed data: a missing utterance, a feature/label length mismatch, a broken ark."""


class OutputError(UserInputError):
    """A file the project writes could not be written (disk full, quota, read-only folder): the
    user's machine, not the code. Names the file the user knows, never a temporary."""


def kaldi_error_line(stderr: str) -> str:
    """The line of a failed Kaldi binary's stderr that says why: its ``ERROR (...)`` line (the
    last lines are a stack trace or a later ``Done 0 lattices``), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return next((line for line in lines if "ERROR" in line), lines[-1] if lines else "")
