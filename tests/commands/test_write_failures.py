"""The user's machine: a full disk while writing the forward ark, lattices and decoding outputs,
child jobs on SIGTERM/SIGINT, and evaluate on a folder another run holds.

A full disk is simulated where the project writes: the temporary of an atomic write of a named
target is a symlink to /dev/full, whose writes fail with ENOSPC as a full disk's do (in
kaldi-native-io's C++ writer as in Python).
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Set, Tuple

import numpy as np
import pytest

from experiment_cfgs import ROOT, TINY, synth_cfg
from pytorch_kaldi_snn import evaluate, run_exp
from pytorch_kaldi_snn.decoding import DecodeOptions, decode_and_score
from pytorch_kaldi_snn.errors import OutputError, kaldi_error_line
from pytorch_kaldi_snn.io import atomic, mat_ark_writer, read_matrices, write_int_vectors, write_mat_ark
from pytorch_kaldi_snn.io.lock import folder_lock
from pytorch_kaldi_snn.io.ownership import MARKER
from pytorch_kaldi_snn.train.loop import CHECKPOINT
from repo_paths import KALDI_GOLDEN_DECODE as GOLDEN
from skips import missing

GRAPH, MODEL = GOLDEN / "graph", GOLDEN / "model" / "final.mdl"
NARROW = DecodeOptions(lattice_beam=2.0)
FULL = "cannot write: No space left on device; nothing was replaced (free space or fix the folder, then rerun)"


@pytest.fixture
def full_disk(monkeypatch) -> Set[str]:
    """The names (``forward_test.ark``) whose atomic writes meet a full disk; add to the set."""
    if not os.path.exists("/dev/full"):
        missing("needs /dev/full (Linux)")
    names: Set[str] = set()
    real = tempfile.mkstemp

    def mkstemp(dir=None, prefix=None, **kwargs):  # noqa: A002 (tempfile's own argument name)
        fd, temp = real(dir=dir, prefix=prefix, **kwargs)
        if any(prefix == f".{name}." for name in names):
            os.close(fd)
            os.remove(temp)
            os.symlink("/dev/full", temp)
            fd = os.open(temp, os.O_WRONLY)
        return fd, temp
    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    return names


@pytest.fixture(scope="module")
def four(tmp_path_factory) -> Path:
    ark = tmp_path_factory.mktemp("four") / "four.ark"
    write_mat_ark(ark, None, itertools.islice(read_matrices(GOLDEN / "decode" / "loglikes.ark"), 4))
    return ark


def _no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if p.name not in (".lock", MARKER)]


# -- a full disk ---------------------------------------------------------------------------------

@pytest.mark.parametrize("frames", [3, 3000], ids=["fails_at_close", "fails_at_a_write"])
def test_full_disk_under_the_kaldi_writer_names_the_target_and_keeps_the_old_file(
        full_disk: Set[str], tmp_path: Path, frames: int, capfd) -> None:
    """kaldi-native-io raises at a write once its buffer is full and only warns at close: both
    are one OutputError naming the ark, the old ark is kept, no temporary is left, and the C++
    writer's own lines (which name the temporary) do not reach the terminal."""
    ark = tmp_path / "forward_test.ark"
    write_mat_ark(ark, None, [("old", np.ones((2, 2)))])
    full_disk.add(ark.name)
    with pytest.raises(OutputError) as caught:
        with mat_ark_writer(ark) as put:
            for i in range(4):
                put(f"u{i}", np.zeros((frames, 40)))
    assert str(caught.value) == f"{ark}: {FULL}"
    assert [u for u, _ in read_matrices(ark)] == ["old"]
    assert _no_temporaries(tmp_path)
    assert capfd.readouterr().err == ""


def test_full_disk_under_int_vectors_and_python_writes(full_disk: Set[str], tmp_path: Path) -> None:
    full_disk.update({"best_words.txt", "hyp.txt"})
    with pytest.raises(OutputError) as words:
        write_int_vectors(tmp_path / "best_words.txt", [("u", [1, 2])], text=True)
    with pytest.raises(OutputError) as hyp:
        atomic.atomic_write(tmp_path / "hyp.txt", lambda tmp: tmp.write_text("u a b\n"))
    assert [str(words.value), str(hyp.value)] == [f"{tmp_path / 'best_words.txt'}: {FULL}",
                                                  f"{tmp_path / 'hyp.txt'}: {FULL}"]
    assert _no_temporaries(tmp_path)


