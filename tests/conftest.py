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


@pytest.fixture(params=["native", "torch"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a kernel test once with the native C kernels and once with the PyTorch-operator path
    (the fallback used without a C compiler, on GPUs and with PYTORCH_KALDI_SNN_NATIVE=0)."""
    import torch

    from pytorch_kaldi_snn.kernels import native

    if request.param == "torch":
        monkeypatch.setattr(native, "load", lambda dtype: None)
    elif native.load(torch.float64) is None:
        pytest.skip("native kernels could not be built here (no C compiler?)")
    return request.param
