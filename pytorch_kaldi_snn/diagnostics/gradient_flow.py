"""Gradient-flow diagnostic (Eq. 11-15): ‖∂J/∂X[n]‖ against the distance N − n.

For each architecture a single layer reads a long random sequence X[1..N] and the objective is
J = Σ Ŷ[N] (the sum of the last step's outputs). Eq. 15 predicts that for the traditional layer
the gradient that reaches X[n] through the synaptic currents decays like β^(N−n); the forget
gates of v1/v2 (Eq. 16-21) can instead hold it when F is near 1.

Protocol: no batch norm (its batch statistics would couple all steps), b calibrated by three
training passes without gradient, then the gradient is taken in eval mode. v1 and v2 are run
with the forget-gate shift initialised to ``--forget-bias`` (default 2, F ≈ 0.88 at rest) and,
for reference, with 0 (F ≈ 0.5: at that initialisation their gradient vanishes faster than the
traditional layer's, as an LSTM's does).

Usage::

    python -m pytorch_kaldi_snn.diagnostics.gradient_flow --out exp/gradient_flow

writes ``gradient_flow.png``, ``gradient_flow.json`` (settings and norms) and
``gradient_flow.csv`` (one row per distance N − n, one column per architecture).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from pytorch_kaldi_snn.layers import GRULayer, ImprovedV1Layer, ImprovedV2Layer, LIFLayer, LSTMLayer
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.layers.cost import CountedLayer


@dataclass(frozen=True)
class FlowSettings:
    steps: int = 300
    batch: int = 8
    input_size: int = 40
    hidden_size: int = 64
    beta: float = 0.9
    forget_bias: float = 2.0
    surrogate: str = "ste"
    n_bits: int = 6
    threshold: int = 3
    seed: int = 0


def architectures(s: FlowSettings) -> Dict[str, Callable[[], CountedLayer]]:
    """Name → constructor of one layer of every architecture compared."""
    spiking = dict(use_batchnorm=False, surrogate=s.surrogate, n_bits=s.n_bits,
                   threshold=s.threshold)
    m, n = s.input_size, s.hidden_size
    return {
        "traditional": lambda: LIFLayer(m, n, beta=s.beta, **spiking),
        "v1": lambda: ImprovedV1Layer(m, n, forget_bias=s.forget_bias, **spiking),
        "v2": lambda: ImprovedV2Layer(m, n, forget_bias=s.forget_bias, **spiking),
        "v1_forget_bias_0": lambda: ImprovedV1Layer(m, n, **spiking),
        "v2_forget_bias_0": lambda: ImprovedV2Layer(m, n, **spiking),
        "lstm": lambda: LSTMLayer(m, n, use_batchnorm=False),
        "gru": lambda: GRULayer(m, n, use_batchnorm=False),
    }


def gradient_norms(layer: CountedLayer, x: Tensor) -> Tensor:
    """‖∂J/∂X[n]‖ over (batch, features) for J = Σ Ŷ[N]; element d is the distance N − n = d."""
    layer.train()
    with torch.no_grad():
        for _ in range(3):  # training passes set the membrane maximum b (no-op for LSTM/GRU)
            layer(x)
    layer.eval()
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(layer(x)[-1].sum(), x)
    return grad.norm(dim=(1, 2)).flip(0)


def run(settings: FlowSettings) -> Dict[str, List[float]]:
    """Gradient norms by distance for every architecture, same input sequence for all."""
    torch.manual_seed(settings.seed)
    x = torch.randn(settings.steps, settings.batch, settings.input_size)
    results = {}
    for name, build in architectures(settings).items():
        torch.manual_seed(settings.seed + 1)
        results[name] = gradient_norms(build(), x).tolist()
    return results


def _write_json(tmp: str, settings: FlowSettings, results: Dict[str, List[float]]) -> None:
    with open(tmp, "w") as f:
        json.dump({"settings": asdict(settings), "objective": "J = sum of outputs at the last step",
                   "x_axis": "N - n", "grad_norm": results}, f, indent=1)


def _write_csv(tmp: str, results: Dict[str, List[float]]) -> None:
    names = list(results)
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["distance"] + names)
        for d in range(len(results[names[0]])):
            writer.writerow([d] + [f"{results[name][d]:.6e}" for name in names])


def _write_png(tmp: str, settings: FlowSettings, results: Dict[str, List[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    tiny = 1e-30  # exact zeros cannot be drawn on a log axis
    for name, norms in results.items():
        style = ":" if "forget_bias_0" in name else "-"
        ax.semilogy(range(len(norms)), [max(v, tiny) for v in norms], style, label=name)
    ax.set_xlabel("N − n (steps before the objective)")
    ax.set_ylabel("‖∂J/∂X[n]‖")
    ax.set_ylim(bottom=1e-25)
    ax.set_title(f"Gradient flow, {settings.hidden_size} units, β = {settings.beta}, "
                 f"forget bias {settings.forget_bias}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_outputs(out_dir: Path, settings: FlowSettings, results: Dict[str, List[float]]) -> None:
    """gradient_flow.{json,csv,png} in ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "gradient_flow.json", lambda t: _write_json(t, settings, results))
    atomic_write(out_dir / "gradient_flow.csv", lambda t: _write_csv(t, results))
    atomic_write(out_dir / "gradient_flow.png", lambda t: _write_png(t, settings, results))


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    defaults = FlowSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    settings = FlowSettings(**{k: v for k, v in vars(args).items() if k != "out"})
    if settings.steps < 2:
        print("gradient_flow: --steps must be at least 2", file=sys.stderr)
        return 2
    results = run(settings)
    write_outputs(args.out, settings, results)
    for name, norms in results.items():
        at = min(200, len(norms) - 1)
        print(f"{name:>18}: |dJ/dX| at N-n=0: {norms[0]:.3e}, at N-n={at}: {norms[at]:.3e}")
    print(f"wrote {args.out}/gradient_flow.png, .json, .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
