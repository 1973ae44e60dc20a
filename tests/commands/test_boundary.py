"""The boundary with the user's machine (issue 24, part 1): a checkpoint is data, never code;
an out_folder that holds anybody else's files is refused before the first write.

Each case is written as an attacker or a careless user would: a ``checkpoint.pt`` carrying a
pickle payload that would create a marker file, an ``arch_pretrain_file`` doing the same, an
out_folder pointed at a home-like folder of dot files, at ``/``, at ``.`` or left empty. The
marker never appears, nothing outside the experiment changes, and the message is one line.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from experiment_cfgs import TINY, synth_cfg
from pytorch_kaldi_snn import evaluate as evaluate_cli
from pytorch_kaldi_snn import run_exp
from pytorch_kaldi_snn import transcribe as transcribe_cli
from pytorch_kaldi_snn.io.ownership import MARKER, NotOurFolder, check_may_take
from pytorch_kaldi_snn.train.checkpoint import RETRAIN
from pytorch_kaldi_snn.train.loop import CHECKPOINT
from repo_paths import ROOT

QUICK = TINY + ["forward.require_decoding=False", "exp.n_epochs_tr=1"]


class _Payload:
    """Unpickling this runs ``os.system(command)``: what a crafted checkpoint carries."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _hostile_checkpoint(path: Path, marker: Path) -> None:
    torch.save({"model": {}, "cfg_text": _Payload(f"touch {marker}")}, path)


def _args(cfg: Path, out: Path, sets: List[str] = ()) -> List[str]:
    return [str(cfg)] + [a for o in [*QUICK, f"exp.out_folder={out}", *sets] for a in ("--set", o)]


def _one_line(capsys, rc: int, expected: str, prefix: str = "error") -> None:
    assert (rc, capsys.readouterr().err) == (2, f"{prefix}: {expected}\n")


def _tree(root: Path) -> Dict[str, str]:
    """Every file under ``root`` (dot files and links included) with its content's hash."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            found[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return found


@pytest.fixture(scope="module")
def finished(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch experiment on the tiny corpus (built-in path)."""
    tmp = tmp_path_factory.mktemp("finished")
    cfg = synth_cfg(tmp, tiny_corpus)
    assert run_exp.main(_args(cfg, tmp / "exp")) == 0
    return tmp / "exp"


def _copy(finished: Path, tmp_path: Path) -> Path:
    exp = tmp_path / "colleague_exp"
    shutil.copytree(finished, exp)
    return exp


# -- checkpoints are data ------------------------------------------------------------------------

def test_a_checkpoint_with_a_pickle_payload_is_never_run(finished: Path, tmp_path: Path,
                                                         tiny_corpus: Path, capsys) -> None:
    exp = _copy(finished, tmp_path)
    marker = tmp_path / "PWNED"
    _hostile_checkpoint(exp / CHECKPOINT, marker)
    refused = (f"{exp / CHECKPOINT}: holds a Python object (posix.system) besides tensors and "
               f"numbers, which loading would run as code; it was not loaded; {RETRAIN}")
    capsys.readouterr()
    _one_line(capsys, evaluate_cli.main([str(exp), "--data", str(tiny_corpus / "data/test"),
                                         "--ali", str(tiny_corpus / "exp/mono_ali_test")]),
              refused, prefix="evaluate")
    wav = sorted((tiny_corpus / "data/test/wav").glob("*.wav"))[0]
    _one_line(capsys, transcribe_cli.main([str(exp), str(wav)]), refused, prefix="transcribe")
    # a resume: the run is not complete (no results.json), so it reads the checkpoint
    (exp / "results.json").unlink()
    cfg = synth_cfg(tmp_path, tiny_corpus)
    _one_line(capsys, run_exp.main(_args(cfg, exp)), refused)
    assert not marker.exists()


def test_an_arch_pretrain_file_with_a_pickle_payload_is_never_run(tiny_corpus: Path,
                                                                  tmp_path: Path, capsys) -> None:
    marker = tmp_path / "PWNED"
    pretrain = tmp_path / "downloaded_weights.pkl"
    _hostile_checkpoint(pretrain, marker)
    cfg = synth_cfg(tmp_path, tiny_corpus)
    capsys.readouterr()
    rc = run_exp.main(_args(cfg, tmp_path / "out", [f"architecture1.arch_pretrain_file={pretrain}"]))
    _one_line(capsys, rc, f"{cfg}: [architecture1] arch_pretrain_file: {pretrain} holds a Python "
                          f"object (posix.system) besides tensors and numbers, which loading "
                          f"would run as code; it was not loaded; give a file saved by "
                          f"PyTorch-Kaldi or this project")
    assert not marker.exists()