def test_full_disk_while_writing_builtin_lattices(full_disk: Set[str], tmp_path: Path, four: Path,
                                                  monkeypatch) -> None:
    monkeypatch.setenv("PATH", "")
    full_disk.add("lat.1.gz")
    with pytest.raises(OutputError) as caught:
        decode_and_score(four, GRAPH, MODEL, tmp_path, NARROW, use_kaldi=False)
    assert str(caught.value) == f"{tmp_path / 'lat.1.gz'}: {FULL}"
    assert not (tmp_path / "lat.1.gz").exists() and _no_temporaries(tmp_path)


def test_full_disk_while_writing_kaldi_lattices(kaldi_env, tmp_path: Path, four: Path,
                                                monkeypatch) -> None:
    """latgen-faster-mapped only warns when its ``|gzip -c > lat.1.gz`` fails and exits 0: the
    bridge reads that warning and names the archive with gzip's own line."""
    from pytorch_kaldi_snn.decoding import kaldi_bridge
    for key in ("PATH", "KALDI_ROOT"):
        monkeypatch.setenv(key, kaldi_env[key])
    clear = kaldi_bridge.clear_lattices

    def clear_then_fill(out: Path) -> None:
        clear(out)
        os.symlink("/dev/full", out / "lat.1.gz")
    monkeypatch.setattr(kaldi_bridge, "clear_lattices", clear_then_fill)
    with pytest.raises(OutputError) as caught:
        decode_and_score(four, GRAPH, MODEL, tmp_path, NARROW, use_kaldi=True)
    log = tmp_path / "log" / "decode.1.log"
    assert str(caught.value) == f"{tmp_path / 'lat.1.gz'}: cannot write: gzip: stdout: No space left " \
                                f"on device (see {log})"


def test_full_disk_while_writing_the_forward_ark_of_a_run(full_disk: Set[str], tiny_corpus: Path,
                                                          tmp_path: Path, capsys) -> None:
    """One line naming forward_test.ark (not its temporary), also in log.log; the checkpoint is
    kept, and the rerun with space forwards without training again."""
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    args = [str(cfg)] + [a for o in TINY + ["forward.require_decoding=False", "exp.n_epochs_tr=1",
                                            f"exp.out_folder={out}"] for a in ("--set", o)]
    full_disk.add("forward_test.ark")
    capsys.readouterr()
    assert run_exp.main(args) == 2
    line = f"{out / 'forward_test.ark'}: {FULL}"
    assert capsys.readouterr().err == f"error: {line}\n"
    assert (out / "log.log").read_text().splitlines()[-1].endswith(f" error: {line}")
    assert not (out / "forward_test.ark").exists() and _no_temporaries(out)
    full_disk.clear()
    assert run_exp.main(args) == 0
    rerun = capsys.readouterr()
    assert "resuming after epoch 1" in rerun.out and (out / "forward_test.ark").is_file()


# -- Kaldi's failures --------------------------------------------------------------------------------

def test_kaldi_error_line_is_the_error_not_the_last_line() -> None:
    stderr = ("gzip: lat.1.gz: No such file or directory\n"
              "ERROR (lattice-scale[5.5]:Close():kaldi-table-inl.h:678) TableReader: error\n\n"
              "[ Stack-Trace: ]\nlattice-scale(main+0x716) [0x55]\n"
              "LOG (lattice-best-path[5.5]:main():lattice-best-path.cc:128) Done 0 lattices, failed for 0\n")
    assert kaldi_error_line(stderr) == "ERROR (lattice-scale[5.5]:Close():kaldi-table-inl.h:678) TableReader: error"
    assert kaldi_error_line("LOG (x) one\nWARNING (x) two\n") == "WARNING (x) two"


