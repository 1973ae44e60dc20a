"""Runs recipes/synth/run.sh on E1's tiny corpus once per test session (shared by the
gmm, graph and recipe tests): every test module asks for the same folder under pytest's
session base temp, and the recipe's .done markers make later calls no-ops."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "synth"
SETS = ("train", "dev", "test")


def run_recipe(out: Path, *args: str) -> subprocess.CompletedProcess:
    """Run run.sh with ``--dir out`` and ``args``; one thread, output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["bash", str(RECIPE / "run.sh"), "--dir", str(out), "--size", "tiny", "--seed", "0", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )


def tiny_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a complete tiny run (data/ and exp/), made on first use in the session."""
    out = tmp_path_factory.getbasetemp() / "synth_tiny"
    result = run_recipe(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
