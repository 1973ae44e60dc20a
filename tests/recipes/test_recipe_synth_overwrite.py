"""recipes/synth/run.sh --overwrite: stage 0 regenerates the corpus over the generator's own
sets, and every later stage, built from the old corpus, is no longer done (its .done marker,
and only that, is removed)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from synth_recipe import SETS, run_recipe, tiny_recipe

from pytorch_kaldi_snn.corpus.generate import MAKER
from pytorch_kaldi_snn.gmm.labels import read_alignments
from pytorch_kaldi_snn.io import read_kaldi_map, read_matrices
from pytorch_kaldi_snn.io.ownership import mark

LATER_MARKERS = ("data/.feats.done", "data/lang_test_bg/.done", "exp/mono/.done",
                 "exp/mono/graph/.done", "exp/mono/.agreement.done")  # stages 1-5
KEPT = ("notes.txt", "data/mine.txt", "exp/mono/final.mdl", "data/lang_test_bg/G.fst")


def _built(out: Path) -> None:
    """A finished run as the recipe leaves it: the generator's sets, every stage's marker, some
    stage outputs, and files of the user's own beside them."""
    for name in SETS:
        (out / "data" / name).mkdir(parents=True)
        mark(out / "data" / name, MAKER)
        (out / "data" / name / "old.txt").write_text("the old corpus\n")
    (out / "data" / "corpus.json").write_text(json.dumps({"seed": 1}))
    for path in (*LATER_MARKERS, "data/.corpus.done", *KEPT):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text("")


@pytest.mark.slow
def test_overwrite_regenerates_the_corpus_and_undoes_the_later_stages(tmp_path: Path) -> None:
    _built(tmp_path)
    assert "Stage" not in run_recipe(tmp_path, "--stop-stage", "0").stdout  # done: skipped
    result = run_recipe(tmp_path, "--overwrite", "--seed", "2", "--stop-stage", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--overwrite: the corpus and every stage after it will be redone" in result.stdout
    assert "Stage 0: generate the tiny corpus (seed 2)" in result.stdout
    assert json.loads((tmp_path / "data" / "corpus.json").read_text())["seed"] == 2
    for name in SETS:
        assert not (tmp_path / "data" / name / "old.txt").exists()
        assert (tmp_path / "data" / name / "text.words").is_file()  # phone_text.sh ran again
    assert (tmp_path / "data" / ".corpus.done").is_file()
    assert [m for m in LATER_MARKERS if (tmp_path / m).exists()] == []
    assert [f for f in KEPT if not (tmp_path / f).is_file()] == []


@pytest.mark.slow
def test_overwrite_of_a_finished_recipe_redoes_every_stage_on_the_new_corpus(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Stages 1-5 rerun over their own earlier outputs: the MFCC dir's old feats.scp (of other
    utterances) is replaced, not read, and every set's features and alignments are the new
    corpus's."""
    out = tmp_path / "recipe"
    shutil.copytree(tiny_recipe(tmp_path_factory), out, symlinks=True)
    old = set(read_kaldi_map(out / "data" / "train" / "text"))
    result = run_recipe(out, "--overwrite", "--seed", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [n for n in range(6) if f"Stage {n}:" in result.stdout] == list(range(6))
    new = set(read_kaldi_map(out / "data" / "train" / "text"))
    assert new and new != old
    for name in SETS:
        utts = set(read_kaldi_map(out / "data" / name / "text"))
        assert {utt for utt, _ in read_matrices(out / "data" / "mfcc" / name / "feats.scp")} == utts
        assert set(read_alignments(out / "exp" / f"mono_ali_{name}")) == utts


@pytest.mark.parametrize("stages", [("--stage", "1"), ("--stop-stage", "-1")])
def test_overwrite_without_stage_0_is_refused_before_anything_changes(tmp_path: Path, stages):
    _built(tmp_path)
    result = run_recipe(tmp_path, *stages, "--overwrite")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", (
        "run.sh: --overwrite regenerates the corpus, stage 0: give --stage 0 (the default)\n"))
    assert all((tmp_path / m).is_file() for m in (*LATER_MARKERS, "data/.corpus.done"))
    assert (tmp_path / "data" / "train" / "old.txt").is_file()


def test_a_set_the_generator_did_not_make_is_refused_by_overwrite(tmp_path: Path) -> None:
    """--overwrite passes through to the generator, which replaces only its own sets."""
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "wav.scp").write_text("mine /my/own.wav\n")
    result = run_recipe(tmp_path, "--overwrite", "--stop-stage", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"generate: {tmp_path / 'data' / 'train'} was not made by the corpus generator (no "
        ".pytorch_kaldi_snn in it); --overwrite removes only the generator's own sets")
    assert (tmp_path / "data" / "train" / "wav.scp").read_text() == "mine /my/own.wav\n"