@pytest.mark.parametrize("damage,reason", [
    ("empty", "is empty or truncated (not a complete PyTorch checkpoint)"),
    ("truncated", "is corrupt or truncated (not a PyTorch checkpoint this project wrote)"),
    ("random", "is corrupt or truncated (not a PyTorch checkpoint this project wrote)"),
])
def test_a_damaged_checkpoint_is_one_line(damage: str, reason: str, finished: Path,
                                          tmp_path: Path, tiny_corpus: Path, capsys) -> None:
    exp = _copy(finished, tmp_path)
    good = (exp / CHECKPOINT).read_bytes()
    damaged = {"empty": b"", "truncated": good[:len(good) // 2],
               "random": bytes(range(256)) * 40}[damage]
    (exp / CHECKPOINT).write_bytes(damaged)
    capsys.readouterr()
    wav = sorted((tiny_corpus / "data/test/wav").glob("*.wav"))[0]
    _one_line(capsys, transcribe_cli.main([str(exp), str(wav)]),
              f"{exp / CHECKPOINT}: {reason}; {RETRAIN}", prefix="transcribe")
    assert (exp / CHECKPOINT).read_bytes() == damaged  # refused, not replaced


def test_the_projects_own_checkpoint_loads_with_weights_only(finished: Path) -> None:
    state = torch.load(finished / CHECKPOINT, map_location="cpu", weights_only=True)
    assert {"model", "optimizers", "schedulers", "history", "cfg_text"} <= set(state)


# -- the out_folder is the experiment's, never the user's -------------------------------------

def _users_home(root: Path) -> Path:
    """A folder as a user's home looks: dot files that match the pattern of the old cleanup,
    a results.md and a .lock of their own, a git folder, a link out of it."""
    files = {".zshrc.20240101": "alias ll='ls -l'\n", ".htaccess.disabled": "Deny from all\n",
             "sub/.env.original": "TOKEN=1\n", ".git/.config.backup_1": "[core]\n",
             "results.md": "# my thesis results\n", ".lock": "my lock\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "elsewhere").symlink_to("/etc")
    return root


@pytest.mark.parametrize("where", ["home", "dot", "parent_of_cwd"])
def test_an_out_folder_of_the_users_is_refused_and_untouched(where: str, tiny_corpus: Path,
                                                             tmp_path: Path, capsys,
                                                             monkeypatch) -> None:
    home = _users_home(tmp_path / "home")
    (home / "project").mkdir()
    cfg = synth_cfg(tmp_path, tiny_corpus)
    monkeypatch.chdir(home if where == "dot" else home / "project")
    given = {"home": str(home), "dot": ".", "parent_of_cwd": ".."}[where]
    before = _tree(home)
    capsys.readouterr()
    rc = run_exp.main(_args(cfg, Path(given)))
    first = sorted(p.name for p in home.iterdir())[0]
    _one_line(capsys, rc, f"{cfg}: [exp] out_folder: {given} already holds files that "
                          f"pytorch-kaldi-snn did not make (e.g. {first}); name a new or empty "
                          f"folder")
    assert _tree(home) == before


def test_an_empty_out_folder_is_refused_by_name(tiny_corpus: Path, tmp_path: Path, capsys,
                                                monkeypatch) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    capsys.readouterr()
    rc = run_exp.main([str(cfg)] + [a for o in [*QUICK, "exp.out_folder="] for a in ("--set", o)])
    _one_line(capsys, rc, f"{cfg}: [exp] out_folder: is empty: name a folder for the "
                          f"experiment's outputs (e.g. exp/my_run)")
    assert _tree(tmp_path) == before


def test_the_file_system_root_is_refused_before_any_write() -> None:
    # checked where run_exp checks, without a run: a regression must not write into /
    with pytest.raises(NotOurFolder, match=r"^/ already holds files that pytorch-kaldi-snn "
                                           r"did not make \(e\.g\. .+\); name a new or empty folder$"):
        check_may_take(Path("/"))


def test_a_new_or_empty_folder_is_taken_and_marked(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = synth_cfg(tmp_path, tiny_corpus)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_exp.main(_args(cfg, empty)) == 0
    assert "made by pytorch-kaldi-snn" in (empty / MARKER).read_text()
    assert run_exp.main(_args(cfg, empty)) == 0  # ours now: a rerun reads the results back


def test_an_experiment_of_an_earlier_version_is_still_ours(finished: Path, tmp_path: Path,
                                                           tiny_corpus: Path) -> None:
    exp = _copy(finished, tmp_path)
    (exp / MARKER).unlink()  # made before the marker: recognised by its resolved.cfg
    cfg = synth_cfg(tmp_path, tiny_corpus)
    assert run_exp.main(_args(cfg, exp)) == 0
    assert (exp / MARKER).is_file()


# -- a full disk -------------------------------------------------------------------------------

FULL_DISK = """
import resource, signal, sys
from pytorch_kaldi_snn import run_exp
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
sys.exit(run_exp.main(sys.argv[1:]))
"""


def test_a_full_disk_while_writing_the_checkpoint_is_one_line_and_loses_nothing(
        finished: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """Files may grow to 16 KiB only (RLIMIT_FSIZE, the failure a full disk or a quota gives
    a write): the cfg, the log and the marker fit, the first checkpoint does not."""
    cfg = synth_cfg(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    failed = subprocess.run([sys.executable, "-c", FULL_DISK.format(limit=16384), *_args(cfg, out)],
                            env=env, capture_output=True, text=True, timeout=300)
    expected = (f"{out / CHECKPOINT}: cannot write: File too large; nothing was replaced (free "
                f"space or fix the folder, then rerun)")
    assert (failed.returncode, failed.stderr) == (2, f"error: {expected}\n")
    assert f"error: {expected}\n" in (out / "log.log").read_text()
    assert not (out / CHECKPOINT).exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".pks-partial")]
    # with room again, the same command finishes as a run that never failed
    assert run_exp.main(_args(cfg, out)) == 0
    assert (json.loads((out / "results.json").read_text())["frame_acc"]
            == json.loads((finished / "results.json").read_text())["frame_acc"])


def test_a_sweep_or_study_into_a_folder_of_the_users_is_refused_and_untouched(
        tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    from pytorch_kaldi_snn import study, sweep

    home = _users_home(tmp_path / "home")
    cfg = synth_cfg(tmp_path, tiny_corpus)
    before = _tree(home)
    refused = (f"{home} already holds files that pytorch-kaldi-snn did not make (e.g. .git); "
               f"name a new or empty folder")
    capsys.readouterr()
    rc = sweep.main([str(cfg), "--out", str(home), "--grid", "exp.seed=1:2"])
    _one_line(capsys, rc, refused, prefix="sweep")
    rc = study.main(["table1", "--corpus", str(tiny_corpus), "--out", str(home)])
    _one_line(capsys, rc, refused)
    assert _tree(home) == before


def test_a_data_dir_named_as_a_command_runs_nothing_on_the_kaldi_path(
        finished: Path, tiny_corpus: Path, tmp_path: Path, kaldi_env: dict, monkeypatch,
        capsys) -> None:
    """``evaluate --data '/data/d$(touch M)'`` with Kaldi's binaries reading the features:
    the folder name reaches Kaldi's pipe quoted, so it is a name, and the set is scored."""
    monkeypatch.setenv("PATH", kaldi_env["PATH"])
    exp = _copy(finished, tmp_path)
    marker = tmp_path / "M"
    data = tmp_path / f"d$(touch {marker})"
    ali = tmp_path / f"a;touch {marker};#"
    shutil.copytree(tiny_corpus / "data/test", data)
    shutil.copytree(tiny_corpus / "exp/mono_ali_test", ali)
    capsys.readouterr()
    rc = evaluate_cli.main([str(exp), "--data", str(data), "--ali", str(ali), "--name", "mine"])
    assert (rc, capsys.readouterr().err) == (0, "")
    assert not marker.exists()
    assert (exp / "results_mine.json").is_file()
