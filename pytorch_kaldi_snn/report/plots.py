"""PNG plots: learning curves per epoch and the per-layer share of zero outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt  # noqa: E402

from pytorch_kaldi_snn.io.atomic import atomic_write  # noqa: E402
from pytorch_kaldi_snn.report.names import layer_label  # noqa: E402


def _save(fig: "plt.Figure", path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


# Why the dev curve can lie above the train curve, under the accuracy plot.
TRAIN_VS_DEV = ("train: mean over the epoch's batches, with dropout on; dev: the model at the end "
                "of the epoch, without dropout (so dev can be above train)")


def plot_learning_curves(history: List[Dict[str, float]], path: Path, name: str) -> None:
    """Loss and frame accuracy of train and dev per epoch, titled with the experiment ``name``."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_loss.plot(epochs, [r["dev_loss"] for r in history], "s-", label="dev")
    ax_loss.set(xlabel="epoch", ylabel="loss (nll)")
    ax_acc.plot(epochs, [100 * (1 - r["train_err"]) for r in history], "o-", label="train")
    ax_acc.plot(epochs, [100 * (1 - r["dev_err"]) for r in history], "s-", label="dev")
    ax_acc.set(xlabel="epoch", ylabel="frame accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{name}: learning curves")
    fig.text(0.5, 0.01, TRAIN_VS_DEV, ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def plot_layer_sparsity(per_layer: Dict[str, float], path: Path, name: str) -> None:
    """Percentage of zero outputs of each counted layer on the test set, each bar labelled with
    its value, titled with the experiment ``name``."""
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(per_layer)), 3.5))
    bars = ax.bar(range(len(per_layer)), list(per_layer.values()))
    ax.bar_label(bars, fmt="%.1f%%")
    ax.set_xticks(range(len(per_layer)), [layer_label(n) for n in per_layer])
    ax.set(ylabel="zero outputs (%)", ylim=(0, 105), title=f"{name}: zero outputs per layer (test set)")
    fig.tight_layout()
    _save(fig, path)
