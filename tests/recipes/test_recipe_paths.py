"""The built-in recipes (recipes/synth, recipes/timit_builtin) in folders named as a careless user
or an attacker would name them: a space (word splitting), `*` (globbing, with a sibling folder
the glob would match), `;`, `$x` and `$(touch${IFS}M)` (which only an eval would run). Each
run finishes, writes only inside its --dir, and runs nothing the names spell."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, Optional

import pytest
from corpus_layouts import write_timit_tree
from synth_recipe import RECIPE as SYNTH, SETS, run_recipe

from pytorch_kaldi_snn.io import read_kaldi_map
from repo_paths import ROOT

pytestmark = pytest.mark.slow  # whole recipe runs: about 15 s and 5 s

TIMIT_BUILTIN = ROOT / "recipes" / "timit_builtin"
NAME = "run dir;$(touch${IFS}M);$x*"
DECOY = "run dir;$(touch${IFS}M);$xDECOY"  # what the unquoted glob NAME would also match


def _snapshot(root: Path, skip: Optional[Path] = None) -> Dict[str, Optional[bytes]]:
    """Every path under ``root`` (a file's bytes, None for a folder), ``skip``'s subtree left out."""
    found: Dict[str, Optional[bytes]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if skip is None or Path(folder, d) != skip)
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            found[os.path.relpath(os.path.join(folder, name), root)] = Path(folder, name).read_bytes()
    return found


def _decoy(parent: Path) -> None:
    decoy = parent / DECOY / "data" / "train"
    decoy.mkdir(parents=True)
    (decoy / "text.phn").write_text("u1 sil\n")
    (decoy / "text").write_text("u1 words\n")


def test_synth_recipe_runs_in_a_folder_named_like_an_attack(tmp_path: Path) -> None:
    parent, cwd = tmp_path / "parent", tmp_path / "cwd"
    cwd.mkdir()
    _decoy(parent)
    out = parent / NAME
    before, recipe_before = _snapshot(tmp_path), _snapshot(SYNTH)
    result = run_recipe(out, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done (stages 0..5) in {out}" in result.stdout
    for name in SETS:  # stage 0's phone_text.sh ran on this set, not on the decoy's
        assert (out / "data" / name / "text.words").is_file()
    assert (out / "exp" / "mono" / "agreement.json").is_file()
    assert (out / "exp" / "mono" / "graph" / "HCLG.fst").is_file()
    assert _snapshot(tmp_path, skip=out) == before  # decoy untouched, no M, nothing beside --dir
    assert _snapshot(SYNTH) == recipe_before


def test_timit_builtin_recipe_runs_with_such_names_for_corpus_and_dir(tmp_path: Path) -> None:
    tree = write_timit_tree(tmp_path / "TIMIT c;$x*", train_speakers=2, dev_speakers=1, test_speakers=1,
                            utts_per_speaker=3, seed=3)
    parent, cwd = tmp_path / "parent", tmp_path / "cwd"
    cwd.mkdir()
    _decoy(parent)
    out = parent / NAME
    before, recipe_before = _snapshot(tmp_path), _snapshot(TIMIT_BUILTIN)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run(
        ["bash", str(TIMIT_BUILTIN / "run.sh"), "--corpus-dir", str(tree.root), "--dev-spk", str(tree.dev_spk_list),
         "--test-spk", str(tree.test_spk_list), "--dir", str(out)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done (stages 0..4) in {out}" in result.stdout
    for wav in read_kaldi_map(out / "data" / "train" / "wav.scp").values():
        assert Path(wav).parent.parent == out / "data" / "train" and Path(wav).is_file()
    assert (out / "exp" / "mono" / "graph" / "HCLG.fst").is_file()
    assert _snapshot(tmp_path, skip=out) == before
    assert _snapshot(TIMIT_BUILTIN) == recipe_before
