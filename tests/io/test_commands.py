"""io/commands.py: a path is never an option, and the children the project starts (Kaldi jobs,
shell pipes) die with it, even when it is killed with SIGKILL."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from pytorch_kaldi_snn.io.commands import path_argument, run
from repo_paths import ROOT

# a runner-like parent: a pipeline of three stages and a child of the shell after it, then the
# parent's own long work (where the runner would train or wait for its jobs)
PARENT = """
import time
from pytorch_kaldi_snn.io.commands import start
child = start(["bash", "-c", "sleep 300 | sleep 301 | cat; sleep 302"])
print(child.pid, flush=True)
time.sleep(300)
"""

# a study- or decoder-like parent: a Python worker in the middle of a long task
POOL_PARENT = """
import os, time
from pytorch_kaldi_snn.io.commands import worker_pool
pool = worker_pool(1)
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 300)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _group(pgid: int) -> List[int]:
    """The live processes (not zombies) of process group ``pgid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold anything
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_path_starting_with_dash_is_never_an_option() -> None:
    assert path_argument("-x") == "./-x"
    assert path_argument(Path("--ali") / "final.mdl") == "./--ali/final.mdl"
    assert path_argument("--config=x/HCLG.fst") == "./--config=x/HCLG.fst"
    assert path_argument("/tmp/-x") == "/tmp/-x"
    assert path_argument("exp/a-b") == "exp/a-b"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_pipeline_dies_with_a_parent_killed_with_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        group = int(parent.stdout.readline())
        # the guard sh, bash, sleep 300, sleep 301, cat
        assert _wait_for(lambda: len(_group(group)) == 5, 10), _group(group)
    finally:
        parent.kill()
        parent.wait()
    assert _wait_for(lambda: not _group(group), 5), _group(group)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_python_worker_dies_with_a_parent_killed_with_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", POOL_PARENT], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        time.sleep(0.5)  # the worker is in its 300 s task now
    finally:
        parent.kill()
        parent.wait()
    assert _wait_for(lambda: not _alive(worker), 5)


def test_run_gives_the_commands_output_and_status() -> None:
    done = run(["bash", "-o", "pipefail", "-c", "echo out; echo err >&2; false | cat"],
               capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (1, "out\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError):
        run(["false"], check=True)
