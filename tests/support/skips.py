"""The one rule for a test that cannot run here: skip on a user's machine, fail under CI=true
(CI provides every tool, so a skip there would hide a broken build)."""
from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

NO_C_COMPILER = "native kernels could not be built here (no C compiler?)"


def missing(reason: str) -> None:
    """Skip on a user's machine; under CI the tool must be there, so fail loudly."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must provide this: {reason}", pytrace=False)
    pytest.skip(reason)


# The setup.py extra that installs each optional module the tests import.
EXTRA_OF = {"triton": "gpu", "onnx": "export", "onnxruntime": "export", "nir": "export",
            "nirtorch": "export", "snntorch": "export"}


def module(name: str) -> ModuleType:
    """``pytest.importorskip`` under the one rule: the module, or a skip here and a failure in CI
    (which installs every extra)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"needs the Python module {name}: pip install -e \".[{EXTRA_OF[name]}]\"")
        raise  # not reached: missing() skips or fails
