"""What a user sees while a run works (issue 25, point 6) and in its plots (point 9): the data
preparation relayed into log.log with one timestamp format and Kaldi's C++ info lines kept off
the terminal, repeated lines said once, the training time left, corpus generation's progress,
and plots that name the experiment and their values."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List

import pytest

from experiment_cfgs import synth_cfg
from pytorch_kaldi_snn.corpus import generate
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.io.chatter import relay_command
from pytorch_kaldi_snn.report import plots
from pytorch_kaldi_snn.pipeline.logs import open_log
from pytorch_kaldi_snn.pipeline.runner import run_experiment
from pytorch_kaldi_snn.train.loop import time_left

# What recipes/synth/run.sh printed during a real quick start (kaldilm's lines verbatim).
RECIPE_OUTPUT = r"""2026-12-07 08:52:42 (builtin_am.sh:26) Stage 2: lang dir and phone bigram G
/project/kaldilm/csrc/arpa_file_parser.cc:void kaldilm::ArpaFileParser::Read(std::istream&):79
[I] Reading \data\ section.
2026-12-07 08:52:44,060 train_mono: training on 1280 utterances, 348381 frames
train: 88.65% of 348381 frames (1280/1280 utterances aligned)
"""


def test_relay_strips_the_recipes_timestamps_and_keeps_kaldis_info_lines_apart(tmp_path: Path) -> None:
    script = tmp_path / "recipe.py"
    script.write_text(f"import sys\nsys.stdout.write({RECIPE_OUTPUT!r})\n"
                      "sys.stderr.write('WARNING (x) a real warning\\n')\nsys.exit(3)\n")
    said: List[str] = []
    chatter: List[str] = []
    code = relay_command(f"{sys.executable} {script}", said.append, chatter.append)
    assert code == 3
    assert said == ["(builtin_am.sh:26) Stage 2: lang dir and phone bigram G",
                    "train_mono: training on 1280 utterances, 348381 frames",
                    "train: 88.65% of 348381 frames (1280/1280 utterances aligned)",
                    "WARNING (x) a real warning"]
    assert chatter == ["/project/kaldilm/csrc/arpa_file_parser.cc:void "
                       "kaldilm::ArpaFileParser::Read(std::istream&):79",
                       "[I] Reading \\data\\ section."]


def test_the_feature_path_is_logged_once_per_run(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for _ in range(3):  # train, dev, test
        log.info("features: built-in pipe (apply-cmvn | add-deltas)")
    log.info("epoch 1/2: ...")
    log.info("epoch 1/2: ...")  # other repeats stay
    lines = [line.split(" ", 2)[2] for line in (tmp_path / "log.log").read_text().splitlines()]
    assert lines == ["features: built-in pipe (apply-cmvn | add-deltas)", "epoch 1/2: ...",
                     "epoch 1/2: ..."]
    log = open_log(tmp_path)  # a rerun says it again
    log.info("features: built-in pipe (apply-cmvn | add-deltas)")
    assert (tmp_path / "log.log").read_text().count("features: built-in pipe") == 2


def test_time_left_from_the_mean_epoch() -> None:
    history = [{"seconds": 40.0}, {"seconds": 50.0}]
    assert time_left(history, 8) == ", about 4 min of training left"  # 6 x 45 s
    assert time_left(history[:1], 2) == ", about 1 min of training left"
    assert time_left(history, 2) == ""


def test_generate_reports_each_set_and_the_quarters_of_a_large_one(capsys) -> None:
    said: List[str] = []
    done = generate.quarter_reporter("train", 160, start=0.0, report=said.append)
    for n in range(1, 161):
        done(n)
    assert [line.split(" (")[0] for line in said] == [
        "train: 40/160 speakers rendered", "train: 80/160 speakers rendered",
        "train: 120/160 speakers rendered"]
    small = generate.quarter_reporter("test", 12, start=0.0, report=said.append)
    for n in range(1, 13):
        small(n)
    assert len(said) == 3


def test_generate_a_test_set_alone(tmp_path: Path, capsys) -> None:
    argv = ["--out", str(tmp_path / "unseen"), "--seed", "99", "--train-speakers", "0",
            "--dev-speakers", "0", "--test-speakers", "2", "--utts-per-speaker", "1"]
    assert generate.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("rendering 0/0/2 train/dev/test speakers x 1 utterances with eSpeak NG "
                      "(1 worker)")
    assert re.fullmatch(r"test: 2 speakers, 2 utterances, 0\.\d{3} h \(\d+ s\)", out[1]), out
    assert out[2].startswith(f"wrote {tmp_path / 'unseen'} in ") and len(out) == 3
    assert sorted(p.name for p in (tmp_path / "unseen").iterdir()) == [
        "corpus.json", "phones.txt", "test"]
    assert len((tmp_path / "unseen/test/wav.scp").read_text().splitlines()) == 2


@pytest.mark.parametrize("option, least", [("--test-speakers", 1), ("--train-speakers", 0),
                                           ("--dev-speakers", 0), ("--utts-per-speaker", 1)])
def test_a_count_below_its_least_names_its_option(option: str, least: int, tmp_path: Path,
                                                   capsys) -> None:
    assert generate.main(["--out", str(tmp_path), option, str(least - 1)]) == 2
    assert capsys.readouterr().err == f"generate: {option} must be at least {least}, got {least - 1}\n"
    assert not any(tmp_path.iterdir())


def _figures(monkeypatch: pytest.MonkeyPatch) -> list:
    saved: list = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.append(fig))
    return saved


def test_plots_name_the_experiment_their_values_and_why_dev_beats_train(
        monkeypatch: pytest.MonkeyPatch) -> None:
    saved = _figures(monkeypatch)
    history = [{"epoch": 1, "train_loss": 3.0, "dev_loss": 2.0, "train_err": 0.7, "dev_err": 0.55}]
    plots.plot_learning_curves(history, Path("unused.png"), "synth_snn_v2")
    plots.plot_layer_sparsity({"nets.snn_layers.net.0": 70.12, "nets.snn_layers.net.1": 65.0},
                              Path("unused.png"), "synth_snn_v2")
    curves, sparsity = saved
    assert [t.get_text() for t in curves.texts] == ["synth_snn_v2: learning curves",
                                                    plots.TRAIN_VS_DEV]
    assert "dropout" in plots.TRAIN_VS_DEV
    ax = sparsity.axes[0]
    assert ax.get_title() == "synth_snn_v2: zero outputs per layer (test set)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["snn_layers layer 1", "snn_layers layer 2"]
    assert [t.get_text() for t in ax.texts] == ["70.1%", "65.0%"]


def test_a_failing_prepare_command_is_relayed_into_log_log_and_named(tmp_path: Path, capsys) -> None:
    cfg = synth_cfg(tmp_path, tmp_path / "no_corpus")
    out = tmp_path / "exp"
    prepare = "echo '2026-01-01 10:00:00 (run.sh:1) Stage 0: boom'; echo '[I] chatter' >&2; exit 3"
    with pytest.raises(ConfigError) as err:
        run_experiment(cfg, [f"exp.prepare={prepare}", f"exp.out_folder={out}"])
    assert str(err.value) == (f"{cfg}: [exp] prepare: the prepare command failed with exit code 3")
    console = capsys.readouterr().out
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(run\.sh:1\) Stage 0: boom$", console, re.M)
    assert not re.search(r"^\S+ \S+ \[I\] chatter$", console, re.M)
    log = (out / "log.log").read_text()
    assert " (run.sh:1) Stage 0: boom\n" in log and " kaldi: [I] chatter\n" in log
    assert log.endswith(f"error: {cfg}: [exp] prepare: the prepare command failed with exit code 3\n")
