"""The README is the contract: exactly one install and one test command, and CI runs those same two."""
from __future__ import annotations

from pathlib import Path

from readme_commands import readme_commands
from repo_paths import ROOT


def _commands(prefix: str) -> list[str]:
    lines = readme_commands()
    return [line for line in lines if line.startswith(prefix)]


def test_readme_has_exactly_one_install_command() -> None:
    assert len(_commands("pip install")) == 1, _commands("pip install")


def test_readme_has_exactly_one_test_command() -> None:
    assert len(_commands("python -m pytest")) == 1, _commands("python -m pytest")


def test_ci_runs_the_readme_commands() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert _commands("pip install")[0] in ci_lines
    assert _commands("python -m pytest")[0] in ci_lines


def test_install_pins_a_torch_that_setup_py_admits() -> None:
    install = _commands("pip install")[0]
    assert '"torch==2.13.0"' in install
    setup_py = (ROOT / "setup.py").read_text()
    assert '"torch>=2.5,<2.14"' in setup_py


# Folders of the development machine: a user's clone has none of them.
DEV_TREE = ("/work/", "../shared", "shared/")


def _user_texts() -> list[Path]:
    """What a user reads or runs: README, docs, cfgs, recipe scripts (not generated data)."""
    recipes = [p for p in sorted((ROOT / "recipes").rglob("*"))
               if p.is_file() and not {"data", "exp"} & set(p.relative_to(ROOT / "recipes").parts)]
    return [ROOT / "README.md", ROOT / "tests/fixtures/README.md",
            *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "cfg").glob("*.cfg")), *recipes]


def test_docs_name_no_folder_of_the_development_machine() -> None:
    texts = _user_texts()
    assert len(texts) > 40
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for path in texts
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if any(folder in line for folder in DEV_TREE)]
    assert found == []
