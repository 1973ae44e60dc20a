"""The boundary with the user's machine: a file or folder name is never a shell command, and a
bad audio file is refused in one line naming it and the real reason.

Written as an attacker or a careless user would: wavs and data dirs named as commands
(``x;touch${IFS}M;#|``, ``d$(touch M)``), names with spaces, Kaldi offsets (``clip:44``) and
relative folders starting with ``-``; each test checks that the marker ``M`` never appears."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pytorch_kaldi_snn.config.datasets import FeatureSpec, LabelSpec
from pytorch_kaldi_snn.data.loading import load_labels
from pytorch_kaldi_snn.decoding.kaldi_bridge import decode_and_score
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.features import FeatureConf, compute_features, read_features
from pytorch_kaldi_snn.features.audio import check_wav_table
from pytorch_kaldi_snn.gmm.labels import read_lab_folder
from pytorch_kaldi_snn.io import read_int_vectors, read_matrices, write_mat_ark
from pytorch_kaldi_snn.scoring.lm_sweep import builtin_hypotheses, kaldi_hypotheses
from pytorch_kaldi_snn.trained import moved_feature
from pytorch_kaldi_snn.transcribe import input_dir
from repo_paths import KALDI_GOLDEN as GOLDEN, KALDI_GOLDEN_DECODE as DECODE

RATE = 16000
CONF = FeatureConf("fbank", {"dither": "0", "num-mel-bins": "40"})
SAMPLES = (np.sin(np.arange(8000) / 7.0) * 8000).astype(np.int16)  # half a second
FEA_OPTS = "apply-cmvn --utt2spk=ark:{d}/utt2spk ark:{d}/cmvn_speaker.ark ark:- ark:- | add-deltas ark:- ark:- |"


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, where a command smuggled in a name would leave its marker M."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _no_marker(root: Path) -> None:
    assert not list(root.rglob("M")), "a name ran as a shell command"


def _transcribe_feats(work: Path, *wavs: Path) -> dict[str, np.ndarray]:
    """What transcribe does with wavs on its command line, up to the features."""
    work.mkdir()
    data, _ = input_dir(work, wavs, None, None, RATE)
    return dict(compute_features(data / "wav.scp", CONF))


def _reference(tmp_path: Path) -> np.ndarray:
    plain = tmp_path / "plain" / "plain.wav"
    plain.parent.mkdir()
    soundfile.write(plain, SAMPLES, RATE, subtype="PCM_16")
    return _transcribe_feats(tmp_path / "ref", plain)["plain"]


@pytest.mark.parametrize("name, utt", [("x;touch${IFS}M;#|", "x;touch${IFS}M;#|"),
                                       ("clip.wav:44", "clip")])
def test_a_wav_named_as_a_command_or_offset_is_a_file(name: str, utt: str, cwd: Path) -> None:
    """Kaldi runs a wav.scp entry ending in '|' and reads 'file:44' at byte 44: a file name given
    to transcribe is neither. (A name with spaces is refused, below.)"""
    wav = cwd / name
    soundfile.write(wav, SAMPLES, RATE, format="WAV", subtype="PCM_16")
    feats = _transcribe_feats(cwd / "work", wav)
    _no_marker(cwd)
    assert list(feats) == [utt]
    np.testing.assert_array_equal(feats[utt], _reference(cwd))


def test_a_wav_name_with_spaces_is_refused_by_name(cwd: Path) -> None:
    wav = cwd / "my take;touch M;#|.wav"
    soundfile.write(wav, SAMPLES, RATE, subtype="PCM_16")
    with pytest.raises(DataError) as err:
        _transcribe_feats(cwd / "work", wav)
    assert str(err.value) == (f"{wav}: the file name (without extension) is the utterance id, and "
                              "Kaldi's tables cannot hold spaces or control characters in it; "
                              "rename the file or give --wav-scp")
    _no_marker(cwd)


def test_a_folder_with_spaces_and_shell_characters_holds_wavs(cwd: Path) -> None:
    wav = cwd / "my recordings $(touch M)" / "a.wav"
    wav.parent.mkdir()
    soundfile.write(wav, SAMPLES, RATE, subtype="PCM_16")
    feats = _transcribe_feats(cwd / "work", wav)
    _no_marker(cwd)
    np.testing.assert_array_equal(feats["a"], _reference(cwd))


def _write(wav: Path, case: str) -> None:
    """One careless user's file per case."""
    as_float = SAMPLES / 32768.0
    if case == "zero samples":
        soundfile.write(wav, np.zeros(0, np.int16), RATE, subtype="PCM_16")
    elif case in ("24-bit", "float32", "flac"):
        subtype = {"24-bit": "PCM_24", "float32": "FLOAT", "flac": "PCM_16"}[case]
        soundfile.write(wav, as_float, RATE, subtype=subtype, format="FLAC" if case == "flac" else "WAV")
    elif case == "NaN":
        bad = as_float.astype(np.float32)
        bad[5] = np.nan
        soundfile.write(wav, bad, RATE, subtype="FLOAT")
    elif case == "text":
        wav.write_text("utt1 hello\n")
    elif case == "0 bytes":
        wav.write_bytes(b"")
    elif case == "folder":
        wav.mkdir()
    elif case == "stereo":
        soundfile.write(wav, np.stack([SAMPLES, SAMPLES], 1), RATE, subtype="PCM_16")
    elif case == "8 kHz":
        soundfile.write(wav, SAMPLES, 8000, subtype="PCM_16")


