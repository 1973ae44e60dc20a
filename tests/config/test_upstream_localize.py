"""``python -m pytorch_kaldi_snn.config.localize``: shipped cfg -> cfg with literal absolute paths."""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytorch_kaldi_snn.config.experiment import load_experiment
from pytorch_kaldi_snn.config.reading import read_cfg
from pytorch_kaldi_snn.errors import ConfigError
from repo_paths import ROOT

LOCALIZE = [sys.executable, "-m", "pytorch_kaldi_snn.config.localize"]


def localize(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*LOCALIZE, *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_synth_cfg_maps_corpus_and_reads_the_same(tmp_path: Path) -> None:
    out = tmp_path / "synth.cfg"
    corpus = tmp_path / "corpus"
    proc = localize("cfg/synth_snn_v2.cfg", "-o", str(out), "--map", f"recipes/synth={corpus}",
                    "--set", "exp.n_epochs_tr=1", "--var", "KALDI_ROOT=/k", env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    shipped, local = read_cfg(ROOT / "cfg/synth_snn_v2.cfg"), read_cfg(out)
    assert local["exp"]["out_folder"] == str(ROOT / "exp/synth_snn_v2")
    assert local["exp"]["n_epochs_tr"] == "1" and not local.has_option("exp", "prepare")
    fea = local["dataset1"]["fea"]
    assert f"fea_lst={corpus}/data/train/feats.scp" in fea
    assert f"--utt2spk=ark:{corpus}/data/train/utt2spk ark:{corpus}/data/train/cmvn" in fea
    assert "ark:- ark:- | add-deltas" in fea
    for section in shipped.sections():  # only paths changed: the same keys, same other values
        assert set(shipped[section]) - {"prepare"} == set(local[section]), section
    assert local["cfg_proto"]["cfg_proto"] == shipped["cfg_proto"]["cfg_proto"]  # upstream's


def test_kaldi_root_expanded_and_mapped(tmp_path: Path) -> None:
    out = tmp_path / "timit.cfg"
    env = {**os.environ, "KALDI_ROOT": "/k"}
    proc = localize("cfg/TIMIT_snn_v2.cfg", "-o", str(out), "--map",
                    "${KALDI_ROOT}/egs/timit/s5/data-fmllr-tri3=recipes/timit/data", env=env)
    assert proc.returncode == 0, proc.stderr
    lab = read_cfg(out)["dataset3"]["lab"]
    assert "lab_folder=/k/egs/timit/s5/exp/dnn4_pretrain-dbn_dnn_ali_test" in lab
    assert f"lab_data_folder={ROOT}/recipes/timit/data/test/" in lab
    assert "$" not in out.read_text()


def test_unset_variable_is_one_line_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    proc = localize("cfg/TIMIT_snn_v2.cfg", "-o", str(tmp_path / "x.cfg"), env=env)
    assert proc.returncode == 2 and not (tmp_path / "x.cfg").exists()
    assert proc.stderr.strip() == ("localize: cfg/TIMIT_snn_v2.cfg: [dataset1] fea: ${KALDI_ROOT} "
                                   "is not set (export it, or pass --var KALDI_ROOT=...)")
    proc = localize("cfg/TIMIT_snn_v2.cfg", "-o", str(tmp_path / "x.cfg"), "--var", "KALDI_ROOT=/k",
                    env=env)
    assert proc.returncode == 0, proc.stderr


def test_runner_refuses_unset_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KALDI_ROOT", raising=False)
    with pytest.raises(ConfigError, match=r"\[dataset1\] fea fea_lst: \$\{KALDI_ROOT\} is not set"):
        load_experiment(ROOT / "cfg/TIMIT_snn_v2.cfg")


def test_model_doc_lists_every_proto_field() -> None:
    """docs/model.md's table of mandatory fields is the proto files' content."""
    doc = (ROOT / "docs/model.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| (`.*`) \|$", doc, flags=re.M))
    protos = sorted((ROOT / "pytorch_kaldi_snn/proto").glob("*.proto"))
    assert set(rows) == {p.stem for p in protos}
    for proto in protos:
        parser = configparser.ConfigParser()
        parser.read(proto)
        assert re.findall(r"`(\w+)`", rows[proto.stem]) == list(parser["proto"]), proto.name


def test_upstream_forward_needs_the_first_run(tmp_path: Path) -> None:
    """The production-mode cfg needs the first run's count file; without it, one line, exit 2."""
    cfg = tmp_path / "synth.cfg"
    assert localize("cfg/synth_snn_v2.cfg", "-o", str(cfg), "--var", "KALDI_ROOT=/k", "--set",
                    f"exp.out_folder={tmp_path}/exp", env=dict(os.environ)).returncode == 0
    proc = subprocess.run([sys.executable, "-m", "pytorch_kaldi_snn.config.upstream_forward",
                           str(cfg), "-o", str(tmp_path / "fwd.cfg")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and not (tmp_path / "fwd.cfg").exists()
    assert proc.stderr.strip() == (
        f"upstream_forward: {cfg}: [forward] normalize_with_counts_from: {tmp_path}/exp/exp_files/"
        "forward_out_cd_lab_cd.count does not exist: run upstream's run_exp.py on this cfg first")
