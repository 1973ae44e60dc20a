"""prepare_set at the boundary with the user's machine: a ``--name`` that is a path or one of the
recipe's own sets, ``--overwrite`` of folders prepare_set did not make, an ``ali.txt`` that does
not fit its audio, a byte-order mark, a ``segments`` file. Every refusal is one exact line and
leaves every file as it was. Built-in path (no Kaldi binaries needed)."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Dict

import pytest

from pytorch_kaldi_snn import prepare_set as prepare_cli
from pytorch_kaldi_snn.prepare_set import MARKER

KALDI_FILES = ("wav.scp", "utt2spk", "spk2utt")
NAME_RULE = ("is not a set name: use one folder name of letters, digits, '_', '-' and '.' that "
             "starts with a letter or digit")


@pytest.fixture(autouse=True)
def _builtin_path(builtin_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", builtin_env["PATH"])
    monkeypatch.delenv("KALDI_ROOT", raising=False)


@pytest.fixture()
def recipe(tiny_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny recipe run at tmp/work/recipe, with victims beside and above it."""
    dest = tmp_path / "work" / "recipe"
    shutil.copytree(tiny_corpus, dest, symlinks=True)
    for victim in (dest / "victim", tmp_path / "work" / "victim", tmp_path / "victim"):
        victim.mkdir()
        (victim / "precious.txt").write_text("keep me\n")
    return dest


def _source(recipe: Path, dest: Path, *extra: str) -> Path:
    """A user's data dir: the recipe's test set (4 utterances) as plain Kaldi files."""
    dest.mkdir()
    for name in (*KALDI_FILES, *extra):
        shutil.copyfile(recipe / "data/test" / name, dest / name)
    return dest


def _tree(root: Path) -> Dict[str, str]:
    """Every file, folder and link under ``root`` with a digest of its bytes (or its target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = f"link -> {path.readlink()}"
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


def _refused(argv: list, expected: str, capsys) -> None:
    capsys.readouterr()
    assert prepare_cli.main(argv) == 2
    assert capsys.readouterr().err == f"prepare_set: {expected}\n"


@pytest.mark.parametrize("name", ["../victim", "../../victim", "../../../victim", "", ".", "..",
                                  "/tmp/victim", "a/../../victim", "-x", "train/..", " train"])
def test_a_name_that_is_a_path_is_refused_before_anything_is_touched(
        name: str, recipe: Path, tmp_path: Path, capsys) -> None:
    src = _source(recipe, tmp_path / "src", "text")
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), f"--name={name}", "--overwrite"],
             f"--name: {name!r} {NAME_RULE}", capsys)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", ["train", "dev", "test", "lang", "lang_test_bg", "mfcc", "ark",
                                  "phones.txt", "corpus.json"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_the_recipes_own_sets_and_folders_are_never_replaced(
        name: str, overwrite: bool, recipe: Path, tmp_path: Path, capsys) -> None:
    src = _source(recipe, tmp_path / "src", "text")
    before = _tree(tmp_path)
    argv = [str(src), "--dir", str(recipe), "--name", name] + ["--overwrite"] * overwrite
    _refused(argv, f"{recipe}/data/{name}: exists and was not made by prepare_set (no {MARKER} "
                   "in it); choose another --name", capsys)
    assert _tree(tmp_path) == before


def test_overwrite_refuses_a_folder_without_the_marker(recipe: Path, tmp_path: Path,
                                                       capsys) -> None:
    """A user's own exp/mono_ali_mine (no marker) beside a set prepare_set made is kept."""
    src = _source(recipe, tmp_path / "src", "text")
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "mine"]) == 0
    theirs = recipe / "exp/mono_ali_mine"
    (theirs / MARKER).unlink()
    (theirs / "notes.txt").write_text("mine\n")
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name", "mine", "--overwrite"],
             f"{theirs}: exists and was not made by prepare_set (no {MARKER} in it); choose "
             "another --name", capsys)
    assert _tree(tmp_path) == before


def test_overwrite_refuses_a_link_even_to_a_marked_folder(recipe: Path, tmp_path: Path,
                                                          capsys) -> None:
    """An attacker's data/mine -> victim with a forged marker: the link and the victim stay."""
    victim = tmp_path / "victim"
    (victim / MARKER).write_text("forged\n")
    (recipe / "data/mine").symlink_to(victim, target_is_directory=True)
    src = _source(recipe, tmp_path / "src", "text")
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name", "mine", "--overwrite"],
             f"{recipe}/data/mine: exists and was not made by prepare_set (no {MARKER} in it); "
             "choose another --name", capsys)
    assert _tree(tmp_path) == before


def test_overwrite_replaces_only_what_prepare_set_made(recipe: Path, tmp_path: Path,
                                                       capsys) -> None:
    src = _source(recipe, tmp_path / "src", "text")
    argv = [str(src), "--dir", str(recipe), "--name", "mine"]
    assert prepare_cli.main(argv) == 0
    made = [recipe / "data/mine", recipe / "data/mfcc/mine", recipe / "exp/mono_ali_mine"]
    assert all((folder / MARKER).is_file() for folder in made)
    (recipe / "data/mine/stale.txt").write_text("from before\n")
    _refused(argv, f"{recipe}/data/mine: exists; choose another --name or pass --overwrite", capsys)
    others = {k: v for k, v in _tree(tmp_path).items() if "mine" not in k}
    assert prepare_cli.main(argv + ["--overwrite"]) == 0
    assert not (recipe / "data/mine/stale.txt").exists()
    assert all((folder / MARKER).is_file() for folder in made)
    assert {k: v for k, v in _tree(tmp_path).items() if "mine" not in k} == others


@pytest.mark.parametrize("table", ["wav.scp", "utt2spk", "spk2utt", "text", "ali.txt",
                                   "phones.ctm"])
def test_a_byte_order_mark_is_refused_by_name(table: str, recipe: Path, tmp_path: Path,
                                              capsys) -> None:
    """Saved by a Windows editor: the first key would hold an invisible U+FEFF."""
    src = _source(recipe, tmp_path / "src", table if table not in KALDI_FILES else "text")
    (src / table).write_bytes(b"\xef\xbb\xbf" + (src / table).read_bytes())
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/{table}: starts with a UTF-8 byte-order mark (BOM); save it without one",
             capsys)
    assert _tree(tmp_path) == before


def test_a_byte_order_mark_inside_a_table_is_refused_by_line(recipe: Path, tmp_path: Path,
                                                             capsys) -> None:
    """Two files joined with cat, the second saved with a BOM."""
    src = _source(recipe, tmp_path / "src", "text")
    lines = (src / "utt2spk").read_text().splitlines(keepends=True)
    (src / "utt2spk").write_text("".join(lines[:2]) + "\ufeff" + "".join(lines[2:]))
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/utt2spk: line 3: holds a UTF-8 byte-order mark (BOM, invisible; files joined "
             "with cat?); remove it", capsys)


def test_a_table_that_is_not_utf8_is_refused_by_line(recipe: Path, tmp_path: Path,
                                                     capsys) -> None:
    src = _source(recipe, tmp_path / "src", "text")
    data = (src / "text").read_bytes()
    at = data.index(b"\n") + 1
    (src / "text").write_bytes(data[:at] + b"caf\xe9 " + data[at:])
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/text: line 2: byte 0xe9 at offset {at + 3} is not UTF-8; save it as UTF-8",
             capsys)
