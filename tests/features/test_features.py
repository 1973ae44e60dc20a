"""Feature extraction, CMVN/deltas/splicing and fea_opts pipes against Kaldi-written files."""
from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.features import (
    FeatureConf,
    add_deltas,
    apply_cmvn,
    compute_cmvn_stats,
    compute_features,
    make_feats,
    parse_fea_opts,
    read_features,
    speaker_cmvn_stats,
    splice_feats,
)
from pytorch_kaldi_snn.features import pipes
from pytorch_kaldi_snn.io import (
    read_double_matrices,
    read_kaldi_map,
    read_matrices,
    write_double_matrices,
    write_mat_ark,
)
from repo_paths import KALDI_GOLDEN as GOLDEN

# Measured max |diff| of kaldi-native-fbank against Kaldi on these wavs: 1.36e-3 (fbank40)
# and 2.72e-3 (MFCC-13); the bounds leave ~1.5x headroom for other BLAS/CPU rounding.
FBANK_TOL = 2e-3
MFCC_TOL = 4e-3


def _golden(name: str) -> dict[str, np.ndarray]:
    return dict(read_matrices(GOLDEN / name))


@pytest.fixture(scope="module")
def mfcc() -> dict[str, np.ndarray]:
    return _golden("mfcc.ark")


@pytest.fixture(scope="module")
def kaldi_stats() -> dict[str, np.ndarray]:
    return dict(read_double_matrices(GOLDEN / "cmvn_spk_mfcc.ark"))


@pytest.fixture
def in_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    """wav.scp names wavs relative to its folder; Kaldi resolves them against the cwd."""
    monkeypatch.chdir(GOLDEN)


def _max_diff(ours: dict[str, np.ndarray], kaldi: dict[str, np.ndarray]) -> float:
    assert list(ours) == list(kaldi)
    assert all(ours[k].shape == kaldi[k].shape for k in kaldi)
    return max(float(np.abs(ours[k] - kaldi[k]).max()) for k in kaldi)


def test_fbank_matches_compute_fbank_feats(in_golden: None) -> None:
    conf = FeatureConf("fbank", {"dither": "0", "num-mel-bins": "40"})
    assert _max_diff(dict(compute_features("wav.scp", conf)), _golden("fbank40.ark")) < FBANK_TOL


def test_mfcc_matches_compute_mfcc_feats_and_frame_counts(in_golden: None) -> None:
    feats = dict(compute_features("wav.scp", FeatureConf("mfcc", {"dither": "0"})))
    assert _max_diff(feats, _golden("mfcc.ark")) < MFCC_TOL
    frames = read_kaldi_map("utt2num_frames")
    assert {utt: str(len(m)) for utt, m in feats.items()} == frames


def test_wav_scp_pipes_are_read(tmp_path: Path, in_golden: None) -> None:
    scp = tmp_path / "wav.scp"
    scp.write_text(f"spkA_u1 cat {GOLDEN / 'wav' / 'spkA_u1.wav'} |\n")
    conf = FeatureConf("fbank", {"dither": "0", "num-mel-bins": "40"})
    (utt, feats), = compute_features(scp, conf)
    assert utt == "spkA_u1" and feats.shape == (281, 40)
    scp.write_text("spkA_u1 false |\n")
    with pytest.raises(DataError, match=r"scp:.*wav.scp: utterance spkA_u1: read failed at false \|"):
        list(compute_features(scp, conf))


def test_conf_file_parsing(tmp_path: Path) -> None:
    conf_file = tmp_path / "fbank.conf"
    conf_file.write_text(
        "--num-mel-bins=40  # comment\n\n--snip-edges=false\n--window-type=hamming\n--use-energy\n"
    )
    opts = FeatureConf.from_file("fbank", conf_file).knf_options()
    assert opts.mel_opts.num_bins == 40 and opts.frame_opts.window_type == "hamming"
    assert opts.use_energy and not opts.frame_opts.snip_edges
    assert opts.frame_opts.dither == 1.0  # Kaldi's default at int16 scale, not knf's 3e-5


