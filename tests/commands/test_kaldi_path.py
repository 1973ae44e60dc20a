"""Our runner through real Kaldi binaries, against the built-in path on the same inputs.

With Kaldi on PATH, ``./run_exp.sh`` on the tiny corpus takes the Kaldi path at every
step and says so; without it, the built-in path. Features and labels of both paths, the 1-best of
the built-in decoder and of ``latgen-faster-mapped`` on the same log-likelihoods and graph, and
the PER against ``compute-wer``'s and ``sclite``'s on the same hypotheses are compared. Needs
Kaldi (``kaldi_env``: skipped with one line where it is missing, required under CI).
"""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest

from experiment_cfgs import TINY, synth_cfg
from kaldi_inputs import alignment_loglikes
from pytorch_kaldi_snn.config.experiment import load_experiment
from pytorch_kaldi_snn.decoding.decoder import DecodeOptions
from pytorch_kaldi_snn.decoding.kaldi_bridge import decode_and_score
from pytorch_kaldi_snn.features.pipes import read_features
from pytorch_kaldi_snn.gmm.labels import read_lab_folder
from pytorch_kaldi_snn.io.tables import read_int_vectors, read_kaldi_map
from pytorch_kaldi_snn.scoring.per import run_sclite
from repo_paths import ROOT

SETS = ("train", "dev", "test")
FEATURE_TOLERANCE = 1e-6  # docs/kaldi_io.md: our apply-cmvn / add-deltas are bit-exact
KALDI_LOG = ("features: Kaldi binaries", "labels lab_cd: Kaldi `ali-to-pdf`",
             "decoding: kaldi decoder (latgen-faster-mapped)")
BUILTIN_LOG = ("features: built-in pipe", "labels lab_cd: native `ali-to-pdf`",
               "decoding: builtin decoder")


def _use(monkeypatch: pytest.MonkeyPatch, env: Dict[str, str]) -> None:
    """Make this process see ``env``'s PATH and KALDI_ROOT (our code looks there for Kaldi)."""
    monkeypatch.setenv("PATH", env["PATH"])
    if "KALDI_ROOT" in env:
        monkeypatch.setenv("KALDI_ROOT", env["KALDI_ROOT"])
    else:
        monkeypatch.delenv("KALDI_ROOT", raising=False)


