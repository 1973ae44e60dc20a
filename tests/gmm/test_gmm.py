"""Monophone GMM: training from the synthesizer's alignment, the Kaldi text model, alignment
dirs and frame labels (pytorch_kaldi_snn.gmm)."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from repo_paths import KALDI_GOLDEN_DECODE as GOLDEN
from synth_recipe import SETS, tiny_recipe

from pytorch_kaldi_snn.decoding.transition_model import read_transition_model
from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.gmm.agreement import read_reference
from pytorch_kaldi_snn.gmm.labels import read_lab_folder
from pytorch_kaldi_snn.gmm.model_io import load_trans_model, write_model
from pytorch_kaldi_snn.gmm.topology import build_hmm_system
from pytorch_kaldi_snn.gmm.train import MonoConfig, initial_alignment, train_mono
from pytorch_kaldi_snn.gmm.train_mono import gmm_features, phone_transcripts
from pytorch_kaldi_snn.gmm.train_mono import main as train_mono_main
from pytorch_kaldi_snn.io.tables import read_symbol_table
from pytorch_kaldi_snn.io import read_kaldi_map


# Agreement thresholds on the tiny corpus (8 training utterances, ~2000 frames, ~17 frames
# per pdf). Measured, train / dev / test: seed 1 (this test: the tests' one tiny corpus) 89.8 /
# 78.8 / 77.2 %; seeds 0-3 81.1-90.2 / 73.0-78.8 / 59.8-77.2 %; the default size (1280 training
# utterances) 88.3 / 88.4 / 87.6 %. Even on train the ceiling is below 100 %: ~8 % of the
# synthesizer's phone segments last 1-2 frames, which a 3-state HMM cannot reproduce, and its
# stop-closure, dark-/l/ and compound-phone boundaries are conventions or heuristic splits. On
# tiny, dev/test speakers are unseen and many pdfs have a handful of training frames, so one
# badly aligned utterance moves a set by 10+ points. The bounds sit under the lowest value
# seen over seeds 0-3, so a change of the corpus's sentences does not break the test, and
# far above an untrained model (every pdf the global Gaussian): 18.5 % on seed 0 train.
MIN_TRAIN_AGREEMENT = 0.80
MIN_HELD_OUT_AGREEMENT = 0.55


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_recipe(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(recipe: Path, tmp_path_factory: pytest.TempPathFactory):
    """A model trained in this process (few iterations) and written to a text final.mdl."""
    data = recipe / "data"
    topo = (data / "lang" / "topo").read_text()
    hmm = build_hmm_system(topo)
    phone_ids = read_symbol_table(data / "lang" / "phones.txt")
    feats = gmm_features(data / "mfcc" / "train")
    model, _ = train_mono(hmm, feats, read_reference(data / "train" / "ali.txt", phone_ids), MonoConfig(num_iters=4))
    mdl = tmp_path_factory.mktemp("model") / "final.mdl"
    write_model(mdl, model.trans_model, model.am, topo)
    return model, mdl, topo


def test_agreement_with_synthesizer(recipe: Path) -> None:
    report = json.loads((recipe / "exp" / "mono" / "agreement.json").read_text())
    assert report["train"]["agreement"] >= MIN_TRAIN_AGREEMENT
    for name in ("dev", "test"):
        assert report[name]["agreement"] >= MIN_HELD_OUT_AGREEMENT, (name, report[name])
    for name in SETS:
        assert report[name]["utts_aligned"] == report[name]["utts"] > 0


def test_model_text_layout_is_kaldis(recipe: Path) -> None:
    """Same 39 phones, same topology: everything before the log-probs matches gmm-copy's output byte for byte."""
    ours = (recipe / "exp" / "mono" / "final.mdl").read_text()
    golden = (GOLDEN / "model" / "final.mdl.txt").read_text()
    cut = "<LogProbs> \n"
    assert ours[: ours.index(cut)] == golden[: golden.index(cut)]
    tail = ours[ours.index("</LogProbs> \n"):]
    assert tail.startswith("</LogProbs> \n</TransitionModel> \n<DIMENSION> 39 <NUMPDFS> 117 <DiagGMM> \n<GCONSTS>  [ ")
    assert tail.count("<DiagGMM> \n") == tail.count("</DiagGMM> \n") == 117
    assert tail.endswith(" ]\n</DiagGMM> \n")


def _parse_gmms(text: str) -> list[dict[str, np.ndarray]]:
    """The <DiagGMM> blocks of a text model as arrays (a test-side reader of our writer's output)."""
    gmms = []
    for block in text.split("<DiagGMM> \n")[1:]:
        fields = {}
        for name in ("GCONSTS", "WEIGHTS", "MEANS_INVVARS", "INV_VARS"):
            body = block.split(f"<{name}>  [", 1)[1].split("]", 1)[0]
            fields[name] = np.array([[float(x) for x in row.split()] for row in body.strip().split("\n")])
        gmms.append(fields)
    return gmms


