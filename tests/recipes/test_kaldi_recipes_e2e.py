"""The Kaldi recipes run for real: recipes/timit/run.sh and recipes/librispeech/run.sh through
every stage with the Kaldi build (``kaldi_env``), on corpus-shaped fixtures
(tests/support/corpus_layouts.py), then ``./run_exp.sh`` on their output and
recipes/common/decode_dnn.sh, which decodes with ``latgen-faster-mapped`` and scores with
Kaldi's own ``local/score.sh``.

Each test runs in a private KALDI_ROOT: links to the build's src/ and tools/ and to
egs/wsj (steps/, utils/), and a copy of the corpus' egs dir, which the recipes write into.
The numbers are a plumbing check (a few synthetic speakers, a 32-unit SNN trained one epoch),
not a quality figure; the stage times are printed (``pytest -s``).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Sequence

import pytest

from corpus_layouts import write_librispeech_tree, write_timit_tree
from repo_paths import ROOT

pytestmark = pytest.mark.slow

RECIPES = ROOT / "recipes"
NJ = ["--feats-nj", "2", "--train-nj", "2", "--decode-nj", "2"]
# Small GMMs and narrow beams: the fixtures have ~60 training utterances.
DECODE_OPTS = "--beam 10 --lattice-beam 4 --max-active 1000"
TINY_NET = [
    "exp.use_cuda=False", "exp.n_epochs_tr=1", "architecture1.snn_lay=32",
    "architecture1.snn_drop=0.0", "architecture1.snn_use_batchnorm=False",
    "decoding.beam=8", "decoding.latbeam=3", "decoding.max_active=700",
]
DECODE_BEAMS = ["--beam", "8", "--lattice-beam", "3", "--max-active", "700"]
_STAGE = re.compile(r"^(\S+ \S+) \(lib\.sh:\d+\) stage (\d+)(?:: (\S+)| \((\S+)\) done)$")


def sizes(*models: str) -> List[str]:
    return [arg for m in models for arg in (f"--num-leaves-{m}", "200", f"--num-gauss-{m}", "1000")]


def private_kaldi_root(tmp: Path, kaldi_env: Dict[str, str], corpus: str) -> Path:
    real = Path(kaldi_env["KALDI_ROOT"])
    root = tmp / "kaldi"
    (root / "tools").mkdir(parents=True)
    (root / "src").symlink_to(real / "src")
    for tool in (real / "tools").iterdir():
        (root / "tools" / tool.name).symlink_to(tool)
    (root / "egs" / corpus).mkdir(parents=True)
    (root / "egs" / "wsj").symlink_to(real / "egs" / "wsj")
    shutil.copytree(real / "egs" / corpus / "s5", root / "egs" / corpus / "s5", symlinks=True)
    return root


def run_logged(cmd: Sequence[str], env: Dict[str, str], log: Path, timeout: int = 1500) -> str:
    """Run ``cmd`` with stdout+stderr in ``log``; on failure show the log's tail."""
    with open(log, "w") as f:
        done = subprocess.run(list(map(str, cmd)), env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                              timeout=timeout)
    text = log.read_text(errors="replace")
    assert done.returncode == 0, f"{cmd[0]} failed ({done.returncode}), log {log}:\n" + "\n".join(text.splitlines()[-30:])
    return text


def stage_seconds(log_text: str) -> Dict[str, float]:
    """Seconds per stage, from the recipe's "stage N: name" / "stage N (name) done" lines."""
    start: Dict[str, datetime] = {}
    took: Dict[str, float] = {}
    for line in log_text.splitlines():
        m = _STAGE.match(line)
        if not m:
            continue
        when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
        name = f"{m.group(2)} {m.group(3) or m.group(4)}"
        if m.group(3):
            start[name] = when
        else:
            took[name] = (when - start[name]).total_seconds()
    return took


def best_wer(decode_dir: Path) -> float:
    """The %WER of Kaldi's scoring (best_wer, written by decode_dnn.sh from local/score.sh):
    compute-wer's ``%WER 37.65 [ 32 / 85, ...`` or sclite's ``%WER 91.6 | 12 488 | ...``, over a
    non-empty reference."""
    line = (decode_dir / "best_wer").read_text()
    m = re.search(r"%WER ([0-9.]+) (?:\[ \d+ / |\| \d+ )[1-9]", line)
    assert m, line
    return float(m.group(1))


@pytest.fixture()
def env(kaldi_env: Dict[str, str]) -> Dict[str, str]:
    return {**kaldi_env, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable,
            "PYTHONPATH": str(ROOT)}


