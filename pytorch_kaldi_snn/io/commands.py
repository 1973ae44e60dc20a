"""The commands the project runs: how a path becomes one of their arguments."""
from __future__ import annotations

import os
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


def path_argument(path: PathLike) -> str:
    """``path`` as an argument of a command, never an option: a relative path that starts with
    ``-`` gets ``./`` in front. Kaldi's option parser takes any ``--x`` before the first
    positional argument as an option (a ``lab_folder`` named ``--ali`` made ``ali-to-pdf``
    fail with its usage) and reads ``--config=`` anywhere on the command line; other programs
    take ``-x``. The path still names the same file."""
    text = os.fspath(path)
    return f"./{text}" if text.startswith("-") else text