@pytest.mark.parametrize(
    "text, message",
    [
        ("--num-mel-bins=40\n--bogus-option=1\n", r"fbank.conf: --bogus-option: unsupported option"),
        ("--num-ceps=13\n", r"--num-ceps: unsupported option for compute-fbank-feats"),
        ("--snip-edges=maybe\n", r"--snip-edges: bad value"),
        ("--window-type=square\n", r"fbank.conf: invalid feature options"),
        ("num-mel-bins 40\n", r"expected --name=value"),
    ],
)
def test_conf_file_errors(tmp_path: Path, text: str, message: str) -> None:
    conf_file = tmp_path / "fbank.conf"
    conf_file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        FeatureConf.from_file("fbank", conf_file)


def test_cmvn_stats_equal_compute_cmvn_stats(mfcc: dict, kaldi_stats: dict) -> None:
    spk2utt = {spk: utts.split() for spk, utts in read_kaldi_map(GOLDEN / "spk2utt").items()}
    ours = speaker_cmvn_stats(mfcc, spk2utt)
    assert list(ours) == list(kaldi_stats)
    for spk, stats in ours.items():
        assert stats.dtype == np.float64 and stats.shape == (2, 14)
        np.testing.assert_array_equal(stats, kaldi_stats[spk])  # bit-exact
    np.testing.assert_array_equal(compute_cmvn_stats([mfcc["spkB_u3"]]), kaldi_stats["spkB"])


@pytest.mark.parametrize("norm_vars, golden", [(False, "mfcc_cmvn.ark"), (True, "mfcc_cmvn_normvars.ark")])
def test_apply_cmvn_matches_kaldi(mfcc: dict, kaldi_stats: dict, norm_vars: bool, golden: str) -> None:
    utt2spk = read_kaldi_map(GOLDEN / "utt2spk")
    expected = _golden(golden)
    for utt, feats in mfcc.items():
        out = apply_cmvn(feats, kaldi_stats[utt2spk[utt]], norm_vars)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, expected[utt])  # bit-exact


def test_add_deltas_and_splice_match_kaldi() -> None:
    cmvn = _golden("mfcc_cmvn.ark")
    deltas, spliced = _golden("mfcc_cmvn_deltas.ark"), _golden("mfcc_cmvn_splice5.ark")
    for utt, feats in cmvn.items():
        np.testing.assert_array_equal(add_deltas(feats, order=2, window=2), deltas[utt])
        np.testing.assert_array_equal(splice_feats(feats, 5, 5), spliced[utt])
    assert deltas["spkA_u1"].shape == (281, 39) and spliced["spkA_u1"].shape == (281, 143)


def test_deltas_hand_example() -> None:
    """order 2, window 1 on [1, 2, 4]: the worked example in Kaldi's DeltaFeatures terms."""
    out = add_deltas(np.array([[1.0], [2.0], [4.0]], np.float32), order=2, window=1)
    np.testing.assert_allclose(out, [[1, 0.5, 0.75], [2, 1.5, 0.25], [4, 1.0, -0.75]])


def _feats_scp(tmp_path: Path) -> str:
    """A feats.scp over a copy of Kaldi's mfcc.ark, as make_mfcc.sh would leave it."""
    write_mat_ark(tmp_path / "raw_mfcc.ark", tmp_path / "feats.scp", _golden("mfcc.ark").items())
    return str(tmp_path / "feats.scp")


def _no_kaldi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipes, "kaldi_featbin", lambda: None)


def test_native_fea_opts_pipe_gives_kaldi_deltas(tmp_path: Path, monkeypatch, caplog) -> None:
    _no_kaldi(monkeypatch)
    fea_opts = (
        f"apply-cmvn --utt2spk=ark:{GOLDEN / 'utt2spk'} ark:{GOLDEN / 'cmvn_spk_mfcc.ark'} ark:- ark:- |"
        " add-deltas --delta-order=2 ark:- ark:- |"
    )
    with caplog.at_level(logging.INFO):
        feats = dict(read_features(_feats_scp(tmp_path), fea_opts, logging.getLogger("test")))
    assert "features: built-in pipe (apply-cmvn | add-deltas)" in caplog.text
    expected = _golden("mfcc_cmvn_deltas.ark")
    assert list(feats) == list(expected)
    for utt, mat in feats.items():
        np.testing.assert_array_equal(mat, expected[utt])


