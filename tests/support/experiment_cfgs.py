"""Test cfgs: cfg/synth_snn_v2.cfg pointed at another corpus dir and out_folder."""
from __future__ import annotations

from pathlib import Path
from typing import List

from pytorch_kaldi_snn.gpu_check import synth_cfg_text
from repo_paths import ROOT  # noqa: F401  (re-exported: tests import ROOT from here)

# Small and fast: a tiny network and two short epochs (the cfg's other settings are kept).
TINY = ["exp.n_epochs_tr=2", "batches.batch_size_train=8", "batches.max_seq_length_train=100",
        "batches.start_seq_len_train=50", "architecture1.snn_lay=16,16",
        "exp.use_cuda=False"]


def synth_cfg(tmp: Path, corpus: Path, name: str = "synth_snn_v2", text_edit=None) -> Path:
    """Write cfg/<name>.cfg with its corpus paths moved to ``corpus`` and no ``prepare``."""
    text = synth_cfg_text(corpus, name)
    if text_edit is not None:
        text = text_edit(text)
    path = tmp / f"{name}.cfg"
    path.write_text(text)
    return path


def out_override(out: Path) -> List[str]:
    return [f"exp.out_folder={out}"]


def fake_corpus(root: Path) -> Path:
    """Empty files and dirs at every path a synth cfg names (enough for cfg validation)."""
    for part in ("train", "dev", "test"):
        (root / "data" / part).mkdir(parents=True, exist_ok=True)
        (root / "data" / part / "feats.scp").touch()
        (root / "exp" / f"mono_ali_{part}").mkdir(parents=True, exist_ok=True)
    (root / "exp" / "mono" / "graph").mkdir(parents=True, exist_ok=True)
    return root
