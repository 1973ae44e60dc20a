"""Every command of the README's shell blocks, and the test that runs it (issue 25).

``COMMANDS`` maps each command, exactly as the README prints it, to the test that runs it and to
``scale``: options the test appends to make the README's long run tiny (the command itself is
never edited). tests/project/test_readme_commands.py fails when the README shows a command that
is not here, or names a test that does not exist.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List

from repo_paths import ROOT

OWN_DATA = ("tests/commands/test_own_data.py::"
            "test_readme_own_data_and_transcribe_sections_run_verbatim")
DEPLOY = "tests/commands/test_own_data.py::test_readme_energy_and_deploying_sections_run_verbatim"
CI = "tests/project/test_readme.py::test_ci_runs_the_readme_commands"
UPSTREAM = "tests/neural_networks/test_upstream_run.py::test_upstream_trains_forwards_decodes"
UPSTREAM_WHY = ("run as written in a copy of upstream's checkout; the first gets --map to the tiny "
                "corpus and small --set options appended")
QUICK_START = "tests/project/test_readme_commands.py::test_readme_quick_start_runs_as_written"
# The quick start at the scale of the other end-to-end tests: the tiny corpus (built by the cfg's
# own `prepare` step, at --size tiny) and a tiny network for two epochs.
QUICK_SCALE = (" --set 'exp.prepare=recipes/synth/run.sh --size tiny --seed 1 --dir recipes/synth'"
               " --set exp.n_epochs_tr=2 --set batches.batch_size_train=8"
               " --set batches.max_seq_length_train=100 --set batches.start_seq_len_train=50"
               " --set architecture1.snn_lay=16,16 --set exp.use_cuda=False")

# The sweep's four points, each a tiny network for one epoch without decoding.
SWEEP_SCALE = (" --set exp.n_epochs_tr=1 --set batches.batch_size_train=8"
               " --set batches.max_seq_length_train=100 --set batches.start_seq_len_train=50"
               " --set architecture1.snn_lay=16,16 --set exp.use_cuda=False"
               " --set forward.require_decoding=False")


@dataclass(frozen=True)
class Run:
    """Where a README command runs: ``test`` ("file::function"), with ``scale`` appended, or
    (``why`` set) a test that runs the same program on stand-ins for what only a user has."""

    test: str
    scale: str = ""
    why: str = ""


COMMANDS: Dict[str, Run] = {
    'pip install "torch==2.13.0" -e ".[test]"': Run(CI, why=".ci/run runs this line"),
    "python -m pytest -q": Run(CI, why=".ci/run runs this line"),
    "./run_exp.sh cfg/synth_snn_v2.cfg": Run(QUICK_START, scale=QUICK_SCALE),
    "python -m pytorch_kaldi_snn.sweep cfg/synth_snn_v2.cfg --out exp/sweep_bits --grid "
    "architecture1.snn_n_bits=1:2:3:6 --set architecture1.snn_threshold=1":
        Run("tests/commands/test_sweep.py::test_the_readme_sweep_command_runs_as_written",
            scale=SWEEP_SCALE),
    "python -m pytorch_kaldi_snn.prepare_set mydata --dir recipes/synth --name mydata": Run(OWN_DATA),
    "python -m pytorch_kaldi_snn.evaluate exp/synth_snn_v2 --data recipes/synth/data/mydata "
    "--ali recipes/synth/exp/mono_ali_mydata": Run(OWN_DATA),
    "python -m pytorch_kaldi_snn.corpus.generate --out unseen99 --seed 99 --train-speakers 0 "
    "--dev-speakers 0 --test-speakers 48": Run(OWN_DATA, scale=" --test-speakers 2 --utts-per-speaker 2"),
    "python -m pytorch_kaldi_snn.prepare_set unseen99/test --dir recipes/synth --name unseen99":
        Run(OWN_DATA),
    "python -m pytorch_kaldi_snn.evaluate exp/synth_snn_v2 --data recipes/synth/data/unseen99 "
    "--ali recipes/synth/exp/mono_ali_unseen99": Run(OWN_DATA),
    "python -m pytorch_kaldi_snn.transcribe exp/synth_snn_v2 mydata/wav/*.wav": Run(OWN_DATA),
    "python -m pytorch_kaldi_snn.transcribe exp/synth_snn_v2 --wav-scp mydata/wav.scp --utt2spk "
    "mydata/utt2spk --ctm mydata.ctm --lattices mydata.lat.gz": Run(OWN_DATA),
    "python -m pytorch_kaldi_snn.report.energy exp/synth_snn_v2": Run(DEPLOY),
    "python -m pytorch_kaldi_snn.report.energy exp/synth_snn_v2 --pj fp32_read=100": Run(DEPLOY),
    "python -m pytorch_kaldi_snn.report.energy --study": Run(DEPLOY),
    "python -m pytorch_kaldi_snn.export.onnx exp/synth_snn_v2 synth_snn_v2.onnx": Run(DEPLOY),
    "python -m pytorch_kaldi_snn.transcribe exp/synth_snn_v2 mydata/wav/*.wav --onnx synth_snn_v2.onnx":
        Run(DEPLOY),
    "python -m pytorch_kaldi_snn.export.nir exp/synth_snn_v2 synth_snn_v2.nir || true  "
    "# v2: refused, with the reason": Run(DEPLOY),
    "python -m pytorch_kaldi_snn.config.localize cfg/synth_snn_v2.cfg -o $PK/cfg/synth_snn_v2.cfg "
    "--set exp.use_cuda=False --set exp.out_folder=exp/upstream_synth_snn_v2": Run(UPSTREAM, why=UPSTREAM_WHY),
    "cd $PK && python run_exp.py cfg/synth_snn_v2.cfg": Run(UPSTREAM, why=UPSTREAM_WHY),
    "python -m pytorch_kaldi_snn.config.upstream_forward cfg/synth_snn_v2.cfg -o "
    "cfg/synth_snn_v2_forward.cfg": Run(UPSTREAM, why=UPSTREAM_WHY),
    "python run_exp.py cfg/synth_snn_v2_forward.cfg": Run(UPSTREAM, why=UPSTREAM_WHY),
    "export KALDI_ROOT=/path/to/kaldi": Run(
        "tests/recipes/test_kaldi_recipes_e2e.py::test_timit_recipe_then_the_runner",
        why="a placeholder for the user's Kaldi: the test sets KALDI_ROOT to the Kaldi build"),
    "recipes/timit/run.sh --corpus-dir /data/TIMIT --dry-run true     # prints every step, runs nothing":
        Run("tests/recipes/test_kaldi_recipes.py::test_timit_dry_run_prints_every_step_in_order",
            why="TIMIT is licensed: the same script on a TIMIT-shaped tree the test writes"),
    "recipes/timit/run.sh --corpus-dir /data/TIMIT": Run(
        "tests/recipes/test_kaldi_recipes_e2e.py::test_timit_recipe_then_the_runner",
        why="TIMIT is licensed: every stage on a TIMIT-shaped tree the test writes"),
    "./run_exp.sh cfg/TIMIT_snn_v2.cfg": Run(
        "tests/recipes/test_kaldi_recipes_e2e.py::test_timit_recipe_then_the_runner",
        why="the TIMIT cfg on that recipe's output, at a tiny scale"),
    "torchrun --standalone --nproc_per_node=4 -m pytorch_kaldi_snn.run_exp cfg/synth_snn_v2.cfg "
    "--set exp.multi_gpu=True": Run(
        "tests/train/test_distributed.py::test_torchrun_run_exp_rank0_writes_and_reruns_complete",
        why="4 GPUs: the same torchrun command with 2 CPU processes (gloo) on the tiny corpus"),
}


def shell_lines(markdown: str) -> List[str]:
    """Lines inside fenced code blocks tagged bash/sh/shell or untagged."""
    lines, fence = [], None
    for line in markdown.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
        elif fence in ("", "bash", "sh", "shell") and line.strip():
            lines.append(line.strip())
    return lines


def readme_commands(section: str = "") -> List[str]:
    """The commands of the README's shell blocks, of one ``## section`` if named."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    if section:
        body = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
        assert body is not None, section
        text = body.group(1)
    return shell_lines(text)


def as_run(command: str) -> str:
    """The command as its test runs it: the README's, with the table's scale options appended."""
    return command + COMMANDS[command].scale
