"""The one rule for a test that cannot run here: skip on a user's machine, fail under CI=true
(CI provides every tool, so a skip there would hide a broken build)."""
from __future__ import annotations

import os

import pytest

NO_C_COMPILER = "native kernels could not be built here (no C compiler?)"


def missing(reason: str) -> None:
    """Skip on a user's machine; under CI the tool must be there, so fail loudly."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must provide this: {reason}", pytrace=False)
    pytest.skip(reason)
