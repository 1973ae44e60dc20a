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

**Trained networks.** ``--checkpoint EXP_FOLDER`` (repeatable; any ``exp/*`` folder that
``run_exp`` wrote) measures the recurrent stack of that experiment instead: its architecture
is rebuilt from the checkpoint's cfg, its trained weights, batch-norm statistics and b are
loaded, and the gradient of J = Σ (stack output at step N) is taken in eval mode (no training
pass touches it) on a random N(0, 1) input sequence, which matches the mean/variance-normalised
features the models are trained on.

Usage::

    python -m pytorch_kaldi_snn.diagnostics.gradient_flow --out exp/gradient_flow
    python -m pytorch_kaldi_snn.diagnostics.gradient_flow --out exp/gradient_flow_trained \
        --checkpoint exp/synth_snn --checkpoint exp/synth_snn_v1 --checkpoint exp/synth_snn_v2

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
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.config.experiment import saved_architectures
from pytorch_kaldi_snn.neural_networks import architecture_class
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.layers import GRULayer, ImprovedV1Layer, ImprovedV2Layer, LIFLayer, LSTMLayer
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.layers.cost import CountedLayer
from pytorch_kaldi_snn.train.checkpoint import load_torch
from pytorch_kaldi_snn.train.loop import CHECKPOINT


REPORTED = (0, 100, 200, 300)  # distances N − n printed


@dataclass(frozen=True)
class FlowSettings:
    steps: int = 301
    batch: int = 8
    input_size: int = 40
    hidden_size: int = 64
    beta: float = 0.9
    forget_bias: float = 2.0
    surrogate: str = "ste"
    n_bits: int = 6
    threshold: int = 3
    seed: int = 0


SETTING_HELP = {  # --help text of each FlowSettings field
    "steps": "sequence length N (at least 2)", "batch": "sequences per batch",
    "input_size": "features per step", "hidden_size": "units of the layer",
    "beta": "the traditional layer's decay", "forget_bias": "v1/v2 forget-gate bias",
    "surrogate": "surrogate gradient of the spike", "n_bits": "output bits N",
    "threshold": "snn_threshold (k of the threshold k*b/2^N)", "seed": "random seed",
}


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
    """‖∂J/∂X[n]‖ of a fresh layer, after three training passes without gradient set b."""
    layer.train()
    with torch.no_grad():
        for _ in range(3):  # training passes set the membrane maximum b (no-op for LSTM/GRU)
            layer(x)
    return eval_gradient_norms(layer, x)


def eval_gradient_norms(model: nn.Module, x: Tensor) -> Tensor:
    """‖∂J/∂X[n]‖ over (batch, features) for J = Σ output[N], in eval mode; index d = N − n."""
    model.eval()
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[-1].sum(), x)
    return grad.norm(dim=(1, 2)).flip(0)


def checkpoint_stacks(folder: Path) -> Dict[str, Tuple[nn.Module, int]]:
    """(trained stack, its input size) for every sequence architecture of an experiment."""
    state = load_torch(folder / CHECKPOINT)
    if state is None:
        raise DataError(f"{folder / CHECKPOINT}: no checkpoint (run run_exp first)")
    stacks = {}
    for name, arch in saved_architectures(state["cfg_text"]).items():
        prefix = f"nets.{name}."
        weights = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
        projections = sorted((k for k in weights if k.endswith("projection.weight")),
                             key=lambda k: int(k.split(".")[1]))
        if not arch.seq_model or not projections:
            continue
        stack = architecture_class(arch.arch_class, arch.section)(arch.spec,
                                                                weights[projections[0]].shape[0])
        stack.load_state_dict(weights)
        stacks[f"{folder}:{name}"] = (stack, weights[projections[0]].shape[0])
    if not stacks:
        raise DataError(f"{folder / CHECKPOINT}: no recurrent architecture in the checkpoint")
    return stacks


def run_checkpoints(folders: Sequence[Path], settings: FlowSettings) -> Dict[str, List[float]]:
    """Gradient norms by distance for the recurrent stack of every experiment folder."""
    results = {}
    for folder in folders:
        for name, (stack, input_size) in checkpoint_stacks(folder).items():
            torch.manual_seed(settings.seed)
            x = torch.randn(settings.steps, settings.batch, input_size)
            results[name] = eval_gradient_norms(stack, x).tolist()
    return results


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
    parser = command_parser("pytorch_kaldi_snn.diagnostics.gradient_flow", __doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        metavar="EXP_FOLDER", help="measure this trained experiment (repeatable)")
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value,
                            help=SETTING_HELP[name])
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    settings = FlowSettings(**{k: v for k, v in vars(args).items()
                               if k not in ("out", "checkpoint")})
    if settings.steps < 2:
        print("gradient_flow: --steps must be at least 2", file=sys.stderr)
        return 2

    def measure() -> None:
        results = run_checkpoints(args.checkpoint, settings) if args.checkpoint else run(settings)
        write_outputs(args.out, settings, results)
        for name, norms in results.items():
            cols = ", ".join(f"N-n={d}: {norms[d]:.3e}" for d in REPORTED if d < len(norms))
            print(f"{name:>18}: |dJ/dX| at {cols}")
        print(f"wrote {args.out}/gradient_flow.png, .json, .csv")
    return run_reporting_errors("gradient_flow", measure)


if __name__ == "__main__":
    sys.exit(main())