def test_timit_recipe_then_the_runner(env: Dict[str, str], tmp_path: Path) -> None:
    tree = write_timit_tree(tmp_path / "TIMIT", train_speakers=10, utts_per_speaker=8, nj=2)
    env = {**env, "KALDI_ROOT": str(private_kaldi_root(tmp_path, env, "timit"))}
    out = tmp_path / "timit_out"
    log = run_logged(
        ["bash", RECIPES / "timit/run.sh", "--corpus-dir", tree.root, "--out-dir", out, *NJ,
         "--dnn", "false", "--sph2pipe", "builtin", "--phone-lm", "builtin", "--arpa2fst", "builtin",
         *sizes("tri1", "mllt", "sat"), "--decode-opts", DECODE_OPTS],
        env, tmp_path / "recipe.log")
    print("TIMIT stage seconds:", stage_seconds(log))
    egs = Path(env["KALDI_ROOT"]) / "egs/timit/s5"
    assert len((out / "data/test/feats.scp").read_text().splitlines()) == tree.utterances["test"]
    assert sorted((out / "exp").iterdir()) == [out / "exp" / d for d in ("tri3", "tri3_ali", "tri3_ali_dev", "tri3_ali_test")]

    # With --dnn false the tri3 alignments stand in for the DNN's (docs/kaldi_recipes.md).
    cfg = tmp_path / "TIMIT_snn_v2.cfg"
    cfg.write_text((ROOT / "cfg/TIMIT_snn_v2.cfg").read_text().replace("exp/dnn4_pretrain-dbn_dnn_ali", "exp/tri3_ali"))
    exp = tmp_path / "exp"
    sets = [a for s in [f"exp.out_folder={exp}", *TINY_NET] for a in ("--set", s)]
    text = run_logged([ROOT / "run_exp.sh", cfg, *sets], env, tmp_path / "run_exp.log")
    assert "kaldi decoder (latgen-faster-mapped)" in text
    run_logged([RECIPES / "common/decode_dnn.sh", "--config", RECIPES / "timit/conf/decode.conf", *DECODE_BEAMS,
                egs / "exp/tri3/graph", egs / "data-fmllr-tri3/test", egs / "exp/tri3_ali_test",
                exp / "decode_kaldi", exp / "forward_test.ark"], env, tmp_path / "decode.log")
    assert sorted((exp / "decode_kaldi").glob("score_*/ctm_39phn.filt.sys"))  # sclite, 39 phones
    print("TIMIT PER (Kaldi scoring):", best_wer(exp / "decode_kaldi"))


def test_librispeech_recipe_then_the_runner(env: Dict[str, str], tmp_path: Path) -> None:
    tree = write_librispeech_tree(tmp_path / "corpus", train_speakers=10, utts_per_speaker=6, nj=2)
    env = {**env, "KALDI_ROOT": str(private_kaldi_root(tmp_path, env, "librispeech"))}
    out = tmp_path / "libri_out"
    log = run_logged(
        ["bash", RECIPES / "librispeech/run.sh", "--corpus-dir", tree.root, "--lm-dir", tree.lm_dir,
         "--out-dir", out, *NJ, "--const-arpa", "false", "--arpa2fst", "builtin",
         "--mono-utts", "30", "--tri1-utts", "45", "--tri2-utts", "60",
         *sizes("tri1", "tri2b", "tri3b", "tri4b"), "--decode-opts", DECODE_OPTS],
        env, tmp_path / "recipe.log")
    print("LibriSpeech stage seconds:", stage_seconds(log))
    egs = Path(env["KALDI_ROOT"]) / "egs/librispeech/s5"
    assert len((out / "data/train_clean_100/feats.scp").read_text().splitlines()) == tree.utterances["train"]
    assert not (out / "data/lang_test_fglarge").exists()  # --const-arpa false

    exp = tmp_path / "exp"
    sets = [a for s in [f"exp.out_folder={exp}", *TINY_NET] for a in ("--set", s)]
    text = run_logged([ROOT / "run_exp.sh", ROOT / "cfg/Librispeech_snn_v2.cfg", *sets], env,
                      tmp_path / "run_exp.log")
    assert "kaldi decoder (latgen-faster-mapped)" in text
    run_logged([RECIPES / "common/decode_dnn.sh", "--config", RECIPES / "librispeech/conf/decode.conf",
                *DECODE_BEAMS, egs / "exp/tri4b/graph_tgsmall", egs / "data-fmllr-tri4b/test_clean",
                egs / "exp/tri4b_ali_test_clean", exp / "decode_kaldi", exp / "forward_test.ark"],
               env, tmp_path / "decode.log")
    assert sorted((exp / "decode_kaldi").glob("wer_*"))  # compute-wer over LM weights
    print("LibriSpeech WER (Kaldi scoring):", best_wer(exp / "decode_kaldi"))