def test_native_pipe_norm_vars_and_splice_with_our_stats(tmp_path: Path, monkeypatch, mfcc: dict) -> None:
    _no_kaldi(monkeypatch)
    spk2utt = {spk: utts.split() for spk, utts in read_kaldi_map(GOLDEN / "spk2utt").items()}
    write_double_matrices(tmp_path / "stats.ark", None, speaker_cmvn_stats(mfcc, spk2utt).items())
    cmvn = f"--utt2spk=ark:{GOLDEN / 'utt2spk'} ark:{tmp_path / 'stats.ark'} ark:- ark:-"
    fea_opts = f"apply-cmvn --norm-vars {cmvn}|copy-feats ark:- ark:- |"  # bare flag, '|' unspaced
    feats = dict(read_features(_feats_scp(tmp_path), fea_opts, logging.getLogger("test")))
    expected = _golden("mfcc_cmvn_normvars.ark")
    for utt, mat in feats.items():
        np.testing.assert_array_equal(mat, expected[utt])
    fea_opts = f"apply-cmvn {cmvn} | splice-feats --left-context=5 --right-context=5 ark:- ark:- |"
    spliced = dict(read_features(_feats_scp(tmp_path), fea_opts, logging.getLogger("test")))
    np.testing.assert_array_equal(spliced["spkB_u3"], _golden("mfcc_cmvn_splice5.ark")["spkB_u3"])


def test_native_pipe_reproduces_kaldi_decode_test_features(tmp_path: Path, monkeypatch) -> None:
    """kaldi_golden_decode/test/feats.ark: apply-cmvn (speaker, means) | add-deltas, 10 utts."""
    _no_kaldi(monkeypatch)
    test = GOLDEN.parent / "kaldi_golden_decode" / "test"
    raw = dict(read_matrices(test / "raw_mfcc_compressed.ark"))  # decoded exactly as Kaldi does
    write_mat_ark(tmp_path / "raw.ark", tmp_path / "feats.scp", raw.items())
    fea_opts = (
        f"apply-cmvn --utt2spk=ark:{test / 'utt2spk'} ark:{test / 'cmvn.ark'} ark:- ark:- |"
        " add-deltas ark:- ark:- |"
    )
    feats = dict(read_features(str(tmp_path / "feats.scp"), fea_opts, logging.getLogger("test")))
    expected = dict(read_matrices(test / "feats.ark"))
    assert list(feats) == list(expected) and len(feats) == 10
    for utt, mat in feats.items():
        np.testing.assert_array_equal(mat, expected[utt])


@pytest.mark.parametrize(
    "fea_opts, message",
    [
        ("compute-cmvn-stats ark:- ark:- |", "unsupported command 'compute-cmvn-stats'"),
        ("add-deltas --delta-order=2 --bogus=1 ark:- ark:- |", "add-deltas: unsupported option --bogus"),
        ("copy-feats --compress=true ark:- ark:- |", "copy-feats: unsupported option --compress"),
        ("add-deltas ark:- ark:out.ark |", "expected '... ark:- ark:-'"),
        ("add-deltas --delta-order=two ark:- ark:- |", "--delta-order"),
        ("apply-cmvn --norm-means=false --norm-vars=true ark:s.ark ark:- ark:- |", "without means"),
        ("apply-cmvn global_cmvn.stats ark:- ark:- |", "global stats file"),
    ],
)
def test_native_pipe_rejects_unsupported(fea_opts: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_fea_opts(fea_opts)


def test_native_pipe_unknown_speaker_raises(tmp_path: Path, monkeypatch) -> None:
    _no_kaldi(monkeypatch)
    utt2spk = tmp_path / "utt2spk"
    utt2spk.write_text("spkA_u1 spkA\n")
    fea_opts = f"apply-cmvn --utt2spk=ark:{utt2spk} ark:{GOLDEN / 'cmvn_spk_mfcc.ark'} ark:- ark:- |"
    with pytest.raises(DataError, match="utterance spkA_u2: no speaker in utt2spk"):
        list(read_features(_feats_scp(tmp_path), fea_opts, logging.getLogger("test")))


def _fake_copy_feats(bin_dir: Path, body: str) -> None:
    """A stand-in for Kaldi's copy-feats: ``copy-feats scp:LIST ark:-`` via kaldiio, honestly."""
    bin_dir.mkdir()
    script = bin_dir / "copy-feats"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, kaldiio\n"
        "assert sys.argv[1].startswith('scp:') and sys.argv[2] == 'ark:-', sys.argv\n"
        "with kaldiio.WriteHelper('ark:-') as out:\n"
        "    for key, mat in kaldiio.load_scp(sys.argv[1][4:]).items():\n"
        "        out(key, mat)\n"
        f"{body}\n"
    )
    script.chmod(0o755)


