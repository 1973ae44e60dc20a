"""The GPU path without a GPU: first-launch fallback, the kernel line in log.log, mixed
precision, int64 offsets and ``gpu_check`` at tiny size (issue 26).

A failing Triton launch is simulated honestly: ``auto`` is let to try Triton on CPU tensors
(``AUTO_TRITON_DEVICES``) and the check that refuses CPU tensors without the interpreter is
lifted, so the real triton launcher runs and fails as it does on a machine without a usable
driver (``RuntimeError: 0 active drivers``).
"""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from typing import Dict

import pytest
import torch

from experiment_cfgs import TINY, synth_cfg
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.kernels import backend, fused, native
from pytorch_kaldi_snn.layers import recurrence
from pytorch_kaldi_snn.layers.spiking import ImprovedV2Layer
from pytorch_kaldi_snn.pipeline.runner import run_experiment
from pytorch_kaldi_snn.train import precision
from repo_paths import ROOT, SUPPORT
from skips import module

KERNELS_SRC = ROOT / "pytorch_kaldi_snn" / "kernels" / "triton_kernels.py"
FALLBACK = "native C" if native.load(torch.float32) is not None else "PyTorch operators"
FAILED = (f"kernels: {FALLBACK} (cpu, float32; auto: Triton's first launch failed: "
          "RuntimeError: 0 active drivers")


