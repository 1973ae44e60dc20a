"""The tests mirror the package's folders (docs/CONTRIBUTING.md, "Tests"): every folder of tests/
is a folder (or top-level module) of pytorch_kaldi_snn or one of the few folders that test
something else, no test file lies in tests/ itself, and no two files share a basename (pytest
imports each file of a folder without ``__init__.py`` by its basename alone)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import List

from repo_paths import ROOT

# The folders of tests/ that mirror no package folder (docs/CONTRIBUTING.md says what each holds).
OTHER_FOLDERS = {"commands", "recipes", "project", "support", "fixtures"}


def layout_problems(tests: Path, package: Path) -> List[str]:
    """One line per file or folder of ``tests`` that breaks the layout, sorted."""
    mirrored = {p.name for p in package.iterdir() if any(p.glob("*.py"))}  # train/ has no __init__
    mirrored |= {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    problems = [f"tests/{d.name}/ names no folder or module of {package.name}"
                for d in tests.iterdir() if d.is_dir() and d.name != "__pycache__"
                and not d.name.startswith(".") and d.name not in mirrored | OTHER_FOLDERS]
    problems += [f"tests/{f.name} is not in a folder" for f in tests.glob("test_*.py")]
    places = defaultdict(list)
    for f in tests.rglob("*.py"):
        places[f.name].append(str(f.relative_to(tests)))
    problems += [f"{name} is in {' and '.join(sorted(where))}"
                 for name, where in places.items() if len(where) > 1]
    return sorted(problems)


def test_the_tests_mirror_the_package() -> None:
    assert layout_problems(ROOT / "tests", ROOT / "pytorch_kaldi_snn") == []


def test_a_stray_folder_a_flat_test_and_a_shared_basename_are_each_named(tmp_path: Path) -> None:
    package = tmp_path / "pytorch_kaldi_snn"
    (package / "io").mkdir(parents=True)
    (package / "io" / "__init__.py").write_text("")
    (package / "study.py").write_text("")
    tests = tmp_path / "tests"
    for folder in ("io", "study", "support", "misc", "io/deeper"):
        (tests / folder).mkdir(parents=True)
    for name in ("io/test_tables.py", "study/test_study.py", "support/test_tables.py",
                 "io/deeper/conftest.py", "conftest.py", "test_flat.py"):
        (tests / name).write_text("")
    assert layout_problems(tests, package) == [
        "conftest.py is in conftest.py and io/deeper/conftest.py",
        "test_tables.py is in io/test_tables.py and support/test_tables.py",
        "tests/misc/ names no folder or module of pytorch_kaldi_snn",
        "tests/test_flat.py is not in a folder",
    ]
