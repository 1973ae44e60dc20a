"""Checkpoints and JSON files, written atomically: a crash (Ctrl-C, kill -9) leaves the old or the new file.

Checkpoints are read with ``weights_only=True``: a ``checkpoint.pt`` (or an
``arch_pretrain_file``) from someone else's experiment folder is data, and PyTorch's full
unpickler would run whatever code a crafted file names. What this project saves (state dicts,
tensors, numbers, strings, lists and dicts of them) loads unchanged under that restriction.
"""
from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io.atomic import atomic_write

RETRAIN = "move it away and rerun ./run_exp.sh on the cfg to train again"


def save_torch(path: Path, state: Any) -> None:
    def write(tmp: Path) -> None:
        # through a Python file: a failed write (disk full) is an OSError, where torch's own
        # file writer reports it as an "enforce fail" RuntimeError
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
    atomic_write(path, write)


def unreadable_reason(err: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in a user's words."""
    # torch names the refused global in its message ("... unsupported GLOBAL posix.system ...")
    unsafe = re.search(r"GLOBAL ([\w.]+)", str(err))
    if unsafe:
        return (f"holds a Python object ({unsafe.group(1)}) besides tensors and numbers, which "
                "loading would run as code; it was not loaded")
    if isinstance(err, EOFError):
        return "is empty or truncated (not a complete PyTorch checkpoint)"
    return "is corrupt or truncated (not a PyTorch checkpoint this project wrote)"


def read_weights(path: Path, remedy: str = RETRAIN) -> Any:
    """The tensors, numbers and containers saved in ``path``, never code.

    A missing or unreadable file raises its ``OSError``; anything else that cannot be read this way
    raises a :class:`DataError` naming ``path``, why, and ``remedy``.
    """
    with open(path, "rb") as handle:  # a missing or unreadable file: the OSError names it
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
                warnings.simplefilter("ignore")
                return torch.load(handle, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, EOFError, OSError, RuntimeError, ValueError, KeyError,
                AttributeError, IndexError, TypeError, UnicodeDecodeError) as err:
            raise DataError(f"{unreadable_reason(err)}; {remedy}", file=str(path)) from None


def load_torch(path: Path) -> Optional[Any]:
    """The saved state, or None when there is none yet."""
    if not path.exists():
        return None
    return read_weights(path)


def save_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def load_json(path: Path) -> Optional[Any]:
    return json.loads(path.read_text()) if path.exists() else None