def _convert(wav: Path) -> str:
    return f"; convert it, e.g. sox {wav} -r 16000 -c 1 -b 16 out.wav"


BAD_WAVS = {  # case -> the reason after "<file>: "
    "zero samples": "empty utterance: 0 samples, shorter than one frame",
    "NaN": "1 NaN/Inf samples (first at sample 5)",
    "text": "not an audio file libsndfile reads (format not recognised)",
    "0 bytes": "empty file (0 bytes)",
    "folder": "a folder, not an audio file",
    "missing": "no such file",
    "stereo": "2 channels, the features need mono{convert}",
    "8 kHz": "sample rate 8000 Hz, the features need 16000 Hz{convert}",
}


@pytest.mark.parametrize("case", BAD_WAVS)
def test_a_bad_wav_is_one_line_naming_it_and_the_reason(case: str, cwd: Path) -> None:
    wav = cwd / "take1.wav"
    _write(wav, case)
    with pytest.raises(DataError) as err:
        _transcribe_feats(cwd / "work", wav)
    assert str(err.value) == f"{wav}: " + BAD_WAVS[case].format(convert=_convert(wav))


@pytest.mark.parametrize("case", ["24-bit", "float32", "flac"])
def test_what_soundfile_reads_is_converted(case: str, cwd: Path) -> None:
    """The same samples as 24-bit, float or FLAC give the 16-bit file's features exactly."""
    wav = cwd / f"take1.{'flac' if case == 'flac' else 'wav'}"
    _write(wav, case)
    np.testing.assert_array_equal(_transcribe_feats(cwd / "work", wav)["take1"], _reference(cwd))


def test_a_users_wav_scp_names_the_file_kaldi_cannot_read(cwd: Path) -> None:
    """wav.scp lines are the user's: pipes stay Kaldi's (trusted); a plain file Kaldi's reader
    would fail on is named with the reason, not as a failed read of the table."""
    wav = cwd / "take1.wav"
    _write(wav, "24-bit")
    table = {"u0": "sox in.flac -t wav - |", "u1": str(wav)}
    with pytest.raises(DataError) as err:
        check_wav_table(table, "my/wav.scp", RATE)
    assert str(err.value) == (f"my/wav.scp: utterance u1: {wav}: WAV PCM_24 audio, Kaldi's wave "
                              f"reader takes only 16-bit PCM wav{_convert(wav)}")


def _data_dir(folder: Path, feats: dict[str, np.ndarray]) -> Path:
    """A prepared set as evaluate reads it: feats.scp, utt2spk, cmvn_speaker.ark."""
    folder.mkdir()
    write_mat_ark(folder / "feats.ark", folder / "feats.scp", feats.items())
    shutil.copyfile(GOLDEN / "utt2spk", folder / "utt2spk")
    shutil.copyfile(GOLDEN / "cmvn_spk_mfcc.ark", folder / "cmvn_speaker.ark")
    return folder


@pytest.mark.parametrize("path", ["kaldi", "builtin"])
@pytest.mark.parametrize("name", ["d$(touch M)", "my data", "-lead;touch M;#"])
def test_a_data_dir_named_as_a_command_runs_nothing(name: str, path: str, cwd: Path,
                                                    request: pytest.FixtureRequest,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate --data DIR puts DIR into the test set's fea_opts pipe (run by bash on the Kaldi
    path, parsed on the built-in one): the set's features are read, nothing else runs."""
    env = request.getfixturevalue(f"{path}_env")
    for key in ("PATH", "LD_LIBRARY_PATH"):
        monkeypatch.setenv(key, env.get(key, ""))
    mfcc = dict(read_matrices(GOLDEN / "mfcc.ark"))
    original = _data_dir(cwd / "test", mfcc)
    spec = FeatureSpec("mfcc", original / "feats.scp", FEA_OPTS.format(d=original), 0, 0)
    log = logging.getLogger("test")
    expected = dict(read_features(str(spec.scp), spec.opts, log))
    moved = moved_feature(spec, _data_dir(cwd / name, mfcc).relative_to(cwd))
    got = dict(read_features(str(moved.scp), moved.opts, log))
    _no_marker(cwd)
    assert list(got) == list(expected) == list(mfcc)
    for utt, feats in expected.items():
        np.testing.assert_array_equal(got[utt], feats)


