"""Kaldi table readers/writers and data dirs, checked against files written by Kaldi's binaries."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import kaldi_native_io as kio
import kaldiio
import numpy as np
import pytest

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io import (
    as_rspecifier,
    read_double_matrices,
    read_int_vectors,
    read_kaldi_map,
    read_matrices,
    write_double_matrices,
    write_int_vectors,
    write_kaldi_map,
    write_mat_ark,
)
from pytorch_kaldi_snn.io.data_dir import DataDir
from repo_paths import FIXTURES as DATA

GOLDEN = DATA / "kaldi_golden"
DECODE_TEST = DATA / "kaldi_golden_decode" / "test"


@pytest.fixture
def golden(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in kaldi_golden: its scp files name arks relative to that folder, as Kaldi wrote them."""
    monkeypatch.chdir(GOLDEN)
    return GOLDEN


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


def test_binary_ark_equals_kaldi_text_copy() -> None:
    binary = dict(read_matrices(GOLDEN / "fbank40.ark"))
    text = dict(read_matrices(f"ark,t:{GOLDEN / 'fbank40.txt'}"))
    assert [m.shape for m in binary.values()] == [(281, 40), (264, 40), (362, 40)]
    assert all(m.dtype == np.float32 for m in binary.values())
    # copy-feats prints text with ~7 significant digits: 5.7e-6 is the rounding of values ~20.
    assert _max_diff(binary, text) <= 6e-6


def test_returned_arrays_are_copies_not_reader_buffers() -> None:
    mats = list(read_matrices(GOLDEN / "fbank40.ark"))
    again = dict(read_matrices(GOLDEN / "fbank40.ark"))
    assert all(np.array_equal(m, again[k]) for k, m in mats)


def test_compressed_matrices_decode_exactly_as_kaldi() -> None:
    ours = dict(read_matrices(DECODE_TEST / "raw_mfcc_compressed.ark"))
    kaldi = dict(read_matrices(DECODE_TEST / "raw_mfcc.ark"))
    assert _max_diff(ours, kaldi) == 0.0
    # kaldiio 2.18.1 is the inexact candidate (measured 2.29e-5): keep the claim honest.
    theirs = dict(kaldiio.load_ark(str(DECODE_TEST / "raw_mfcc_compressed.ark")))
    assert 1e-6 < _max_diff(theirs, kaldi) < 5e-5


def test_compressed_scp_with_offsets(golden: Path) -> None:
    ours = dict(read_matrices("fbank40_compressed.scp"))
    plain = dict(read_matrices("fbank40.ark"))
    # Kaldi's default CM compression (kSpeechFeature) quantises to within 0.14 here.
    assert _max_diff(ours, plain) < 0.14
    assert _max_diff(ours, dict(kaldiio.load_scp("fbank40_compressed.scp"))) < 1e-5


def test_scp_row_and_column_ranges(golden: Path, tmp_path: Path) -> None:
    line = read_kaldi_map("fbank40_compressed.scp")["spkA_u2"]  # fbank40_compressed.ark:11597
    scp = tmp_path / "ranges.scp"
    scp.write_text(f"rows {line}[10:19]\nboth {line}[0:4,5:9]\n")
    full = dict(read_matrices("fbank40_compressed.scp"))["spkA_u2"]
    ranged = dict(read_matrices(scp))
    np.testing.assert_array_equal(ranged["rows"], full[10:20])
    np.testing.assert_array_equal(ranged["both"], full[0:5, 5:10])


def test_int_vectors_binary_gzip_and_text_agree() -> None:
    text = dict(read_int_vectors(GOLDEN / "ali.txt"))
    binary = dict(read_int_vectors(GOLDEN / "ali_int.ark"))
    gzipped = dict(read_int_vectors(GOLDEN / "ali.1.gz"))
    assert list(text) == list(binary) == list(gzipped) == ["spkA_u1", "spkA_u2", "spkB_u3"]
    for key, labels in text.items():
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(labels, np.arange(len(labels)) % 7)  # README: frame mod 7
        np.testing.assert_array_equal(binary[key], labels)
        np.testing.assert_array_equal(gzipped[key], labels)
    assert [len(v) for v in text.values()] == [281, 264, 362]


def test_gzipped_float_ark(tmp_path: Path) -> None:
    gz = tmp_path / "fbank40.ark.gz"
    gz.write_bytes(gzip.compress((GOLDEN / "fbank40.ark").read_bytes()))
    assert _max_diff(dict(read_matrices(gz)), dict(read_matrices(GOLDEN / "fbank40.ark"))) == 0.0


