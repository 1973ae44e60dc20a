"""Malformed cfgs stop before any work with one line naming file, section and key (exit 2)."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, List, Optional

import pytest

from experiment_cfgs import ROOT, fake_corpus, synth_cfg
from pytorch_kaldi_snn.config.experiment import load_experiment
from pytorch_kaldi_snn.run_exp import main

Edit = Optional[Callable[[str], str]]
CFG = "CFG"  # stands for the cfg path in the expected lines

MALFORMED = [
    # (case, edit of the cfg text, --set overrides, expected stderr line)
    ("missing section", lambda t: t.replace("[batches]", "[batchez]"), [],
     "CFG: [batches] missing section [batches]"),
    ("missing key", lambda t: t.replace("batch_size_train = 64\n", ""), [],
     "CFG: [batches] batch_size_train: missing option batch_size_train"),
    ("unknown architecture class", lambda t: t.replace("= ImprovedSNNv2", "= ImprovedSNNv3"), [],
     "CFG: [architecture1] arch_class: unknown architecture class 'ImprovedSNNv3' (known: "
     "TraditionalSNN, ImprovedSNNv1, ImprovedSNNv2, UniLSTM, UniGRU, MLP)"),
    ("wrong type", None, ["exp.n_epochs_tr=ten"],
     "CFG: [exp] n_epochs_tr: n_epochs_tr = 'ten' is not an integer"),
    ("out of range", None, ["architecture1.snn_n_bits=0"],
     "CFG: [architecture1] snn_n_bits: snn_n_bits = 0 is below the minimum 1"),
    ("threshold above 2^N-1", None, ["architecture1.snn_threshold=64"],
     "CFG: [architecture1] snn_threshold: snn_threshold = 64 is above 2^N - 1 = 63 for "
     "snn_n_bits = 6"),
    ("path does not exist", lambda t: t.replace("train/feats.scp", "train/nofeats.scp"), [],
     "CFG: [dataset1] fea_lst: CORPUS/data/train/nofeats.scp does not exist"),
    ("undefined dataset in data_use", None, ["data_use.valid_with=TIMIT_dev"],
     "CFG: [data_use] valid_with: dataset 'TIMIT_dev' is not defined "
     "(defined: synth_dev, synth_test, synth_tr)"),
    ("undefined architecture in model",
     lambda t: t.replace("compute(snn_layers,fbank)", "compute(lstm_layers,fbank)"), [],
     "CFG: [model] model: architecture 'lstm_layers' is not defined"),
    ("unknown operation", lambda t: t.replace("cost_err(out_cd", "cost_mse(out_cd"), [],
     "CFG: [model] model: unknown operation 'cost_mse' (known: compute, cost_nll, cost_err, "
     "sum, mult_constant, concatenate)"),
    ("no err_final", lambda t: t.replace("\terr_final=cost_err(out_cd,lab_cd)\n", ""), [],
     "CFG: [model] model: output 'err_final' is not defined"),
    ("unknown lab_opts", lambda t: t.replace("lab_opts=ali-to-pdf", "lab_opts=ali-to-post", 1), [],
     "CFG: [dataset1] lab_opts: lab_opts = 'ali-to-post' is not one of ali-to-pdf, "
     "ali-to-phones --per-frame=true"),
    ("decoder active range", None, ["decoding.min_active=8000"],
     "CFG: [decoding] min_active: min_active is above max_active"),
    ("undefined feature",
     lambda t: t.replace("compute(snn_layers,fbank)", "compute(snn_layers,mfcc)"), [],
     "CFG: [model] model: input 'mfcc' is not defined"),
    ("--set unknown section", None, ["nosuch.key=1"],
     "CFG: [nosuch] --set 'nosuch.key=1': no such section"),
    ("--set without a dot", None, ["n_epochs_tr=3"],
     "CFG: --set 'n_epochs_tr=3' is not of the form section.key=value"),
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return fake_corpus(tmp_path / "corpus")


def _run(cfg: Path, overrides: List[str], capsys: pytest.CaptureFixture) -> tuple:
    args = [str(cfg)] + [arg for o in overrides for arg in ("--set", o)]
    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case,edit,overrides,expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_cfg_one_line_exit_2(case: str, edit: Edit, overrides: List[str], expected: str,
                                       tmp_path: Path, corpus: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    cfg = synth_cfg(tmp_path, corpus, text_edit=edit)
    out = tmp_path / "out"
    code, err = _run(cfg, overrides + [f"exp.out_folder={out}"], capsys)
    line = expected.replace("CFG", str(cfg)).replace("CORPUS", str(corpus))
    assert (code, err) == (2, f"error: {line}\n")
    assert not out.exists()  # stopped before any work


def test_subprocess_exit_code_and_no_traceback(tmp_path: Path, corpus: Path) -> None:
    cfg = synth_cfg(tmp_path, corpus, text_edit=lambda t: t.replace("seed = 1234", "seed = -1"))
    done = subprocess.run([str(ROOT / "run_exp.sh"), str(cfg)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"error: {cfg}: [exp] seed: seed = -1 is below the minimum 0\n"


def test_missing_cfg_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _run(tmp_path / "nope.cfg", [], capsys)
    assert (code, err) == (2, f"error: {tmp_path / 'nope.cfg'}: cfg file "
                              f"{tmp_path / 'nope.cfg'} does not exist\n")


def test_set_overrides_apply_before_validation(tmp_path: Path, corpus: Path) -> None:
    cfg = synth_cfg(tmp_path, corpus)
    exp = load_experiment(cfg, ["architecture1.snn_n_bits=3", "exp.n_epochs_tr=5",
                                "batches.batch_size_train=16", "exp.seed=7"])
    assert {o.n_bits for o in exp.architectures["snn_layers"].spec.layers} == {3}
    assert (exp.exp.n_epochs_tr, exp.batches.batch_size_train, exp.exp.seed) == (5, 16, 7)
    assert "snn_n_bits = 3" in exp.cfg_text  # the resolved cfg kept for provenance


def test_model_language_and_datasets_parsed(tmp_path: Path, corpus: Path) -> None:
    exp = load_experiment(synth_cfg(tmp_path, corpus))
    ops = [(o.out, o.op, o.args) for o in exp.model.operations]
    assert ops == [("out_rnn", "compute", ("snn_layers", "fbank")),
                   ("out_cd", "compute", ("readout_cd", "out_rnn")),
                   ("loss_final", "cost_nll", ("out_cd", "lab_cd")),
                   ("err_final", "cost_err", ("out_cd", "lab_cd"))]
    train = exp.train_set
    assert [f.name for f in train.features] == ["fbank"]
    assert [(lab.name, lab.opts) for lab in train.labels] == [
        ("lab_cd", "ali-to-pdf"), ("lab_mono", "ali-to-phones --per-frame=true")]
    assert exp.architectures["readout_cd"].spec.sized({"lab_cd": 57}).sizes == (57,)
    assert [exp.batches.train_seq_len(e) for e in range(4)] == [100, 200, 400, 400]


@pytest.mark.parametrize("cfg", sorted((ROOT / "cfg").glob("*.cfg")), ids=lambda p: p.name)
def test_shipped_cfgs_parse(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALDI_ROOT", "/opt/kaldi")  # the TIMIT/LibriSpeech cfgs name it
    exp = load_experiment(cfg)
    assert exp.batches.batch_size_train == 64
    arch = next(iter(exp.architectures.values()))
    assert (arch.lr, arch.opt, arch.halving_factor) == (0.001, "adam", 0.5)
    if not cfg.name.startswith("synth"):
        assert exp.exp.n_epochs_tr == 24
        assert arch.spec.sizes == (550, 550)