def test_a_relative_gz_starting_with_dash_is_a_file(cwd: Path) -> None:
    """``gunzip -c -lead/ali.1.gz`` would read '-lead/...' as options."""
    (cwd / "-lead").mkdir()
    shutil.copyfile(DECODE / "align/ali.1.gz", cwd / "-lead/ali.1.gz")
    got = dict(read_int_vectors("-lead/ali.1.gz"))
    expected = dict(read_int_vectors(DECODE / "align/ali.1.gz"))
    assert list(got) == list(expected) and got
    for utt, ali in expected.items():
        np.testing.assert_array_equal(got[utt], ali)


# Kaldi's option parser: '--ali/final.mdl' as ali-to-pdf's first argument was an unknown option
# (ali-to-pdf printed its usage), and '--config=x/...' anywhere reads x/... as a config file
DASHED = ["-lead", "--ali", "--help", "--config=x"]


@pytest.mark.parametrize("name", DASHED)
def test_kaldi_labels_from_a_relative_folder_starting_with_dash(name: str, cwd: Path, kaldi_env: dict,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = cwd / name
    folder.mkdir()
    shutil.copyfile(DECODE / "align/ali.1.gz", folder / "ali.1.gz")
    shutil.copyfile(DECODE / "model/final.mdl", folder / "final.mdl")
    (folder / "num_jobs").write_text("1\n")
    monkeypatch.setenv("PATH", kaldi_env["PATH"])
    monkeypatch.setenv("LD_LIBRARY_PATH", kaldi_env.get("LD_LIBRARY_PATH", ""))
    spec = LabelSpec("lab_cd", Path(name), "ali-to-pdf", "auto", Path("data"), Path("graph"))
    kaldi = load_labels(spec, logging.getLogger("test"))
    native = read_lab_folder(folder, "ali-to-pdf")
    assert kaldi.keys() == native.keys() and kaldi
    for utt, labels in native.items():
        np.testing.assert_array_equal(kaldi[utt], labels)


@pytest.mark.parametrize("name", DASHED)
def test_kaldi_decoding_with_a_model_and_graph_in_folders_starting_with_dash(
        name: str, cwd: Path, kaldi_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """latgen-faster-mapped gets the lab_folder's final.mdl and lab_graph's HCLG.fst as its
    first positional arguments: with folders named like options it decodes as with any other."""
    for key in ("PATH", "LD_LIBRARY_PATH"):
        monkeypatch.setenv(key, kaldi_env.get(key, ""))
    shutil.copytree(DECODE / "model", cwd / name)
    shutil.copytree(DECODE / "graph", cwd / f"{name}-graph")
    loglikes = cwd / "two.ark"
    write_mat_ark(loglikes, None, list(read_matrices(DECODE / "decode/loglikes.ark"))[:2])
    run = decode_and_score(loglikes, Path(f"{name}-graph"), Path(name) / "final.mdl", cwd / "out",
                           use_kaldi=True)
    expected = (DECODE / "decode/hyp.txt").read_text().splitlines()[:2]
    assert run.decoder == "kaldi"
    assert (cwd / "out/hyp.txt").read_text().splitlines() == expected


def test_kaldi_rescoring_of_lattices_in_an_out_folder_starting_with_dash(cwd: Path, kaldi_env: dict) -> None:
    """score.sh's pipe on ``<out_folder>/decode_test/lat.1.gz`` with out_folder ``-lead``."""
    (cwd / "-lead").mkdir()
    shutil.copyfile(DECODE / "decode/lat.1.gz", cwd / "-lead/lat.1.gz")
    lattices, words = [Path("-lead/lat.1.gz")], DECODE / "graph/words.txt"
    theirs = kaldi_hypotheses(lattices, words, kaldi_env["PATH"])(10, 0.0)
    assert theirs == builtin_hypotheses(lattices, words)(10, 0.0) and theirs
    _no_marker(cwd)
