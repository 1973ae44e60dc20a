"""Fault injection: bad cfgs and bad data give one exact line and exit 2 before any work;
divergence stops cleanly (or skips batches); one run per out_folder; kill -9 anywhere resumes
bit for bit.

The cases live in tests/support/fault_cases.py. Everything but the kill test runs in-process through
``run_exp.main`` (no interpreter start per case); data cases run on the built-in path and, where
Kaldi is installed, on Kaldi's binaries.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from experiment_cfgs import ROOT, TINY, synth_cfg
from fault_cases import CFG_CASES, DATA_CASES, broken_utt
from pytorch_kaldi_snn import run_exp
from pytorch_kaldi_snn.config.experiment import load_experiment
from pytorch_kaldi_snn.data.loading import label_sizes
from pytorch_kaldi_snn.io.lock import folder_lock
from pytorch_kaldi_snn.io.ownership import take
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel
from pytorch_kaldi_snn.train.loop import CHECKPOINT

QUICK = TINY + ["forward.require_decoding=False"]


def _main(cfg: Path, out: Path, sets: List[str], capsys) -> tuple:
    args = [str(cfg)] + [a for o in QUICK + [f"exp.out_folder={out}"] + sets for a in ("--set", o)]
    capsys.readouterr()
    rc = run_exp.main(args)
    captured = capsys.readouterr()
    return rc, captured.err


def _one_line_error(rc: int, err: str, expected: str) -> None:
    assert (rc, err) == (2, f"error: {expected}\n")


# -- bad cfgs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CFG_CASES, ids=[c[0] for c in CFG_CASES])
def test_bad_cfg_is_one_line_before_any_work(case, tiny_corpus: Path, tmp_path: Path,
                                             capsys) -> None:
    _, sets, edit, expected = case
    cfg = synth_cfg(tmp_path, tiny_corpus, text_edit=edit)
    out = tmp_path / "out"
    rc, err = _main(cfg, out, sets, capsys)
    _one_line_error(rc, err, f"{cfg}: " + expected.format(cfg=cfg, corpus=tiny_corpus))
    assert not out.exists()


def test_cfg_path_that_is_not_a_file(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "fifo.cfg"
    os.mkfifo(fifo)
    for path, message in ((tmp_path, "is a directory, not a cfg file"),
                          (fifo, "is not a regular file (a FIFO, socket or device?), not a cfg file"),
                          (tmp_path / "none.cfg", f"cfg file {tmp_path / 'none.cfg'} does not exist")):
        rc, err = _main(path, tmp_path / "out", [], capsys)
        _one_line_error(rc, err, f"{path}: {message}")


def test_cfg_that_is_not_utf8(tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    text = cfg.read_bytes()
    at = text.index(b"[batches]")
    cfg.write_bytes(text[:at] + b"# caf\xe9\n" + text[at:])
    rc, err = _main(cfg, tmp_path / "out", [], capsys)
    line = text[:at].count(b"\n") + 1
    _one_line_error(rc, err, f"{cfg}: line {line}: byte 0xe9 at offset {at + 5} is not UTF-8; "
                             f"save the cfg as UTF-8")


def test_out_folder_that_is_a_file(tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    out.write_text("not a folder\n")
    rc, err = _main(cfg, out, [], capsys)
    _one_line_error(rc, err, f"{cfg}: [exp] out_folder: {out} exists and is not a folder")


def test_readout_size_that_does_not_match_its_labels(tiny_corpus: Path, tmp_path: Path,
                                                     capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    classes = label_sizes(load_experiment(cfg).train_set)["lab_cd"]
    rc, err = _main(cfg, out, ["architecture2.dnn_lay=40"], capsys)
    _one_line_error(rc, err, f"{cfg}: [architecture2] out_cd has 40 values but label set lab_cd "
                             f"has {classes} classes (size the readout with N_out_lab_cd)")
    assert not (out / CHECKPOINT).exists()


def test_checkpoint_of_another_architecture_is_refused_by_name(tiny_corpus: Path,
                                                               tmp_path: Path, capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    take(out, "a test")
    other = load_experiment(cfg, [f"{o}" for o in QUICK] + ["architecture1.snn_lay=550,550"])
    torch.save({"cfg_text": other.cfg_text, "model": {}}, out / CHECKPOINT)
    rc, err = _main(cfg, out, [], capsys)
    _one_line_error(rc, err, f"{cfg}: [exp] out_folder: {out / CHECKPOINT} was trained with "
                             f"another cfg ([architecture1] snn_lay: checkpoint '550,550', cfg "
                             f"'16,16'); remove it or change out_folder")


# -- one run per out_folder --------------------------------------------------------------------

def test_second_run_on_a_locked_out_folder_is_refused(tiny_corpus: Path, tmp_path: Path,
                                                      capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    take(out, "a test")
    with folder_lock(out):
        holder = (out / ".lock").read_text().strip()
        rc, err = _main(cfg, out, [], capsys)
    assert holder.startswith(f"pid {os.getpid()} on ")
    _one_line_error(rc, err, f"{cfg}: [exp] out_folder: {out} is in use by another run "
                             f"({holder}); wait for it or change out_folder")


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = f"from pytorch_kaldi_snn.io.lock import folder_lock\nfrom pathlib import Path\n" \
             f"import os\nwith folder_lock(Path({str(out)!r})):\n    os._exit(9)\n"
    assert subprocess.run(["python", "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode == 9
    dead = (out / ".lock").read_text().strip()
    assert dead.startswith("pid ")
    seen: List[str] = []
    with folder_lock(out, seen.append):
        assert (out / ".lock").read_text().startswith(f"pid {os.getpid()} ")
    assert seen == [f"took over the lock of {out} left by a run that ended without releasing "
                    f"it ({dead})"]


def test_a_forked_worker_does_not_keep_the_lock_of_a_killed_run(tmp_path: Path) -> None:
    """A data worker is forked from the run: killed, the run's lock is free at once, while the
    worker still lives (it exits only when it notices, seconds later under load)."""
    out = tmp_path / "out"
    script = (f"import os, time\nfrom pathlib import Path\n"
              f"from pytorch_kaldi_snn.io.lock import folder_lock\n"
              f"with folder_lock(Path({str(out)!r})):\n"
              f"    worker = os.fork()\n"
              f"    if worker == 0:\n        os.closerange(0, 3)\n        time.sleep(60)\n"
              f"        os._exit(0)\n"
              f"    print(worker, flush=True)\n    os._exit(9)\n")
    done = subprocess.run(["python", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(done.stdout)
    try:
        assert done.returncode == 9
        os.kill(worker, 0)  # still alive
        with folder_lock(out):
            pass
    finally:
        os.kill(worker, signal.SIGKILL)


# -- bad data ----------------------------------------------------------------------------------

BUILTIN = {
    "nan_feature": "{tmp}/feats.scp: utterance {utt}: features hold 1 NaN/Inf values (first at frame 5, dimension 2: nan)",
    "inf_feature": "{tmp}/feats.scp: utterance {utt}: features hold 1 NaN/Inf values (first at frame 5, dimension 2: inf)",
    "matrix_0x0": "{tmp}/feats.scp: utterance {utt}: features have no frames (0 x 0 matrix)",
    "matrix_0x40": "scp:{tmp}/feats.scp: utterance {utt}: read failed at {tmp}/feats.ark:{offset} (a missing, truncated or corrupt record, a wrong offset or a failing command)",
    "fewer_frames_than_labels": "utterance {utt}: dataset synth_tr: frame counts differ (fea fbank {short}, lab lab_cd {frames})",
    "wrong_dimension": "{tmp}/feats.scp: utterance {utt}: apply-cmvn: CMVN stats have dim 40, features 39",
    "truncated_ark": "scp:{tmp}/feats.scp: utterance {utt}: read failed at {tmp}/feats.ark:{offset} (a missing, truncated or corrupt record, a wrong offset or a failing command)",
    "corrupt_header_byte": "scp:{tmp}/feats.scp: utterance {utt}: read failed at {tmp}/feats.ark:{offset} (a missing, truncated or corrupt record, a wrong offset or a failing command)",
    "wrong_scp_offset": "scp:{tmp}/feats.scp: utterance {utt}: read failed at {tmp}/feats.ark:{offset} (a missing, truncated or corrupt record, a wrong offset or a failing command)",
    "scp_names_missing_ark": "scp:{tmp}/feats.scp: utterance {utt}: read failed at {tmp}/nosuch.ark:{offset} (a missing, truncated or corrupt record, a wrong offset or a failing command)",
    "empty_scp": "{tmp}/feats.scp: holds no utterances",
    "no_alignments": "{tmp}/ali: no ali.*.gz alignments (align a new set with the recipe's GMM: "
                     "python -m pytorch_kaldi_snn.prepare_set)",
    "alignments_not_gzip": "ark:gunzip -c -- {tmp}/ali/ali.1.gz |: read failed before the first item (pipe exit status or corrupt archive)",
    "alignments_truncated": "ark:gunzip -c -- {tmp}/ali/ali.1.gz |: read failed after {before_half} (pipe exit status or corrupt archive)",
    "transition_id_out_of_range": "{tmp}/ali/ali.*.gz: utterance {utt}: transition-id 100000 at frame 3 is out of range 1..234 of the model",
    "missing_final_mdl": "{tmp}/ali/final.mdl: cannot read Kaldi object: No such file or directory",
    "corrupt_final_mdl": "{tmp}/ali/final.mdl: expected <Topology>, got garbage (at byte 28)",
    "utterance_of_unknown_speaker": "ark:{corpus}/data/train/cmvn_speaker.ark: utterance {utt}: no CMVN stats for nosuchspeaker",
}
_PIPE_FAILED = "{tmp}/feats.scp: utterance {utt}: read failed at {tmp}/{ark}:{offset} (pipe exit status or corrupt archive)"
KALDI = {
    **BUILTIN,
    # Kaldi's apply-cmvn / copy-feats fail inside the pipe: the line names the same entry (an
    # empty scp is refused before any pipe runs, as on the built-in path).
    **{case: _PIPE_FAILED for case in ("matrix_0x0", "matrix_0x40", "wrong_dimension",
                                       "truncated_ark", "corrupt_header_byte",
                                       "wrong_scp_offset")},
    "scp_names_missing_ark": _PIPE_FAILED.replace("{ark}", "nosuch.ark"),
    "alignments_not_gzip": "{tmp}/ali/ali.*.gz: `ali-to-pdf` failed after 0 utterances (Kaldi's messages are in the log)",
    "alignments_truncated": "{tmp}/ali/ali.*.gz: `ali-to-pdf` failed after 4 utterances (Kaldi's messages are in the log)",
    "transition_id_out_of_range": "{tmp}/ali/ali.*.gz: utterance {utt}: `ali-to-pdf` failed (Kaldi's messages are in the log)",
}
# Kaldi's apply-cmvn skips an utterance without speaker stats (with a warning): so does the
# Kaldi path, and the log says so (asserted below); the built-in path refuses it.
KALDI_SKIPS = {"utterance_of_unknown_speaker"}


def _facts(tmp: Path, corpus: Path) -> Dict[str, str]:
    """Values the expected lines name: the broken utterance, its scp offset, its frame count."""
    utt = broken_utt(corpus)
    scp = tmp / "feats.scp"
    offset = frames = ""
    if scp.exists() and scp.read_text():
        entry = dict(line.split() for line in scp.read_text().splitlines())[utt]
        offset = entry.rsplit(":", 1)[1]
    from pytorch_kaldi_snn.io import read_int_vectors, read_matrices
    original = dict(read_matrices(f"scp:{corpus}/data/train/feats.scp"))
    frames = len(original[utt])
    alignments = [u for u, _ in read_int_vectors(corpus / "exp/mono_ali_train/ali.1.gz")]
    return {"tmp": str(tmp), "corpus": str(corpus), "utt": utt, "offset": offset,
            "ark": "feats.ark", "frames": str(frames),
            "short": str(frames - 10), "before_half": alignments[3]}


def _environment(mode: str, request, monkeypatch) -> None:
    env = request.getfixturevalue("kaldi_env" if mode == "kaldi" else "builtin_env")
    for key in ("PATH", "LD_LIBRARY_PATH", "KALDI_ROOT"):
        if key in env:
            monkeypatch.setenv(key, env[key])
        else:
            monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("mode", ["builtin", "kaldi"])
@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_names_file_and_utterance(case: str, mode: str, tiny_corpus: Path,
                                           tmp_path: Path, request, monkeypatch,
                                           capsys) -> None:
    _environment(mode, request, monkeypatch)
    edit = DATA_CASES[case](tmp_path, tiny_corpus)
    cfg = synth_cfg(tmp_path, tiny_corpus, text_edit=edit)
    facts = _facts(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    rc, err = _main(cfg, out, ["exp.n_epochs_tr=1"], capsys)
    if mode == "kaldi" and case in KALDI_SKIPS:
        assert rc == 0, err
        assert f"1 utterances lack features or labels and are skipped, e.g. {facts['utt']}" \
            in (out / "log.log").read_text()
        return
    expected = (KALDI if mode == "kaldi" else BUILTIN)[case].format(**facts)
    _one_line_error(rc, err, expected)
    assert not (out / CHECKPOINT).exists()
    if case == "corrupt_header_byte":  # the C++ reader's own lines went to the log only
        assert "kaldi: " in (out / "log.log").read_text()


# -- divergence --------------------------------------------------------------------------------

def _poison_training_batch(monkeypatch, number: int) -> None:
    """Test-side fault: training batch ``number`` (counted over the run) gets a NaN loss."""
    forward = AcousticModel.forward
    seen = {"batches": 0}

    def poisoned(self, features, labels):
        values = forward(self, features, labels)
        if self.training:
            seen["batches"] += 1
            if seen["batches"] == number:
                values["loss_final"] = values["loss_final"] * float("nan")
        return values
    monkeypatch.setattr(AcousticModel, "forward", poisoned)


def test_nan_loss_stops_naming_epoch_and_batch_and_keeps_the_checkpoint(
        tiny_corpus: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    _poison_training_batch(monkeypatch, 9)  # epoch 1 has 7 batches: epoch 2, batch 2
    rc, err = _main(cfg, out, [], capsys)
    _one_line_error(rc, err, f"training diverged at epoch 2, batch 2: value loss_final is not "
                             f"finite (NaN/Inf); {out / CHECKPOINT} of epoch 1 is kept, no "
                             f"results written. Lower arch_lr, check the features, or set [exp] "
                             f"on_nonfinite = skip to skip such batches")
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    assert len(state["history"]) == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "results.json").exists()


def test_nan_loss_after_a_mid_epoch_checkpoint_names_it(tiny_corpus: Path, tmp_path: Path,
                                                        monkeypatch, capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    _poison_training_batch(monkeypatch, 9)  # epoch 2, batch 2
    rc, err = _main(cfg, out, ["exp.checkpoint_every_batches=1"], capsys)
    assert rc == 2
    assert f"at epoch 2, batch 2: value loss_final is not finite (NaN/Inf); {out / CHECKPOINT} " \
           f"of epoch 2, batch 1 is kept, no results written" in err
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    assert (len(state["history"]), state["progress"]["batch"]) == (1, 1)


def test_skip_option_skips_the_bad_batch_and_counts_it(tiny_corpus: Path, tmp_path: Path,
                                                       monkeypatch, capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    _poison_training_batch(monkeypatch, 9)
    rc, err = _main(cfg, out, ["exp.on_nonfinite=skip"], capsys)
    assert (rc, err) == (0, "")
    history = json.loads((out / "results.json").read_text())["history"]
    assert [row["skipped_batches"] for row in history] == [0, 1]
    assert "| 1 batches skipped (NaN/Inf)" in (out / "log.log").read_text()


def test_huge_learning_rate_stops_in_epoch_1_without_results(tiny_corpus: Path, tmp_path: Path,
                                                              capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    rc, err = _main(cfg, out, ["architecture1.arch_lr=1e6", "architecture2.arch_lr=1e6"], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("error: training diverged at epoch 1, batch "), err
    assert "no checkpoint was written, no results written" in err
    assert not (out / CHECKPOINT).exists() and not (out / "results.json").exists()


# -- interrupted writes and kill -9 --------------------------------------------------------------

def test_temporaries_of_interrupted_writes_are_removed(tiny_corpus: Path, tmp_path: Path,
                                                       capsys) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    take(out, "a test")
    stale = out / "decode_test" / ".lat.1.gz.k3j_9x2q.pks-partial"
    stale.parent.mkdir()
    stale.write_bytes(b"half a lattice")
    # files of the user's that look like temporaries of other programs are not the project's
    kept = [out / ".htaccess.disabled", out / ".learning_curves.png.k3j_9x2q"]
    for path in kept:
        path.write_text("mine\n")
    rc, _ = _main(cfg, out, ["exp.n_epochs_tr=1"], capsys)
    assert rc == 0
    assert not stale.exists()
    assert all(path.read_text() == "mine\n" for path in kept)
    assert f"removed {stale}, left by an interrupted write" in (out / "log.log").read_text()


KILLS = 10
KILL_SEED = 17


def _command(cfg: Path, out: Path) -> List[str]:
    # a mid-epoch checkpoint every 3 batches: kills land before, during and after those too
    sets = QUICK + [f"exp.out_folder={out}", "exp.checkpoint_every_batches=3"]
    return [str(ROOT / "run_exp.sh"), str(cfg), *[a for o in sets for a in ("--set", o)]]


def _outcome(out: Path) -> Dict[str, object]:
    """Everything a finished run leaves that must not depend on interruptions."""
    results = json.loads((out / "results.json").read_text())
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
    return {
        "weights": {k: hashlib.sha256(v.numpy().tobytes()).hexdigest()
                    for k, v in state["model"].items()},
        "history": [{k: v for k, v in row.items() if k != "seconds"} for row in state["history"]],
        "results": {k: results[k] for k in ("frame_acc", "zero_outputs_pct",
                                            "zero_outputs_pct_per_layer", "mults_per_frame")},
        "forward": hashlib.sha256((out / "forward_test.ark").read_bytes()).hexdigest(),
    }


def _start_and_wait_ready(cfg: Path, out: Path, env: Dict[str, str]) -> subprocess.Popen:
    """Start a run; return once its log says it is about to train (the data are loaded)."""
    log = out / "log.log"
    before = log.read_text().count(READY) if log.exists() else 0
    proc = subprocess.Popen(_command(cfg, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    while proc.poll() is None and not (log.exists() and log.read_text().count(READY) > before):
        time.sleep(0.01)
    return proc


READY = "device: cpu"


@pytest.mark.slow
def test_kill_9_at_seeded_random_moments_resumes_bit_exact(tiny_corpus: Path,
                                                           tmp_path: Path) -> None:
    """One uninterrupted reference; then one out_folder killed KILLS times, each at a seeded
    random moment after its data are loaded (training, validation, epoch and mid-epoch
    checkpointing, forward, results), and resumed each time: the end is the reference, bit for
    bit."""
    cfg = synth_cfg(tmp_path, tiny_corpus)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = _start_and_wait_ready(cfg, straight, env)
    ready = time.monotonic()
    assert proc.wait() == 0
    work = time.monotonic() - ready  # training to results, uninterrupted
    rng = random.Random(KILL_SEED)
    moments = []
    for fraction in [rng.uniform(0.0, 0.75) for _ in range(KILLS)]:
        proc = _start_and_wait_ready(cfg, killed, env)
        try:
            proc.wait(timeout=fraction * work)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        status = proc.wait()
        assert status in (0, -signal.SIGKILL)
        last = (killed / "log.log").read_text().splitlines()[-1][20:70]
        moments.append(f"{fraction:.2f} of {work:.1f}s: {'killed' if status else 'finished'}"
                       f" after '{last}'")
    print("kill points:", *moments, sep="\n  ")
    finished = subprocess.run(_command(cfg, killed), capture_output=True, text=True, env=env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert _outcome(killed) == _outcome(straight)
