"""PNG plots: learning curves per epoch and the per-layer share of zero outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt  # noqa: E402

from pytorch_kaldi_snn.io.atomic import atomic_write  # noqa: E402
from pytorch_kaldi_snn.report.results import layer_label  # noqa: E402


def _save(fig: "plt.Figure", path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def plot_learning_curves(history: List[Dict[str, float]], path: Path) -> None:
    """Loss and frame accuracy of train and dev per epoch."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_loss.plot(epochs, [r["dev_loss"] for r in history], "s-", label="dev")
    ax_loss.set(xlabel="epoch", ylabel="loss (nll)")
    ax_acc.plot(epochs, [100 * (1 - r["train_err"]) for r in history], "o-", label="train")
    ax_acc.plot(epochs, [100 * (1 - r["dev_err"]) for r in history], "s-", label="dev")
    ax_acc.set(xlabel="epoch", ylabel="frame accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)


def plot_layer_sparsity(per_layer: Dict[str, float], path: Path) -> None:
    """Percentage of zero outputs of each counted layer on the test set."""
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(per_layer)), 3.5))
    ax.bar(range(len(per_layer)), list(per_layer.values()))
    ax.set_xticks(range(len(per_layer)), [layer_label(n) for n in per_layer], rotation=30,
                  ha="right")
    ax.set(ylabel="zero outputs (%)", ylim=(0, 100), title="output sparsity per layer (test)")
    fig.tight_layout()
    _save(fig, path)