def test_gzipped_text_int_vectors(tmp_path: Path) -> None:
    gz = tmp_path / "ali.txt.gz"
    gz.write_bytes(gzip.compress((GOLDEN / "ali.txt").read_bytes()))
    got = dict(read_int_vectors(gz))
    for key, labels in read_int_vectors(GOLDEN / "ali_int.ark"):
        np.testing.assert_array_equal(got[key], labels)


def test_training_alignment_from_gzip_pipe_rspecifier() -> None:
    ali = GOLDEN.parent / "kaldi_golden_decode" / "align" / "ali.1.gz"
    tids = dict(read_int_vectors(f"ark:gunzip -c {ali} |"))
    assert len(tids) == 49 and "f4_u023" not in tids
    first5 = dict(read_int_vectors(ali.parent / "train_ali_tid.first5.txt"))
    for key, labels in first5.items():
        np.testing.assert_array_equal(tids[key], labels)


def test_double_matrices_cmvn_stats() -> None:
    stats = dict(read_double_matrices(DECODE_TEST / "cmvn.ark"))
    assert list(stats) == ["f2", "f4", "kl2", "m3", "m7"]
    assert all(s.shape == (2, 14) and s.dtype == np.float64 for s in stats.values())
    frames = read_kaldi_map(DECODE_TEST / "utt2num_frames")
    spk2utt = read_kaldi_map(DECODE_TEST / "spk2utt")
    for spk, utts in spk2utt.items():
        assert stats[spk][0, 13] == sum(int(frames[u]) for u in utts.split())


def test_failing_pipe_raises() -> None:
    with pytest.raises(DataError, match="read failed"):
        list(read_matrices("ark:false |"))
    # A pipe that writes good data and then fails must also raise, after the good items.
    with pytest.raises(DataError, match="after spkB_u3"):
        list(read_matrices(f"ark:cat {GOLDEN / 'fbank40.ark'}; exit 3 |"))


def test_missing_and_corrupt_inputs_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        list(read_matrices(tmp_path / "absent.ark"))
    truncated = tmp_path / "truncated.ark"
    truncated.write_bytes((GOLDEN / "fbank40.ark").read_bytes()[:60000])
    with pytest.raises(DataError, match="after spkA_u1"):
        list(read_matrices(truncated))


def test_as_rspecifier_forms(tmp_path: Path) -> None:
    for name in ("a.ark", "a.scp", "a.gz"):
        (tmp_path / name).touch()
    assert as_rspecifier(tmp_path / "a.ark") == f"ark:{tmp_path / 'a.ark'}"
    assert as_rspecifier(tmp_path / "a.scp") == f"scp:{tmp_path / 'a.scp'}"
    assert as_rspecifier(tmp_path / "a.gz") == f"ark:gunzip -c -- {tmp_path / 'a.gz'} |"
    assert as_rspecifier("ark,s,cs:x.ark") == "ark,s,cs:x.ark"
    assert as_rspecifier("cat x.ark |") == "ark:cat x.ark |"


def test_float_writer_is_byte_identical_to_kaldi(tmp_path: Path) -> None:
    mats = dict(read_matrices(GOLDEN / "fbank40.ark"))
    assert write_mat_ark(tmp_path / "f.ark", tmp_path / "f.scp", mats.items()) == 3
    assert (tmp_path / "f.ark").read_bytes() == (GOLDEN / "fbank40.ark").read_bytes()
    write_mat_ark(tmp_path / "c.ark", tmp_path / "c.scp", mats.items(), compress=True)
    assert (tmp_path / "c.ark").read_bytes() == (GOLDEN / "fbank40_compressed.ark").read_bytes()
    write_mat_ark(tmp_path / "f.txt", None, mats.items(), text=True)
    assert (tmp_path / "f.txt").read_bytes() == (GOLDEN / "fbank40.txt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ark", "c.scp", "f.ark", "f.scp", "f.txt"]


def test_writer_round_trips_through_both_pip_readers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mats = {f"utt{i}": rng.standard_normal((5 + i, 3)).astype(np.float32) for i in range(4)}
    write_mat_ark(tmp_path / "x.ark", tmp_path / "x.scp", mats.items())
    scp = read_kaldi_map(tmp_path / "x.scp")
    assert scp["utt0"] == f"{tmp_path / 'x.ark'}:5"  # the final ark name, not the temporary one
    for key, mat in kaldiio.load_scp(str(tmp_path / "x.scp")).items():
        np.testing.assert_array_equal(mat, mats[key])
    reader = kio.RandomAccessFloatMatrixReader(f"scp:{tmp_path / 'x.scp'}")
    for key, mat in mats.items():
        np.testing.assert_array_equal(np.array(reader[key]), mat)
    np.testing.assert_array_equal(dict(read_matrices(f"ark,t:{tmp_path / 'x.ark'}"))["utt3"], mats["utt3"])


