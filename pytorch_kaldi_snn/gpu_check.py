"""``python -m pytorch_kaldi_snn.gpu_check``: is this machine's GPU path sound, and how fast?

For a user with a GPU, in a few minutes, one report (stdout, and ``--json PATH``):

1. **environment**: torch and its CUDA, the device and driver, triton, a C compiler and
   ``Python.h`` (Triton compiles a launcher with them);
2. **kernel**: what ``auto`` picks on the device, after the first-launch check
   (:mod:`pytorch_kaldi_snn.kernels.first_launch`), and why;
3. **equality**: the picked kernel against the PyTorch operators, forward and backward, for the
   three spiking types: float64 within 1e-9 (relative), float32 by the rate of outputs one
   level apart and the activity (fraction of non-zero outputs) of both;
4. **speed**: training frames/s (forward + backward) of v2, v1 and traditional stacks against
   ``torch.nn.GRU``/``LSTM`` (cuDNN) at 2 x 550, B = 64, T = 500; GRU, LSTM and v2 (whose
   recurrent product runs on cuBLAS) with TF32 off and on;
5. **run_exp**: one epoch of ``cfg/synth_snn_v2.cfg`` on the tiny synthetic corpus (``--corpus
   DIR`` from ``recipes/synth/run.sh --size tiny --dir DIR``, else built in a temporary folder).

``--tiny`` shrinks every size (the test suite runs it on CPU, with Triton's interpreter when
``TRITON_INTERPRET=1``). Without CUDA it checks the CPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from pytorch_kaldi_snn.io import commands
from pytorch_kaldi_snn.kernels import backend, first_launch, fused

ROOT = Path(__file__).resolve().parents[1]
SYNTH_DIR = "recipes/synth"
FULL = {"layers": (550, 550), "batch": 64, "steps": 500, "features": 40, "repeats": 5,
        "equal": (50, 16, 64)}
TINY = {"layers": (16, 16), "batch": 4, "steps": 12, "features": 8, "repeats": 1,
        "equal": (first_launch.STEPS, first_launch.BATCH, first_launch.NEURONS)}


def environment(device: torch.device) -> Dict[str, object]:
    """Versions and the tools Triton's first launch needs."""
    import importlib.util

    triton = None
    if importlib.util.find_spec("triton") is not None:
        import triton as triton_module

        triton = triton_module.__version__
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    env: Dict[str, object] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "triton": triton,
        "c_compiler": shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"),
        "python_h": include.exists(), "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        smi = shutil.which("nvidia-smi")
        if smi:
            done = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=30)
            env["driver"] = done.stdout.strip() or done.stderr.strip()
    return env


def equality(device: torch.device, kernel: str, shape: Sequence[int]) -> Dict[str, object]:
    """``kernel`` against the PyTorch operators on ``device`` for the three spiking types."""
    report: Dict[str, object] = {}
    for dtype in (torch.float64, torch.float32):
        for kind in ("lif", "v1", "v2"):
            leaves = first_launch.inputs(kind, device, dtype, *shape)
            with backend.forcing("torch"):
                ref = first_launch.run(kind, leaves, fused.RECURRENCES)
            with backend.forcing(kernel):
                got = first_launch.run(kind, leaves, fused.RECURRENCES)
            errors = [float((a - b).abs().max()) / max(1.0, float(a.abs().max()))
                      for a, b in zip(ref, got) if a.numel()]
            flips = (ref[0] - got[0]).abs() > first_launch.LEVEL / 2
            report[f"{kind}-{str(dtype)[6:]}"] = {
                "max_relative_error": max(errors), "level_flip_rate": float(flips.double().mean()),
                "active_reference": float((ref[0] != 0).double().mean()),
                "active_kernel": float((got[0] != 0).double().mean()),
                "verdict": first_launch.disagreement(ref, got, dtype) or "agrees"}
    return report


