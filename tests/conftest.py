"""Shared fixtures. ``tiny_corpus`` builds the built-in corpus once per test session.

Kaldi comes from ``PATH`` or ``KALDI_ROOT``; upstream PyTorch-Kaldi from ``PYTORCH_KALDI_ROOT``
(in the development tree, both default to its own copies, which CI always has; a user's clone
has neither). Tests that need them ask for ``kaldi_env`` / ``upstream_dir`` /
``upstream_checkout``: they skip with a one-line reason a user can act on where the tools are
missing, and fail instead under ``CI=true``, where ``.ci/run`` installs them, so that CI never
skips them silently. ``builtin_env`` is the same environment with every Kaldi binary removed,
for tests of the built-in path.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict

import pytest

from skips import NO_C_COMPILER, missing as _missing
from repo_paths import ROOT
from synth_recipe import tiny_recipe

# The development tree keeps an upstream snapshot beside the checkout; elsewhere set the variable.
UPSTREAM_DEFAULT = ROOT.parent / "shared" / "upstream" / "pytorch-kaldi"
KALDI_ROOT_DEFAULT = Path("/opt/kaldi")  # where the development tree's Kaldi build is unpacked
KALDI_PROBE = ("copy-feats", "latgen-faster-mapped", "gmm-info", "fstinfo", "compute-wer")
# binaries only a Kaldi (or sctk) folder holds: OpenFst's fstinfo also lives in /usr/bin
KALDI_ONLY = ("copy-feats", "latgen-faster-mapped", "gmm-info", "compute-wer", "sclite")


def _kaldi_environ() -> Dict[str, str]:
    """os.environ with the Kaldi build on PATH: as found, or from KALDI_ROOT's env.sh layout."""
    env = dict(os.environ)
    root = Path(env.get("KALDI_ROOT") or KALDI_ROOT_DEFAULT)
    bins = [root / "src" / d for d in ("bin", "featbin", "gmmbin", "latbin", "fstbin")]
    extra = [str(b) for b in bins if b.is_dir()]
    extra += [str(root / "tools/openfst/bin"), "/usr/lib/sctk/bin"]
    env["PATH"] = os.pathsep.join(extra + [env.get("PATH", "")])
    if (root / "src/lib").is_dir():
        libs = [str(root / "src/lib"), "/usr/lib/x86_64-linux-gnu/openblas-pthread"]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    if root.is_dir():
        env["KALDI_ROOT"] = str(root)
    return env


@pytest.fixture(scope="session")
def kaldi_env() -> Dict[str, str]:
    """Environment with Kaldi's binaries (and sclite) on PATH and KALDI_ROOT set."""
    env = _kaldi_environ()
    missing = [b for b in KALDI_PROBE if shutil.which(b, path=env["PATH"]) is None]
    if missing:
        _missing(f"needs Kaldi's command-line tools on PATH or at KALDI_ROOT "
                 f"({', '.join(missing)} not found); see docs/kaldi_recipes.md")
    return env


@pytest.fixture(scope="session")
def builtin_env() -> Dict[str, str]:
    """os.environ without any folder holding a Kaldi binary and without KALDI_ROOT."""
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    keep = [d for d in env.get("PATH", "").split(os.pathsep)
            if d and not any((Path(d) / b).exists() for b in KALDI_ONLY)]
    env["PATH"] = os.pathsep.join(keep)
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    """Upstream PyTorch-Kaldi's checkout: ``$PYTORCH_KALDI_ROOT``, else the development tree's."""
    upstream = Path(os.environ.get("PYTORCH_KALDI_ROOT") or UPSTREAM_DEFAULT)
    if not (upstream / "run_exp.py").is_file():
        _missing("needs a checkout of upstream PyTorch-Kaldi "
                 "(git clone https://github.com/mravanelli/pytorch-kaldi, then set "
                 "PYTORCH_KALDI_ROOT to it)")
    return upstream


@pytest.fixture()
def upstream_checkout(upstream_dir: Path, tmp_path: Path) -> Path:
    """A private copy of upstream PyTorch-Kaldi (it writes into its own tree)."""
    dest = tmp_path / "pytorch-kaldi"
    shutil.copytree(upstream_dir, dest)
    return dest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``recipes/synth/run.sh --size tiny`` into a session temp dir (data/, exp/ as Kaldi's): the
    same folder the gmm, graph and recipe tests read (tests/support/synth_recipe.py), built once."""
    return tiny_recipe(tmp_path_factory)


@pytest.fixture(params=["native", "torch"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a kernel test once with the native C kernels and once with the PyTorch-operator path
    (the fallback used without a C compiler and with PYTORCH_KALDI_SNN_KERNEL=torch)."""
    import torch

    from pytorch_kaldi_snn.kernels import native

    if request.param == "torch":
        monkeypatch.setattr(native, "load", lambda dtype: None)
    elif native.load(torch.float64) is None:
        _missing(NO_C_COMPILER)
    return request.param


@pytest.fixture(scope="session")
def triton_env() -> Dict[str, str]:
    """Environment for a child process that imports triton (this checkout first on the path).

    Triton's interpreter mode (``TRITON_INTERPRET=1``) only takes effect if it is set before
    triton is imported, and it must not leak into the rest of the suite, so the tests add it to
    a copy of this environment for a subprocess, never to this process.
    """
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        _missing("needs the triton package: pip install -e \".[gpu]\" (Linux; PyTorch's CUDA "
                 "wheels bring it)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="session")
def export_extra() -> None:
    """The ``export`` extra (onnx, onnxruntime, nir, snntorch) of the deployment tests."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxruntime", "nir", "snntorch")
               if importlib.util.find_spec(name) is None]
    if missing:
        _missing(f"needs {', '.join(missing)}: pip install -e \".[export]\"")