@pytest.fixture()
def failing_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` tries Triton on CPU tensors, whose real launch fails without a GPU driver."""
    module("triton")
    monkeypatch.delenv(backend.KERNEL_ENV, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(backend, "AUTO_TRITON_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(backend, "triton_unavailable", lambda device: None)
    monkeypatch.setattr(backend, "_verdicts", {})
    monkeypatch.setattr(backend, "_logged", set())


def test_auto_falls_back_with_a_warning_when_the_triton_launch_fails(failing_triton, caplog):
    gates, alpha, b = torch.randn(6, 3, 8), torch.full((4,), 0.9), torch.tensor(2.0)
    with caplog.at_level(logging.INFO, logger="pytorch_kaldi_snn.kernels"):
        y, _, _ = fused.v1_fused(gates, alpha, b, 3, 1, "ste", None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(FAILED), warnings
    ref, _, _ = recurrence.v1_loop(gates, alpha, b, 3, 1, "ste", None)
    assert torch.equal(y, ref)
    # the verdict is kept: no second check
    assert backend.choose(gates, fused.triton_check) in ("native", "torch")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_forced_triton_whose_launch_fails_raises(failing_triton, monkeypatch):
    monkeypatch.setenv(backend.KERNEL_ENV, "triton")
    with pytest.raises(RuntimeError, match="active drivers"):
        fused.v1_fused(torch.randn(6, 3, 8), torch.full((4,), 0.9), torch.tensor(2.0), 3, 1,
                       "ste", None)


@pytest.mark.slow
def test_failing_triton_launch_warning_reaches_log_log(failing_triton, tiny_corpus, tmp_path,
                                                       capsys):
    """A real (tiny) run: the fallback is a WARNING line in log.log and on the console, before
    the first batch, and the run completes on the next back end."""
    out = tmp_path / "out"
    results = run_experiment(synth_cfg(tmp_path, tiny_corpus),
                             TINY + ["exp.n_epochs_tr=1", f"exp.out_folder={out}"])
    assert results is not None and (out / "results.json").exists()
    log = (out / "log.log").read_text().splitlines()
    kernel = [i for i, line in enumerate(log) if FAILED in line]
    first_epoch = next(i for i, line in enumerate(log) if " epoch 1/1: " in line)
    assert len(kernel) == 1 and kernel[0] < first_epoch, log
    assert FAILED in capsys.readouterr().out


# -- mixed precision ------------------------------------------------------------------------


def test_bf16_autocast_runs_the_spiking_dynamics_in_float32(monkeypatch, caplog):
    """Under CPU bf16 autocast the projection is bfloat16, the time loop float32: the kernel
    sees float32, Ŷ is float32, and the gradients reach every parameter."""
    monkeypatch.delenv(backend.KERNEL_ENV, raising=False)
    monkeypatch.setattr(backend, "_logged", set())
    torch.manual_seed(0)
    layer = ImprovedV2Layer(7, 20, dropout=0.3).train()
    x = torch.randn(12, 5, 7)
    with caplog.at_level(logging.INFO, logger="pytorch_kaldi_snn.kernels"), \
            precision.autocast("bf16", torch.device("cpu")):
        assert layer.projection(x).dtype == torch.bfloat16
        y = layer(x)
    assert y.dtype == torch.float32
    assert [m for m in caplog.messages if m.startswith("kernels:")] == [
        f"kernels: {FALLBACK} (cpu, float32; auto: Triton is tried on CUDA only)"]
    assert 0 < float((y != 0).float().mean()) < 1
    y.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32
               for p in layer.parameters() if p.requires_grad)


def test_float32_precision_is_no_autocast():
    with precision.autocast("float32", torch.device("cpu")):
        assert (torch.randn(3, 4) @ torch.randn(4, 2)).dtype == torch.float32


def test_bf16_is_refused_on_a_gpu_without_bfloat16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100-SXM2-16GB")
    with pytest.raises(ConfigError) as err:
        precision.check_precision("bf16", torch.device("cuda"), "my.cfg")
    assert str(err.value) == ("my.cfg: [exp] precision: precision = bf16: this GPU (Tesla "
                              "V100-SXM2-16GB) has no bfloat16 support; use precision = float32")
    precision.check_precision("float32", torch.device("cuda"), "my.cfg")  # always runs


def test_bf16_is_refused_where_autocast_does_not_exist():
    with pytest.raises(ConfigError) as err:
        precision.check_precision("bf16", torch.device("meta"), "my.cfg")
    assert str(err.value) == ("my.cfg: [exp] precision: precision = bf16: autocast is not "
                              "available on meta; use precision = float32")


def test_unknown_precision_is_refused_by_name(tmp_path):
    from experiment_cfgs import fake_corpus
    from pytorch_kaldi_snn.config.experiment import load_experiment

    cfg = synth_cfg(tmp_path, fake_corpus(tmp_path / "corpus"))
    with pytest.raises(ConfigError) as err:
        load_experiment(cfg, ["exp.precision=fp16"])
    assert str(err.value) == (f"{cfg}: [exp] precision: precision = 'fp16' is not one of "
                              "float32, bf16")
    assert load_experiment(cfg).exp.precision == "float32"


@pytest.mark.slow
def test_bf16_run_on_cpu(tiny_corpus, tmp_path):
    """A tiny run_exp with precision = bf16 trains, decodes and records the key."""
    out = tmp_path / "out"
    results = run_experiment(synth_cfg(tmp_path, tiny_corpus),
                             TINY + ["exp.n_epochs_tr=1", "exp.precision=bf16",
                                     f"exp.out_folder={out}"])
    assert results is not None and 0 < results["frame_acc"] <= 100
    assert "precision = bf16" in (out / "resolved.cfg").read_text()


# -- int64 offsets, the interpreter, gpu_check --------------------------------------------


def test_triton_time_offsets_go_through_int64_steps():
    """Static half of the int64 check (the other half runs ``_wide`` in the interpreter): every
    per-step stride of the two recurrence kernels is made by ``_wide``, none multiplies t by B in
    int32 (v2's per-step launches also get each step's buffers as int64 pointers)."""
    source = KERNELS_SRC.read_text()
    assert not re.search(r"\bt \* B\b|\bt \* 2 \* B\b", source)
    strides = re.findall(r"^\s+(g_)?step = (.*)$", source, flags=re.M)
    assert len(strides) == 4 and all(value.startswith("_wide(") for _, value in strides)


@pytest.fixture(scope="module")
def interpreted(triton_env: Dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Dict:
    out = tmp_path_factory.mktemp("gpu_path") / "report.json"
    subprocess.run([sys.executable, str(SUPPORT / "triton_gpu_path.py"), str(out)], check=True,
                   env={**triton_env, "TRITON_INTERPRET": "1"}, timeout=600)
    return json.loads(out.read_text())


def test_auto_takes_triton_after_a_first_launch_that_agrees(interpreted):
    assert interpreted["auto"] == "triton"
    assert interpreted["log"] == [["INFO", "kernels: Triton (cpu, float32; auto: its first "
                                           "launch matched the PyTorch operators)"]]


def test_gpu_check_equality_on_the_triton_kernels(interpreted):
    equality = interpreted["equality"]
    assert sorted(equality) == sorted(f"{k}-{d}" for k in ("lif", "v1", "v2")
                                      for d in ("float32", "float64"))
    for name, got in equality.items():
        assert got["verdict"] == "agrees", name
        assert 0 < got["active_reference"] < 1 and got["active_kernel"] == got["active_reference"]
        assert got["level_flip_rate"] == 0
        assert got["max_relative_error"] <= (1e-9 if name.endswith("64") else 1e-5), name


def test_int64_offsets_do_not_wrap(interpreted):
    """t·B·2n for T = 4096, B = 64, n = 4096 is 2^31: int64 in the kernels, where int32 wraps."""
    assert interpreted["wide"] == {"wide": 2 ** 31, "narrow": -2 ** 31}


@pytest.mark.slow
def test_gpu_check_tiny_on_cpu(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.delenv(backend.KERNEL_ENV, raising=False)
    out = tmp_path / "check.json"
    subprocess.run([sys.executable, "-m", "pytorch_kaldi_snn.gpu_check", "--tiny", "--corpus",
                    str(tiny_corpus), "--json", str(out)], check=True, timeout=600,
                   capture_output=True)
    report = json.loads(out.read_text())
    assert report["environment"]["device"] == "cpu"
    assert report["kernel"] == ("native" if FALLBACK == "native C" else "torch")
    assert all(got["verdict"] == "agrees" for got in report["equality"].values())
    assert set(report["frames_per_s"]) == {"v2", "v1", "traditional", "GRU", "LSTM"}
    assert all(rate > 0 for rate in report["frames_per_s"].values())
    assert report["run_exp"]["kernel_line"] == (
        f"kernels: {FALLBACK} (cpu, float32; auto: Triton is tried on CUDA only)")
