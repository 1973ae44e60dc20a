"""Upstream PyTorch-Kaldi's unmodified ``run_exp.py`` runs our cfgs and classes end to end.

The commands are the README's "With a PyTorch-Kaldi checkout" section, run as written on the
tiny corpus (plus ``--map`` to it and small settings: 1 epoch, batch 4 (upstream divides by
``int(N_snt / batch_size)``), 16 units). Needs Kaldi and an upstream checkout
(``PYTORCH_KALDI_ROOT``): skipped with one line where they are missing, required under CI.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from pytorch_kaldi_snn.config.reading import read_cfg
from pytorch_kaldi_snn.config.localize import UPSTREAM_RELATIVE
from repo_paths import ROOT

TINY = ["exp.n_epochs_tr=1", "batches.batch_size_train=4", "batches.batch_size_valid=4",
        "architecture1.snn_lay=16,16"]
UPSTREAM_CPU_BUG = "TypeError: expected np.ndarray (got NoneType)"


def readme_commands() -> List[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## With a PyTorch-Kaldi checkout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_section_is_short_and_shows_v2() -> None:
    commands = readme_commands()
    assert len(commands) < 5 and "cfg/synth_snn_v2.cfg" in commands[0], commands


def _script(name: str, corpus: Path, out: Path) -> str:
    commands = [c.replace("synth_snn_v2", name) for c in readme_commands()]
    extra = [f"--map recipes/synth={corpus}", f"--set exp.out_folder={out}"]
    commands[0] += " " + " ".join(extra + [f"--set {s}" for s in TINY])
    return "\n".join(commands) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("name,arch_class", [("synth_snn_v2", "ImprovedSNNv2"),
                                             ("synth_snn", "TraditionalSNN")])
def test_upstream_trains_forwards_decodes(name: str, arch_class: str, tiny_corpus: Path,
                                          kaldi_env: Dict[str, str], upstream_checkout: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "exp"
    env = {**kaldi_env, "PK": str(upstream_checkout), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "-c", _script(name, tiny_corpus, out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert read_cfg(upstream_checkout / f"cfg/{name}.cfg")["architecture1"]["arch_class"] \
        == arch_class
    # first run: upstream trained and validated one epoch, then hit its CPU forward bug
    assert (out / "exp_files/final_architecture1.pkl").is_file(), log[-3000:]
    assert "Validating on synth_dev" in log and UPSTREAM_CPU_BUG in log, log[-3000:]
    # second run (production mode): forward, upstream's decode_dnn.sh with latgen-faster-mapped,
    # Kaldi's LibriSpeech score.sh (compute-wer over LM weights) -> a PER over every test phone
    assert proc.returncode == 0, log[-3000:]
    decode = out / "decode_synth_test_out_cd"
    assert (decode / "lat.1.gz").is_file() and "latgen-faster-mapped" in \
        (decode / "log/decode.1.log").read_text()
    match = re.search(r"%WER ([\d.]+) \[ (\d+) / (\d+),", log)
    assert match, log[-3000:]
    n_ref = sum(len(line.split()) - 1 for line in
                (tiny_corpus / "data/test/text").read_text().splitlines())
    assert int(match.group(3)) == n_ref
    per = float(match.group(1))
    assert per == pytest.approx(100 * int(match.group(2)) / n_ref, abs=0.01)
    print(f"{name}: upstream PER {per:.2f} % ({match.group(2)}/{n_ref})", file=sys.stderr)


CHECK = ("import sys, utils\n"
         "for cfg in sys.argv[1:]:\n"
         "    utils.check_consistency_with_proto(cfg, 'proto/global.proto')\n"
         "    print('ok', cfg)\n")


def test_upstream_check_cfg_accepts_every_shipped_cfg(upstream_checkout: Path,
                                                      tmp_path: Path) -> None:
    """Upstream's own proto check (mandatory sections/fields, types, ranges, proto paths) on
    every cfg/*.cfg after localize; upstream exits 0 on errors, so its stderr is the verdict."""
    cfgs = sorted((ROOT / "cfg").glob("*.cfg"))
    localized = []
    for cfg in cfgs:
        dest = tmp_path / cfg.name
        subprocess.run([sys.executable, "-m", "pytorch_kaldi_snn.config.localize", str(cfg),
                        "-o", str(dest), "--var", "KALDI_ROOT=/opt/kaldi"], cwd=ROOT,
                       check=True)
        localized.append(str(dest))
    proc = subprocess.run([sys.executable, "-c", CHECK, *localized], cwd=upstream_checkout,
                          capture_output=True, text=True)
    assert proc.stderr == "" and proc.stdout.count("ok ") == len(cfgs), proc.stderr[-2000:]
    for cfg in localized:  # the keys upstream resolves in its checkout stay relative
        parser = read_cfg(Path(cfg))
        for section in parser.sections():
            for key in UPSTREAM_RELATIVE & set(parser[section]):
                assert not parser[section][key].startswith(str(ROOT)), (cfg, key)