@pytest.fixture(scope="module")
def runs(tiny_corpus: Path, kaldi_env: Dict[str, str], builtin_env: Dict[str, str],
         tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """``./run_exp.sh`` on the tiny corpus once with Kaldi on PATH and once without."""
    tmp = tmp_path_factory.mktemp("kaldi_path")
    cfg = synth_cfg(tmp, tiny_corpus)
    outs = {}
    for name, env in (("kaldi", kaldi_env), ("builtin", builtin_env)):
        outs[name] = tmp / name
        proc = subprocess.run(["./run_exp.sh", str(cfg), *sum((["--set", s] for s in TINY), []),
                               "--set", f"exp.out_folder={outs[name]}"], cwd=ROOT,
                              env={**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return outs


@pytest.mark.slow
def test_runner_says_which_path_ran_and_both_agree(runs: Dict[str, Path]) -> None:
    kaldi_log = (runs["kaldi"] / "log.log").read_text()
    builtin_log = (runs["builtin"] / "log.log").read_text()
    for line in KALDI_LOG:
        assert line in kaldi_log, line
        assert line not in builtin_log, line
    for line in BUILTIN_LOG:
        assert line in builtin_log, line
    kaldi, builtin = (json.loads((runs[n] / "results.json").read_text()) for n in ("kaldi",
                                                                                   "builtin"))
    assert (kaldi["decoder"], builtin["decoder"]) == ("kaldi", "builtin")
    for key in ("per", "frame_acc", "test_loss"):
        assert kaldi[key] == pytest.approx(builtin[key], abs=1e-6), key
    print(f"runner PER: kaldi path {kaldi['per']:.2f} %, built-in path {builtin['per']:.2f} %; "
          f"frame acc {kaldi['frame_acc']} / {builtin['frame_acc']}", file=sys.stderr)


@pytest.mark.slow
def test_runner_per_equals_compute_wer_and_sclite(runs: Dict[str, Path], tiny_corpus: Path,
                                                  kaldi_env: Dict[str, str],
                                                  tmp_path: Path) -> None:
    for name, out in runs.items():
        result = json.loads((out / "decode.json").read_text())  # what results.json reports
        assert round(result["error_rate"], 2) == json.loads((out / "results.json").read_text())["per"]
        best = Path(result["hyp"])  # the hypotheses of the best LM weight, which are reported
        counts = _compute_wer(tiny_corpus / "data/test/text", best, kaldi_env)
        assert counts == (result["ins"] + result["del"] + result["sub"], result["ref_tokens"])
        assert result["error_rate"] == pytest.approx(100 * counts[0] / counts[1], abs=0.005)
        sclite = _sclite(tiny_corpus / "data/test/text", best, tmp_path / name, kaldi_env)
        assert (sclite.ins, sclite.dels, sclite.subs) == (result["ins"], result["del"],
                                                          result["sub"]), name


def _compute_wer(ref: Path, hyp: Path, env: Dict[str, str]) -> Tuple[int, int]:
    proc = subprocess.run(["compute-wer", "--text", "--mode=present", f"ark:{ref}", f"ark:{hyp}"],
                          env=env, capture_output=True, text=True, check=True)
    match = re.search(r"%WER [\d.]+ \[ (\d+) / (\d+),", proc.stdout)
    assert match, proc.stdout
    return int(match.group(1)), int(match.group(2))


def _sclite(ref: Path, hyp: Path, work: Path, env: Dict[str, str]):
    sclite = subprocess.run(["bash", "-c", "command -v sclite"], env=env, capture_output=True,
                            text=True, check=True).stdout.strip()
    return run_sclite(ref, hyp, work, sclite=sclite)


def test_features_and_labels_match_kaldi(tiny_corpus: Path, kaldi_env: Dict[str, str],
                                         builtin_env: Dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    exp = load_experiment(synth_cfg(tmp_path, tiny_corpus))
    log = logging.getLogger("test_kaldi_path")
    worst = 0.0
    for dataset in exp.datasets.values():
        fea = dataset.features[0]
        _use(monkeypatch, kaldi_env)
        kaldi = dict(read_features(str(fea.scp), fea.opts, log))
        kaldi_labels = {lab.name: _kaldi_labels(lab.folder, lab.opts, kaldi_env)
                        for lab in dataset.labels}
        _use(monkeypatch, builtin_env)
        builtin = dict(read_features(str(fea.scp), fea.opts, log))
        assert kaldi.keys() == builtin.keys() and kaldi
        for utt, feats in kaldi.items():
            assert feats.shape == builtin[utt].shape, utt
            worst = max(worst, float(np.abs(feats - builtin[utt]).max()))
        for lab in dataset.labels:
            ours = read_lab_folder(lab.folder, lab.opts)
            assert ours.keys() == kaldi_labels[lab.name].keys()
            for utt, labels in ours.items():
                assert np.array_equal(labels, kaldi_labels[lab.name][utt]), (lab.name, utt)
    assert worst <= FEATURE_TOLERANCE
    print(f"features: max |Kaldi - built-in| = {worst:.3g}", file=sys.stderr)


def _kaldi_labels(folder: Path, opts: str, env: Dict[str, str]) -> Dict[str, np.ndarray]:
    """PyTorch-Kaldi's label pipe: ``<lab_opts> final.mdl "ark:gunzip -c ali.*.gz|" ark:-``."""
    script = f"{opts} {folder}/final.mdl 'ark:gunzip -c {folder}/ali.*.gz|' ark,t:-"
    text = subprocess.run(["bash", "-o", "pipefail", "-c", script], env=env, capture_output=True,
                          text=True, check=True).stdout
    return {line.split()[0]: np.array(line.split()[1:], dtype=np.int64)
            for line in text.splitlines() if line.strip()}


def test_builtin_one_best_equals_latgen_faster_mapped(tiny_corpus: Path,
                                                      kaldi_env: Dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    loglikes = alignment_loglikes(tiny_corpus, tmp_path / "loglikes.ark")
    graph, model = tiny_corpus / "exp/mono/graph", tiny_corpus / "exp/mono/final.mdl"
    ref = tiny_corpus / "data/test/text"
    opts = DecodeOptions()
    _use(monkeypatch, kaldi_env)
    kaldi = decode_and_score(loglikes, graph, model, tmp_path / "kaldi", opts, ref, use_kaldi=True)
    builtin = decode_and_score(loglikes, graph, model, tmp_path / "builtin", opts, ref,
                               use_kaldi=False)
    assert (kaldi.decoder, builtin.decoder) == ("kaldi", "builtin")
    words = {n: dict(read_int_vectors(run.out_dir / "best_words.txt"))
             for n, run in (("kaldi", kaldi), ("builtin", builtin))}
    assert words["kaldi"].keys() == words["builtin"].keys() == read_kaldi_map(ref).keys()
    for utt, seq in words["kaldi"].items():
        assert np.array_equal(seq, words["builtin"][utt]), utt
    assert kaldi.counts == builtin.counts
    errors, n_ref = _compute_wer(ref, kaldi.out_dir / "hyp.txt", kaldi_env)
    assert (errors, n_ref) == (kaldi.counts.errors, kaldi.counts.ref_words)
    assert 0 < errors < n_ref  # a real decode: neither empty nor perfect
    print(f"1-best agreement {len(words['kaldi'])}/{len(words['kaldi'])} utterances; "
          f"PER {100 * errors / n_ref:.2f} % both decoders and compute-wer", file=sys.stderr)