def test_kaldi_rescoring_of_lattices_removed_under_it_reports_the_error(kaldi_env, tmp_path: Path) -> None:
    """What the first of two evaluates met when the second cleared its lattices: Kaldi's ERROR
    line, not lattice-best-path's 'Done 0 lattices'."""
    from pytorch_kaldi_snn.errors import DataError
    from pytorch_kaldi_snn.scoring.lm_sweep import kaldi_hypotheses
    lat = tmp_path / "lat.1.gz"
    with pytest.raises(DataError) as caught:
        kaldi_hypotheses([lat], GRAPH / "words.txt", kaldi_env["PATH"])(10, 0.0)
    message = str(caught.value)
    assert message.startswith(f"{lat}: Kaldi rescoring failed: ERROR (lattice-scale"), message
    assert message.endswith(f"error detected closing archive 'gunzip -cf -- {lat}|'"), message


# -- child jobs end before the lock is released ----------------------------------------------------

FAKE_LATGEN = """#!/bin/bash
# a slow decoder with a child of its own (as latgen's lattice pipe): both pids, then wait
sleep 300 &
echo "$! $$" > "{pids}"
wait
"""
RUNNER = """
import sys
from pathlib import Path
from pytorch_kaldi_snn.cli import run_interruptible
from pytorch_kaldi_snn.decoding import decode_and_score
from pytorch_kaldi_snn.io.lock import folder_lock

out, four, graph, model = map(Path, sys.argv[1:])

def decode():
    with folder_lock(out):
        decode_and_score(four, graph, model, out / "decode_test", use_kaldi=True)
sys.exit(run_interruptible("error", decode))
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or during the read
        return False
    return "\nState:\tZ" not in status


def _ctrl_c_delivered() -> None:
    """SIGINT as a terminal delivers it: a suite started in the background of a shell inherits
    it ignored (and so would the runner, whose Ctrl-C is what the test sends)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _runner_decoding(tmp_path: Path, four: Path) -> Tuple[subprocess.Popen, List[int], Path]:
    """A runner decoding with a slow latgen; returns it, latgen's pid and its child's, and the
    out_folder, once latgen runs."""
    pids = tmp_path / "pids"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    latgen = bin_dir / "latgen-faster-mapped"
    latgen.write_text(FAKE_LATGEN.format(pids=pids))
    latgen.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(ROOT))
    out = tmp_path / "exp"
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(out), str(four), str(GRAPH), str(MODEL)],
                              env=env, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_delivered)
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().endswith("\n")) and time.monotonic() < deadline:
        assert runner.poll() is None, runner.stderr.read()
        time.sleep(0.02)
    children: List[int] = [int(p) for p in pids.read_text().split()]
    assert all(_alive(p) for p in children)
    return runner, children, out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_kaldi_decodes_ends_the_jobs_before_the_lock_is_released(
        sig: int, tmp_path: Path, four: Path) -> None:
    runner, children, out = _runner_decoding(tmp_path, four)
    runner.send_signal(sig)
    assert runner.wait(timeout=30) == 130
    assert runner.stderr.read() == "interrupted: rerun the same command to resume\n"
    assert [_alive(p) for p in children] == [False, False]
    assert (out / ".lock").read_text() == ""  # released cleanly, not dropped by a dying process
    with folder_lock(out):
        pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_sigkill_of_the_runner_while_kaldi_decodes_ends_the_jobs(tmp_path: Path, four: Path) -> None:
    """Nothing in the runner runs on SIGKILL: the kernel ends latgen and its child
    (io/commands.py). Before, both ran on, writing into decode_test/."""
    runner, children, _ = _runner_decoding(tmp_path, four)
    runner.kill()
    assert runner.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [_alive(p) for p in children] == [False, False]


# -- evaluate holds the experiment's lock ----------------------------------------------------------

def test_evaluate_on_a_folder_in_use_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "exp"
    folder.mkdir()
    for name in ("results.json", "resolved.cfg", CHECKPOINT):
        (folder / name).write_text("{}\n")
    with folder_lock(folder):
        holder = (folder / ".lock").read_text().strip()
        capsys.readouterr()
        rc = evaluate.main([str(folder), "--data", str(tmp_path / "mydata"), "--ali", str(tmp_path / "ali")])
    assert (rc, capsys.readouterr().err) == (
        2, f"evaluate: {folder} is in use by another run ({holder}); wait for it to finish\n")
    assert not (folder / "eval_mydata").exists()
