"""Every command the README shows runs in the test suite (issue 25): the table in
tests/support/readme_commands.py names the test of each, and the quick start runs here, as
written, with only scale options appended, from a folder laid out as a fresh clone. Its console
is checked as a new user reads it: data preparation in log.log, one timestamp format, no Kaldi
C++ info lines, the feature path said once, progress through the silent phases."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from readme_commands import COMMANDS, ROOT, as_run, readme_commands

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_every_readme_command_is_in_the_table() -> None:
    missing = [c for c in readme_commands() if c not in COMMANDS]
    assert not missing, ("README commands that no test runs; add each to "
                         "tests/support/readme_commands.py with the test that runs it: {missing}")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_table_names_a_test_that_exists(command: str) -> None:
    run = COMMANDS[command]
    file, _, function = run.test.partition("::")
    assert (ROOT / file).is_file(), run.test
    if function:
        assert re.search(rf"^def {function}\(", (ROOT / file).read_text(), flags=re.M), run.test
    assert run.why or run.test != "tests/project/test_readme.py::test_ci_runs_the_readme_commands"


def _fresh_clone(root: Path) -> None:
    """run_exp.sh, cfg/ and the built-in recipe's scripts, as in a clone (no corpus built)."""
    shutil.copy2(ROOT / "run_exp.sh", root / "run_exp.sh")
    shutil.copytree(ROOT / "cfg", root / "cfg")
    for recipe in ("synth", "common"):
        shutil.copytree(ROOT / "recipes" / recipe, root / "recipes" / recipe,
                        ignore=shutil.ignore_patterns("data", "exp", "__pycache__"))


@pytest.mark.slow  # builds the tiny corpus and trains two tiny epochs: about a minute
def test_readme_quick_start_runs_as_written(tmp_path: Path, builtin_env: dict) -> None:
    (command,) = [c for c in readme_commands("Quick start: a real experiment with no Kaldi, no GPU, "
                                             "no licensed corpus") if c.startswith("./run_exp.sh")]
    _fresh_clone(tmp_path)
    env = {**builtin_env, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), builtin_env.get("PYTHONPATH")) if p)}
    done = subprocess.run(["bash", "-c", as_run(command)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "exp/synth_snn_v2"
    assert (out / "results.json").is_file() and (out / "learning_curves.png").is_file()
    console = done.stdout.splitlines()
    log = (out / "log.log").read_text()
    # one timestamp format, and only one per line
    for line in console:
        assert re.match(rf"{STAMP} \S", line) and not re.search(r"\d\d:\d\d:\d\d", line[19:]), line
    # the data preparation is in log.log, with the corpus generation's progress
    for expected in ("is missing: preparing the data with `recipes/synth/run.sh --size tiny",
                     "Stage 0: generate the tiny corpus", "rendering 4/2/2 train/dev/test speakers",
                     "test: 2 speakers, 4 utterances", "Stage 4: HCLG"):
        assert expected in log and expected in done.stdout, expected
    # kaldilm's C++ info lines: in log.log only
    assert "kaldi: [I] Reading \\data\\ section." in log
    assert not [line for line in console if "[I]" in line or ".cc:" in line]
    assert done.stdout.count("features: built-in pipe") == 1
    assert re.search(r"epoch 1/2: .*, about \d+ min of training left\n", done.stdout)
    assert re.search(r"epoch 2/2: .*\| \d+s\n", done.stdout)
    for pattern in (r"decoding synth_test over \S+ \(beam \d+, 1 job; ",
                    r"decoding: builtin decoder \(no Kaldi binaries found\), graph \S+ \(\d+ s\)",
                    r"scoring: LM-weight sweep .* on the lattices",
                    r"scoring: best over .*: PER [\d.]+ at LMWT \d+, WIP \S+ \(\d+ s\)"):
        assert re.search(pattern, done.stdout), pattern
