"""recipes/synth/run.sh end to end on the tiny corpus, and an oracle decode through its graph."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from synth_recipe import RECIPE, SETS, run_recipe, tiny_recipe

from pytorch_kaldi_snn.decoding.decoder import DecodeOptions, decode_ark
from pytorch_kaldi_snn.gmm.agreement import read_reference
from pytorch_kaldi_snn.gmm.labels import read_alignments
from pytorch_kaldi_snn.gmm.model_io import load_trans_model
from pytorch_kaldi_snn.gmm.train import initial_alignment
from pytorch_kaldi_snn.io.tables import read_symbol_table
from pytorch_kaldi_snn.io import read_double_matrices, read_kaldi_map, read_matrices
from pytorch_kaldi_snn.scoring import score_files

# Oracle PER bound. Log-likelihoods are 0 for each frame's true pdf and -10 elsewhere, so the
# best path follows the synthesizer's phones wherever the HMM can: only phones shorter than
# the 3-frame HMM minimum (~8 % of segments on tiny) can be lost. Acoustic scale 1.0 makes
# the acoustics dominate the bigram. Measured (seed 1, the tests' tiny corpus): PER 4.24 % on
# test, all deletions, 10 errors against 25 segments of 1-2 frames (train 4.17 %, dev 8.28 %;
# seed 0: test 5.56 %, train 3.91 %, dev 4.58 %).
MAX_ORACLE_PER = 8.0


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_recipe(tmp_path_factory)


@pytest.mark.parametrize("script", ["run.sh", "local/phone_text.sh"])
def test_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(RECIPE / script)]).returncode == 0


def test_outputs_have_the_documented_layout(recipe: Path) -> None:
    data, exp = recipe / "data", recipe / "exp"
    phones = read_symbol_table(data / "lang" / "phones.txt")
    for name in SETS:
        d = data / name
        for f in ("feats.scp", "cmvn.scp", "cmvn_speaker.ark", "utt2spk", "text", "text.words", "text.phn"):
            assert (d / f).is_file(), d / f
        assert read_kaldi_map(d / "text") == read_kaldi_map(d / "text.phn")
        assert all(p in phones for line in read_kaldi_map(d / "text").values() for p in line.split())
        feats = dict(read_matrices(d / "feats.scp"))
        assert {m.shape[1] for m in feats.values()} == {40}
        speakers = set(read_kaldi_map(d / "utt2spk").values())
        assert {spk for spk, _ in read_double_matrices(d / "cmvn_speaker.ark")} == speakers
        ali_dir = exp / f"mono_ali_{name}"
        assert set(read_alignments(ali_dir)) == set(feats)
        assert (ali_dir / "final.mdl").is_file() and (ali_dir / "num_jobs").is_file()
    assert {m.shape[1] for _, m in read_matrices(data / "mfcc" / "train" / "feats.scp")} == {13}
    for f in ("final.mdl", "ali.1.gz", "agreement.json", "graph/HCLG.fst", "graph/words.txt"):
        assert (exp / "mono" / f).is_file(), f


def test_second_run_skips_every_stage(recipe: Path) -> None:
    stamp = (recipe / "exp" / "mono" / "graph" / "HCLG.fst").stat().st_mtime_ns
    result = run_recipe(recipe)
    assert result.returncode == 0, result.stderr
    assert "Stage" not in result.stdout
    assert (recipe / "exp" / "mono" / "graph" / "HCLG.fst").stat().st_mtime_ns == stamp


def test_bad_option_fails(tmp_path: Path) -> None:
    result = run_recipe(tmp_path, "--bogus", "1")
    assert result.returncode != 0 and "unknown option --bogus" in result.stderr
    assert not (tmp_path / "data").exists()


def _oracle_loglikes(recipe: Path, name: str) -> dict[str, np.ndarray]:
    """0 for the true pdf of each frame, -10 for every other pdf.

    The true pdf comes from the synthesizer's phone and an equal 3-way split of each phone
    segment into HMM states (the alignment GMM training starts from).
    """
    lang = recipe / "data" / "lang"
    tm = load_trans_model(recipe / "exp" / "mono" / "final.mdl", (lang / "topo").read_text())
    tid2pdf = np.asarray(tm.transition_id_to_pdf_array())
    loglikes = {}
    truth = read_reference(recipe / "data" / name / "ali.txt", read_symbol_table(lang / "phones.txt"))
    for utt, phones in truth.items():
        matrix = np.full((len(phones), tm.num_pdfs), -10.0, np.float32)
        matrix[np.arange(len(phones)), tid2pdf[initial_alignment(tm, phones)]] = 0.0
        loglikes[utt] = matrix
    return loglikes


def _short_segments(ali_txt: Path) -> int:
    """Phone segments shorter than the 3-frame HMM minimum in the synthesizer's alignment."""
    short = 0
    for labels in read_kaldi_map(ali_txt).values():
        frames = np.array(labels.split())
        bounds = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1], True])
        short += int(np.sum(np.diff(bounds) < 3))
    return short


def test_oracle_decode_gives_near_zero_per(recipe: Path, tmp_path: Path) -> None:
    graph = recipe / "exp" / "mono" / "graph"
    out = decode_ark(
        sorted(_oracle_loglikes(recipe, "test").items()), graph, recipe / "exp" / "mono" / "final.mdl",
        tmp_path / "decode_test", DecodeOptions(acoustic_scale=1.0),
    )
    counts = score_files(recipe / "data" / "test" / "text", out / "hyp.txt", mode="sclite")
    assert counts.sentences == 4 and not counts.missing
    assert counts.error_rate <= MAX_ORACLE_PER, counts.kaldi_report()
    assert counts.ins == counts.subs == 0, counts.kaldi_report()
    assert counts.dels <= _short_segments(recipe / "data" / "test" / "ali.txt")
    assert (out / "lat.1.gz").is_file()
