"""Runs recipes/synth/run.sh on the tiny corpus once per test session: the one tiny corpus of a
test run (conftest's ``tiny_corpus``, and the gmm, graph and recipe tests), in the same folder
under pytest's session base temp; the recipe's .done markers make later calls no-ops."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from repo_paths import ROOT

RECIPE = ROOT / "recipes" / "synth"
SETS = ("train", "dev", "test")
SEED = "1"  # the tiny corpus every test reads


def run_recipe(out: Path, *args: str, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Run run.sh with ``--dir out`` and ``args`` (from ``cwd``); one thread, output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["bash", str(RECIPE / "run.sh"), "--dir", str(out), "--size", "tiny", "--seed", SEED, *args],
        capture_output=True, text=True, env=env, timeout=600, cwd=cwd,
    )


def tiny_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a complete tiny run (data/ and exp/), made on first use in the session."""
    out = tmp_path_factory.getbasetemp() / "synth_tiny"
    result = run_recipe(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
