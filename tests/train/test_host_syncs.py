"""How often a training batch makes the host wait for the device (issue 26, item 5).

On a GPU every conversion of a device tensor to a Python value (``float(t)``, ``t.item()``,
``t.tolist()``, ``bool(t)``, ...) waits for the queued kernels. The CPU cannot show the wait,
so these tests count the conversions the project's own code makes inside ``train_step``: one
per batch (the loss and frame error the log needs, with the guards' flags), after the first
batch (which calibrates b and reads the EMA's step count once). The spiking layers run the
PyTorch-operator kernel, the one that runs on a GPU without triton; the native C kernel is
CPU-only and takes Δ, γ and b as C doubles, read from host memory.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, List, Tuple

import pytest
import torch

import pytorch_kaldi_snn
from experiment_cfgs import TINY, synth_cfg
from pytorch_kaldi_snn import run_exp
from pytorch_kaldi_snn.kernels.backend import KERNEL_ENV
from pytorch_kaldi_snn.train.loop import CHECKPOINT, Trainer

PACKAGE = str(Path(pytorch_kaldi_snn.__file__).parent)
CONVERSIONS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__")


def _count_conversions(monkeypatch: pytest.MonkeyPatch) -> List[List[Tuple[str, str, int]]]:
    """Per ``train_step`` call, the conversions made by the package's own code."""
    calls: List[List[Tuple[str, str, int]]] = []
    active = [False]

    def counting(name: str, real: Callable) -> Callable:
        def wrapper(self, *args, **kwargs):
            caller = sys._getframe(1)
            if active[0] and caller.f_code.co_filename.startswith(PACKAGE):
                calls[-1].append((name, Path(caller.f_code.co_filename).name, caller.f_lineno))
            return real(self, *args, **kwargs)
        return wrapper

    for name in CONVERSIONS:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    step = Trainer.train_step

    def counted_step(self, *args, **kwargs):
        calls.append([])
        active[0] = True
        try:
            return step(self, *args, **kwargs)
        finally:
            active[0] = False
    monkeypatch.setattr(Trainer, "train_step", counted_step)
    return calls


@pytest.mark.parametrize("arch", ["synth_snn_v2", "synth_snn", "synth_GRU"])
def test_a_training_batch_reads_the_device_once(arch: str, tiny_corpus: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KERNEL_ENV, "torch")
    calls = _count_conversions(monkeypatch)
    cfg = synth_cfg(tmp_path, tiny_corpus, arch)
    width = "gru_lay=16,16" if arch == "synth_GRU" else "snn_lay=16,16"
    sets = [s for s in TINY if "snn_lay" not in s] + [
        f"architecture1.{width}", "exp.n_epochs_tr=1", "forward.require_decoding=False",
        f"exp.out_folder={tmp_path / 'out'}"]
    assert run_exp.main([str(cfg)] + [a for s in sets for a in ("--set", s)]) == 0
    assert len(calls) >= 4
    # the one read: guards.read's tolist of [flags..., loss, err]
    assert all(batch == [("tolist", "guards.py", batch[0][2])] for batch in calls[1:]), calls[1]


def test_nonfinite_parameters_stop_at_their_batch_before_a_checkpoint_keeps_them(
        tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """The parameters' check after a step is read with the next batch's flags; a checkpoint
    due after the step reads it first, so NaN weights are never saved."""
    real_step = torch.optim.Adam.step
    seen = {"steps": 0}

    def poisoned(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        seen["steps"] += 1
        if seen["steps"] == 3 * 2:  # two optimisers (one per net): batch 3's second step
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out
    monkeypatch.setattr(torch.optim.Adam, "step", poisoned)
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    sets = TINY + ["forward.require_decoding=False", "exp.checkpoint_every_batches=1",
                   f"exp.out_folder={out}"]
    capsys.readouterr()
    assert run_exp.main([str(cfg)] + [a for s in sets for a in ("--set", s)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged at epoch 1, batch 3: parameter nets."), err
    assert f"{out / CHECKPOINT} of epoch 1, batch 2 is kept" in err
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    assert state["progress"]["batch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "results.json").exists()
    assert json.loads(json.dumps(state["history"])) == []