def test_written_model_rereads_to_the_same_model(trained) -> None:
    model, mdl, topo = trained
    tm = model.trans_model
    read = read_transition_model(mdl)
    tids = range(1, tm.num_transition_ids + 1)
    assert read.num_pdfs == tm.num_pdfs == 117
    assert read.tid2pdf[1:].tolist() == [tm.transition_id_to_pdf(t) for t in tids]
    assert read.tid2phone[1:].tolist() == [tm.transition_id_to_phone(t) for t in tids]
    np.testing.assert_allclose(read.log_probs, tm.log_probs, rtol=1e-6, atol=1e-7)
    reloaded = load_trans_model(mdl, topo)
    np.testing.assert_allclose(reloaded.log_probs, tm.log_probs, rtol=1e-6, atol=1e-7)
    gmms = _parse_gmms(mdl.read_text())
    assert len(gmms) == model.am.num_pdfs
    for pdf in (0, 58, 116):
        gmm = model.am.get_pdf(pdf)
        np.testing.assert_allclose(gmms[pdf]["MEANS_INVVARS"], np.array(gmm.means_invvars), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(gmms[pdf]["INV_VARS"], np.array(gmm.inv_vars), rtol=1e-6)
        np.testing.assert_allclose(gmms[pdf]["GCONSTS"].ravel(), np.array(gmm.gconsts), rtol=1e-6)


def test_training_is_reproducible(recipe: Path, trained) -> None:
    model, _, topo = trained
    data = recipe / "data"
    feats = gmm_features(data / "mfcc" / "train")
    ref = read_reference(data / "train" / "ali.txt", read_symbol_table(data / "lang" / "phones.txt"))
    again, _ = train_mono(build_hmm_system(topo), feats, ref, MonoConfig(num_iters=4))
    assert again.history == model.history


def test_initial_alignment_splits_phones_into_three_states(trained) -> None:
    tm = trained[0].trans_model
    phones = np.array([1] * 6 + [5] * 4 + [1] * 2)
    tids = initial_alignment(tm, phones)
    assert [tm.transition_id_to_phone(int(t)) for t in tids] == phones.tolist()
    pdfs = [tm.transition_id_to_pdf(int(t)) for t in tids]
    # sil (pdfs 0-2) split 2/2/2, phone 5 (pdfs 12-14) split 2/1/1, a 2-frame sil uses 2 states.
    assert pdfs == [0, 0, 1, 1, 2, 2, 12, 12, 13, 14, 0, 1]


def test_training_rejects_mismatched_lengths(trained) -> None:
    hmm = build_hmm_system(trained[2])
    with pytest.raises(DataError, match="utt1"):
        train_mono(hmm, {"utt1": np.zeros((5, 39), np.float32)}, {"utt1": np.ones(4, int)})


def test_lab_folder_gives_pdf_and_phone_labels(recipe: Path) -> None:
    for name in SETS:
        folder = recipe / "exp" / f"mono_ali_{name}"
        pdfs = read_lab_folder(folder, "ali-to-pdf")
        phones = read_lab_folder(folder, "ali-to-phones  --per-frame=true")
        frames = {u: int(n) for u, n in read_kaldi_map(recipe / "data" / name / "utt2num_frames").items()}
        assert {u: len(p) for u, p in pdfs.items()} == frames
        for utt in pdfs:  # monophone layout: pdf = 3 * (phone - 1) + state
            assert (pdfs[utt] // 3 + 1 == phones[utt]).all()
    with pytest.raises(ConfigError, match="lab_opts"):
        read_lab_folder(recipe / "exp" / "mono_ali_dev", "ali-to-post")


def _first5(path: Path) -> dict[str, list[int]]:
    return {line.split()[0]: [int(x) for x in line.split()[1:]] for line in path.read_text().splitlines()}


def test_lab_folder_matches_kaldi_ali_to_pdf_and_phones(tmp_path: Path) -> None:
    """The golden Kaldi system's alignments through our lab_folder reader equal Kaldi's own output."""
    shutil.copyfile(GOLDEN / "align" / "ali.1.gz", tmp_path / "ali.1.gz")
    shutil.copyfile(GOLDEN / "model" / "final.mdl", tmp_path / "final.mdl")
    (tmp_path / "num_jobs").write_text("1\n")
    pdfs = read_lab_folder(tmp_path, "ali-to-pdf")
    phones = read_lab_folder(tmp_path, "ali-to-phones --per-frame=true")
    for utt, expected in _first5(GOLDEN / "align" / "train_ali_pdf.first5.txt").items():
        assert pdfs[utt].tolist() == expected
    for utt, expected in _first5(GOLDEN / "align" / "train_ali_phones.first5.txt").items():
        assert phones[utt].tolist() == expected
    assert len(pdfs) == 49


def test_ali_dir_is_gzipped_kaldi_int_vectors(recipe: Path) -> None:
    folder = recipe / "exp" / "mono_ali_test"
    with gzip.open(folder / "ali.1.gz", "rb") as f:
        head = f.read(64)
    assert b"\0B" in head[:40]  # binary Kaldi table entries: "utt \0B..."
    assert (folder / "num_jobs").read_text() == "1\n"
    assert (folder / "final.mdl").read_bytes() == (recipe / "exp" / "mono" / "final.mdl").read_bytes()
    # The monophone tree of 39 phones x 3 pdf classes is the golden system's, byte for byte.
    assert (folder / "tree").read_bytes() == (GOLDEN / "model" / "tree").read_bytes()


def test_word_transcripts_are_rejected_with_one_line(recipe: Path, tmp_path: Path, capsys) -> None:
    data = recipe / "data"
    with pytest.raises(DataError, match="word transcript"):
        phone_transcripts(data / "train" / "text.words", read_symbol_table(data / "lang" / "phones.txt"))
    code = train_mono_main(["--lang", str(tmp_path / "nolang"), "--feats", str(data / "mfcc"),
                            "--data", str(data), "--exp", str(tmp_path / "exp")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("train_mono: ") and err.count("\n") == 1
    assert not (tmp_path / "exp").exists()