def test_text_ark_with_scp_round_trip(tmp_path: Path) -> None:
    mats = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    write_mat_ark(tmp_path / "t.ark", tmp_path / "t.scp", mats.items(), text=True)
    assert (tmp_path / "t.ark").read_text().startswith("a  [")
    np.testing.assert_array_equal(dict(read_matrices(tmp_path / "t.scp"))["a"], mats["a"])


def test_int_vector_and_double_writers_round_trip(tmp_path: Path) -> None:
    ali = dict(read_int_vectors(GOLDEN / "ali.txt"))
    write_int_vectors(tmp_path / "ali.ark", ali.items())
    assert (tmp_path / "ali.ark").read_bytes() == (GOLDEN / "ali_int.ark").read_bytes()
    write_int_vectors(tmp_path / "ali.txt", ali.items(), text=True)
    assert (tmp_path / "ali.txt").read_bytes() == (GOLDEN / "ali.txt").read_bytes()
    for key, labels in kaldiio.load_ark(str(tmp_path / "ali.ark")):
        np.testing.assert_array_equal(labels, ali[key])
    stats = dict(read_double_matrices(GOLDEN / "cmvn_spk_mfcc.ark"))
    write_double_matrices(tmp_path / "cmvn.ark", tmp_path / "cmvn.scp", stats.items())
    assert (tmp_path / "cmvn.ark").read_bytes() == (GOLDEN / "cmvn_spk_mfcc.ark").read_bytes()
    for key, value in kaldiio.load_scp(str(tmp_path / "cmvn.scp")).items():
        np.testing.assert_array_equal(value, stats[key])


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "x.ark"
    target.write_bytes(b"old")

    def items():
        yield "a", np.zeros((2, 2), np.float32)
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        write_mat_ark(target, tmp_path / "x.scp", items())
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ark"]


def test_read_kaldi_map_files() -> None:
    assert read_kaldi_map(GOLDEN / "utt2spk") == {"spkA_u1": "spkA", "spkA_u2": "spkA", "spkB_u3": "spkB"}
    assert read_kaldi_map(GOLDEN / "wav.scp")["spkB_u3"] == "wav/spkB_u3.wav"
    assert read_kaldi_map(GOLDEN / "utt2num_frames")["spkA_u2"] == "264"
    text = read_kaldi_map(DECODE_TEST / "text")
    assert len(text) == 10 and " " in text["f2_u051"]


def test_read_kaldi_map_errors(tmp_path: Path) -> None:
    bad = tmp_path / "utt2spk"
    bad.write_text("u1 s1\nu1 s2\n")
    with pytest.raises(DataError, match=r"utt2spk: utterance u1: line 2: duplicate key"):
        read_kaldi_map(bad)
    bad.write_text("u1\n")
    with pytest.raises(DataError, match="has no value"):
        read_kaldi_map(bad)
    assert read_kaldi_map(bad, allow_empty=True) == {"u1": ""}


def test_write_kaldi_map_round_trip(tmp_path: Path) -> None:
    table = {"u1": 10, "u2": "a b"}
    write_kaldi_map(tmp_path / "m", table)
    assert read_kaldi_map(tmp_path / "m") == {"u1": "10", "u2": "a b"}


def _copy_data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for name in ("utt2spk", "spk2utt", "text", "utt2num_frames"):
        shutil.copy(DECODE_TEST / name, root / name)
    return root


def test_data_dir_loads_kaldi_test_set(tmp_path: Path) -> None:
    data = DataDir.load(_copy_data_dir(tmp_path))
    assert data.utts[0] == "f2_u051" and len(data.utts) == 10
    assert data.spk2utt["kl2"] == ["kl2_u054", "kl2_u059"]
    assert data.text is not None and data.wav is None and data.feats is None


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("utt2spk", "b s\na s\n", "utterance a: not sorted"),
        ("spk2utt", "s a\n", "utterance b: in utt2spk but not in spk2utt"),
        ("spk2utt", "s a b\nt b\n", "utterance b: lists b under speaker t"),
        ("text", "a hello\n", "text: utterance b: missing"),
        ("text", "a x\nb y\nc z\n", "text: utterance c: not in utt2spk"),
        ("cmvn.scp", "s x.ark:1\nt x.ark:2\n", "cmvn.scp: utterance t: not in spk2utt"),
    ],
)
def test_data_dir_validation(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / "utt2spk").write_text("a s\nb s\n")
    (tmp_path / "spk2utt").write_text("s a b\n")
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        DataDir.load(tmp_path)


def test_data_dir_missing_required_file(tmp_path: Path) -> None:
    (tmp_path / "utt2spk").write_text("a s\n")
    with pytest.raises(DataError, match="spk2utt: missing"):
        DataDir.load(tmp_path)