def _timed(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Seconds per call of ``step`` after one warm-up call."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def _spiking(variant: str, sizes: Dict) -> nn.Module:
    from pytorch_kaldi_snn.layers import spiking_stack

    depth = len(sizes["layers"])
    extra = {"betas": [0.8] * depth} if variant == "traditional" else {}
    return spiking_stack(variant, sizes["features"], sizes["layers"], n_bits=[6] * depth,
                         thresholds=[4] * depth, surrogates=["ste"] * depth,
                         alphas=[0.9] * depth, dropouts=[0.0] * depth,
                         batchnorms=[True] * depth, impl="fused", **extra)


def speed(device: torch.device, sizes: Dict) -> Dict[str, float]:
    """Training frames/s (forward + backward of a sum) per network."""
    x = torch.randn(sizes["steps"], sizes["batch"], sizes["features"], device=device)
    frames = sizes["steps"] * sizes["batch"]
    width, depth = sizes["layers"][0], len(sizes["layers"])
    nets: Dict[str, Callable[[], nn.Module]] = {
        variant: (lambda v=variant: _spiking(v, sizes)) for variant in ("v2", "v1", "traditional")}
    nets["GRU"] = lambda: nn.GRU(sizes["features"], width, num_layers=depth)
    nets["LSTM"] = lambda: nn.LSTM(sizes["features"], width, num_layers=depth)
    report: Dict[str, float] = {}
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        for name, make in nets.items():
            net = make().to(device).train()
            # cuDNN's RNNs and v2's per-step recurrent product (torch.addmm) follow the TF32
            # switches; the other spiking stacks' time loops are Triton's in IEEE float32
            tf32_applies = name in ("GRU", "LSTM", "v2")
            for allow in ((False, True) if tf32_applies and device.type == "cuda" else (False,)):
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow

                def step() -> None:
                    out = net(x)
                    (out[0] if isinstance(out, tuple) else out).sum().backward()

                label = name + (" (TF32)" if allow else "")
                report[label] = frames / _timed(step, device, sizes["repeats"])
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return report


def synth_cfg_text(corpus: Path, name: str = "synth_snn_v2") -> str:
    """``cfg/<name>.cfg`` with its corpus paths moved to ``corpus`` and no ``prepare`` line."""
    text = (ROOT / "cfg" / f"{name}.cfg").read_text().replace(SYNTH_DIR, str(corpus))
    return "\n".join(line for line in text.splitlines() if not line.startswith("prepare =")) + "\n"


def tiny_run(device: torch.device, corpus: Optional[Path], work: Path) -> Dict[str, object]:
    """One epoch of the synth v2 cfg, tiny network, on ``device``."""
    from pytorch_kaldi_snn.pipeline.runner import run_experiment

    if corpus is None:
        corpus = work / "synth_tiny"
        commands.run([str(ROOT / SYNTH_DIR / "run.sh"), "--size", "tiny", "--seed", "1",
                      "--dir", str(corpus)], check=True, cwd=ROOT, capture_output=True)
    cfg = work / "synth_snn_v2.cfg"
    cfg.write_text(synth_cfg_text(corpus))
    out = work / "run"
    start = time.monotonic()
    results = run_experiment(cfg, [
        f"exp.out_folder={out}", f"exp.use_cuda={device.type == 'cuda'}", "exp.n_epochs_tr=1",
        "batches.batch_size_train=8", "batches.max_seq_length_train=100",
        "batches.start_seq_len_train=50", "architecture1.snn_lay=16,16"])
    log = (out / "log.log").read_text()
    return {"seconds": time.monotonic() - start, "frame_acc": results["frame_acc"],
            "kernel_line": next((line.split(" ", 2)[2] for line in log.splitlines()
                                 if " kernels: " in line), None)}


def check(tiny: bool, corpus: Optional[Path], work: Path) -> Dict[str, object]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = TINY if tiny else FULL
    report: Dict[str, object] = {"environment": environment(device)}
    kernel = backend.announce(device, torch.float32, fused.triton_check)
    report["kernel"] = kernel
    report["equality"] = equality(device, kernel, sizes["equal"])
    report["frames_per_s"] = speed(device, sizes)
    report["run_exp"] = tiny_run(device, corpus, work)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytorch_kaldi_snn.gpu_check",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small sizes (a quick smoke test)")
    parser.add_argument("--corpus", type=Path, help="a tiny synth corpus to reuse")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as work:
        report = check(args.tiny, args.corpus, Path(work))
    text = json.dumps(report, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
