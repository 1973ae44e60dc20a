"""Shared fixtures. ``tiny_corpus`` builds the built-in corpus once per test session."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``recipes/synth/run.sh --size tiny`` into a session temp dir (data/, exp/ as Kaldi's)."""
    corpus = tmp_path_factory.mktemp("synth_tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([str(ROOT / "recipes/synth/run.sh"), "--size", "tiny", "--seed", "1",
                    "--dir", str(corpus)], check=True, cwd=ROOT, env=env)
    return corpus