def test_kaldi_path_chosen_and_logged_when_copy_feats_on_path(tmp_path: Path, monkeypatch, caplog) -> None:
    _fake_copy_feats(tmp_path / "bin", "")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with caplog.at_level(logging.INFO):
        feats = dict(read_features(_feats_scp(tmp_path), "", logging.getLogger("test")))
    assert f"features: Kaldi binaries ({tmp_path / 'bin'})" in caplog.text
    for utt, mat in _golden("mfcc.ark").items():
        np.testing.assert_array_equal(feats[utt], mat)


def test_kaldi_root_featbin_is_found(tmp_path: Path, monkeypatch) -> None:
    featbin = tmp_path / "kaldi" / "src" / "featbin"
    featbin.parent.mkdir(parents=True)
    _fake_copy_feats(featbin, "")
    monkeypatch.setenv("KALDI_ROOT", str(tmp_path / "kaldi"))
    monkeypatch.setattr(pipes.shutil, "which", lambda name: None)
    assert pipes.kaldi_featbin() == str(featbin)
    feats = dict(read_features(_feats_scp(tmp_path), "", logging.getLogger("test")))
    assert list(feats) == ["spkA_u1", "spkA_u2", "spkB_u3"]


def test_kaldi_pipe_failure_anywhere_raises(tmp_path: Path, monkeypatch) -> None:
    _fake_copy_feats(tmp_path / "bin", "sys.exit(1)")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    scp = _feats_scp(tmp_path)
    # copy-feats fails after writing everything: only pipefail makes that visible.
    with pytest.raises(DataError, match="read failed after spkB_u3"):
        list(read_features(scp, "cat |", logging.getLogger("test")))


def test_make_feats_lays_out_kaldi_files(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    for name in ("wav.scp", "utt2spk", "spk2utt", "text"):
        shutil.copy(GOLDEN / name, data / name)
    (tmp_path / "wav").symlink_to(GOLDEN / "wav")
    conf = tmp_path / "mfcc.conf"
    conf.write_text("--dither=0\n")
    monkeypatch.chdir(tmp_path)
    layout = make_feats(data, "mfcc", conf, tmp_path / "mfcc", compress=False)
    assert layout.feats_ark == tmp_path / "mfcc" / "raw_mfcc_train.1.ark"
    assert read_kaldi_map(data / "feats.scp")["spkA_u1"] == f"{layout.feats_ark}:8"
    assert read_kaldi_map(data / "utt2num_frames") == read_kaldi_map(GOLDEN / "utt2num_frames")
    assert (data / "conf" / "mfcc.conf").read_text() == "--dither=0\n"
    feats = dict(read_matrices(data / "feats.scp"))
    assert _max_diff(feats, _golden("mfcc.ark")) < MFCC_TOL
    stats = dict(read_double_matrices(data / "cmvn.scp"))
    assert list(stats) == ["spkA", "spkB"] and stats["spkA"][0, 13] == 281 + 264
    spk2utt = {spk: utts.split() for spk, utts in read_kaldi_map(data / "spk2utt").items()}
    for spk, value in speaker_cmvn_stats(feats, spk2utt).items():
        np.testing.assert_array_equal(stats[spk], value)


def test_make_feats_compressed_by_default(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data" / "dev"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text(f"spkB_u3 {GOLDEN / 'wav' / 'spkB_u3.wav'}\n")
    (data / "utt2spk").write_text("spkB_u3 spkB\n")
    (data / "spk2utt").write_text("spkB spkB_u3\n")
    conf = tmp_path / "fbank.conf"
    conf.write_text("--dither=0\n--num-mel-bins=40\n")
    layout = make_feats(data, "fbank", conf, tmp_path / "fbank")
    assert layout.feats_ark.read_bytes()[10:12] == b"CM"  # after "spkB_u3 \0B"
    feats = dict(read_matrices(data / "feats.scp"))
    assert np.abs(feats["spkB_u3"] - _golden("fbank40.ark")["spkB_u3"]).max() < 0.14
