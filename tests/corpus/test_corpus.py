"""Tests of the synthetic corpus generator on the tiny size (a few seconds per corpus).

The generator renders each speaker in a process whose eSpeak NG has never run, whatever the
pytest process did with the engine before (see corpus/espeak.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import kaldi_native_fbank as knf
import numpy as np
import pytest
import soundfile

from pytorch_kaldi_snn.corpus import alignment, generate
from pytorch_kaldi_snn.corpus.alignment import read_phone_alignment
from pytorch_kaldi_snn.corpus.augment import UtteranceAugment
from pytorch_kaldi_snn.corpus.espeak import Voice
from pytorch_kaldi_snn.corpus.phones import PHONES, to_timit
from pytorch_kaldi_snn.corpus.segments import Segment, espeak_segments
from pytorch_kaldi_snn.corpus.speakers import SpeakerSpec
from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.io.ownership import mark

SETS = ("train", "dev", "test")
TINY = generate.SIZES["tiny"]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> Dict[str, Path]:
    """Tiny corpora: seed 0 with one worker, seed 0 with two, seed 1."""
    root = tmp_path_factory.mktemp("corpus")
    runs = {"a": (0, 1), "b": (0, 2), "c": (1, 2)}
    for name, (seed, nj) in runs.items():
        generate.generate_corpus(root / name, TINY, seed=seed, nj=nj)
    return {name: root / name for name in runs}


def table(path: Path) -> Dict[str, str]:
    return dict(line.split(" ", 1) for line in path.read_text().splitlines())


def wav_samples(data_dir: Path) -> Dict[str, np.ndarray]:
    return {utt: soundfile.read(wav, dtype="int16")[0]
            for utt, wav in table(data_dir / "wav.scp").items()}


def test_same_seed_gives_identical_corpus_for_any_nj(corpora):
    a, b = corpora["a"], corpora["b"]
    for name in ("phones.txt", "corpus.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for s in SETS:
        for name in generate.KALDI_FILES:
            if name != "wav.scp":  # holds absolute paths
                assert (a / s / name).read_bytes() == (b / s / name).read_bytes(), (s, name)
        for wav in sorted((a / s / "wav").iterdir()):
            assert wav.read_bytes() == (b / s / "wav" / wav.name).read_bytes(), wav.name


def test_a_process_that_read_words_with_espeak_generates_the_same_corpus(corpora, tmp_path):
    """eSpeak's G2P changes the engine's state (a forked synthesizer then gave no phones for
    'a'); the generator's workers never inherit it."""
    from pytorch_kaldi_snn.corpus import espeak
    assert espeak.engine().phonemes("a") and espeak.engine().word_phonemes("the apple")
    assert espeak.has_been_used()
    generate.generate_corpus(tmp_path / "a", TINY, seed=0, nj=1)
    for s in SETS:
        for wav in sorted((corpora["a"] / s / "wav").iterdir()):
            assert wav.read_bytes() == (tmp_path / "a" / s / "wav" / wav.name).read_bytes()


def test_other_seed_gives_other_corpus(corpora):
    a, c = corpora["a"], corpora["c"]
    assert (a / "train" / "text").read_text() != (c / "train" / "text").read_text()
    assert (a / "train" / "spk2info").read_text() != (c / "train" / "spk2info").read_text()


def test_breathy_variant_renders_identically_in_two_processes(tmp_path):
    """Variants with engine noise (f2) are reproducible: the generator reseeds it."""
    spec = SpeakerSpec("ftr000", "f", Voice("f2", 170, 50, 50), 441, 100.0, 7000.0, 0.0)
    aug = UtteranceAugment(0.1, 0.1, "none", 20.0, -3.0)
    plan = generate.UttPlan("ftr000_00001", "The quick brown fox jumps over it", 7, aug, ())
    dirs = [tmp_path / "x", tmp_path / "y"]
    for d in dirs:
        d.mkdir()
    jobs = [generate.SpeakerJob(spec, (plan,), str(d)) for d in dirs]
    first, second = generate.render(jobs, nj=2)
    assert first == second
    wavs = [(d / "ftr000_00001.wav").read_bytes() for d in dirs]
    assert wavs[0] == wavs[1]


def test_frame_counts_follow_kaldi_framing(corpora):
    for s in SETS:
        d = corpora["a"] / s
        frames = {u: int(n) for u, n in table(d / "utt2num_frames").items()}
        ali = read_phone_alignment(d)
        for utt, samples in wav_samples(d).items():
            assert frames[utt] == 1 + (samples.size - 400) // 160
            assert ali[utt].size == frames[utt]
    utt, samples = next(iter(wav_samples(corpora["a"] / "test").items()))
    fbank = knf.OnlineFbank(knf.FbankOptions())  # snip_edges=True, 25/10 ms: Kaldi's defaults
    fbank.accept_waveform(16000, (samples / 32768.0).tolist())
    fbank.input_finished()
    assert fbank.num_frames_ready == frames_of(corpora["a"] / "test", utt)


def frames_of(data_dir: Path, utt: str) -> int:
    return int(table(data_dir / "utt2num_frames")[utt])


def collapse(labels: List[str]) -> List[str]:
    return [p for i, p in enumerate(labels) if i == 0 or labels[i - 1] != p]


def test_every_reference_phone_gets_a_frame(corpora):
    """Collapsing the frame labels gives back the whole reference: no phone lost a frame."""
    for s in SETS:
        d = corpora["a"] / s
        refs = table(d / "text.phn")
        for utt, frames in table(d / "ali.txt").items():
            assert collapse(frames.split()) == refs[utt].split(), utt


def test_ctm_and_frame_labels_agree(corpora, tmp_path):
    src = corpora["a"] / "dev"
    ctm_only = tmp_path / "dev"
    ctm_only.mkdir()
    for name in ("phones.ctm", "wav.scp"):  # no ali.txt, no utt2num_frames: wavs give counts
        shutil.copy(src / name, ctm_only / name)
    from_ali, from_ctm = read_phone_alignment(src), read_phone_alignment(ctm_only)
    assert from_ali.keys() == from_ctm.keys()
    for utt in from_ali:
        np.testing.assert_array_equal(from_ali[utt], from_ctm[utt])


def test_labels_are_in_phone_inventory(corpora):
    root = corpora["a"]
    assert [line.split() for line in (root / "phones.txt").read_text().splitlines()] == [
        [p, str(i)] for i, p in enumerate(PHONES)
    ]
    seen = set()
    for s in SETS:
        for line in (root / s / "text.phn").read_text().splitlines():
            seen.update(line.split()[1:])
        seen.update(line.split()[4] for line in (root / s / "phones.ctm").read_text().splitlines())
    assert seen <= set(PHONES) and "sil" in seen


def test_sets_are_disjoint_in_speakers_and_sentences(corpora):
    root = corpora["a"]
    speakers = {s: set(table(root / s / "spk2gender")) for s in SETS}
    sentences = {s: set(table(root / s / "text").values()) for s in SETS}
    for i, x in enumerate(SETS):
        for y in SETS[i + 1:]:
            assert not speakers[x] & speakers[y]
            assert not sentences[x] & sentences[y]
    assert len(speakers["train"]) == TINY.train
    assert len(table(root / "train" / "text")) == TINY.train * TINY.utts_per_speaker


def test_kaldi_tables_are_sorted_and_consistent(corpora):
    d = corpora["a"] / "train"
    utt2spk = table(d / "utt2spk")
    assert list(utt2spk) == sorted(utt2spk)
    spk2utt = {spk: utts.split() for spk, utts in table(d / "spk2utt").items()}
    assert {u: s for s, us in spk2utt.items() for u in us} == utt2spk
    for name in ("text", "utt2dur", "utt2num_frames", "text.phn", "ali.txt", "wav.scp"):
        assert list(table(d / name)) == list(utt2spk), name
    assert set(table(d / "spk2gender").values()) <= {"m", "f"}


def test_espeak_segments_apply_the_label_fixes():
    rate = 1000  # 10 ms = 10 samples keeps the arithmetic readable
    samples = np.ones(200, dtype=np.int16)
    samples[90:120] = 0  # the dark /l/ at 100 is silent; the vowel's voiced part is 20..90
    samples[160:170] = 0  # a 10 ms stop closure before the /d/ event
    events = [(0, "h"), (20, "'oU"), (100, "l"), (120, "'A@"), (170, "d"), (200, "_:")]
    got = espeak_segments(samples, events, rate)
    # /l/ takes max(35% of 70, 25 ms) = 25 samples of the vowel; A@ splits 60/40 into aa + r.
    assert got == [
        Segment(0, 20, "hh"), Segment(20, 65, "ow"), Segment(65, 90, "l"), Segment(90, 120, "sil"),
        Segment(120, 150, "aa"), Segment(150, 160, "r"), Segment(160, 170, "sil"),
        Segment(170, 200, "d"),
    ]


def test_linking_r_drops_the_r_half():
    samples = np.ones(100, dtype=np.int16)
    got = espeak_segments(samples, [(0, "'e@"), (50, "r-"), (70, "I")], 1000)
    assert [s.label for s in got] == ["eh", "r", "ih"] and got[0] == Segment(0, 50, "eh")


def test_ensure_frames_merges_a_phone_without_frame():
    segs = [Segment(0, 400, "sil"), Segment(400, 410, "t"), Segment(410, 1000, "sil")]
    assert alignment.ensure_frames(segs, 1000, 16000) == [Segment(0, 1000, "sil")]


def test_run_labels_collapses_runs_and_keeps_repeats_apart():
    """A frame alignment as its phone sequence: one label per run, a phone that comes back after
    another phone counted again, no frames no phones."""
    frames = np.array([0, 0, 7, 7, 7, 3, 7, 7, 0], dtype=np.int64)
    assert alignment.run_labels(frames).tolist() == [0, 7, 3, 7, 0]
    assert alignment.run_labels(np.array([5])).tolist() == [5]
    assert alignment.run_labels(np.zeros(0, np.int64)).tolist() == []


def test_unmapped_espeak_symbol_is_named():
    with pytest.raises(DataError, match="'Q9'"):
        to_timit("Q9")
    assert to_timit(",O@") == ("aa", "r") and to_timit("_:") == ("sil",)


def test_phone_alignment_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="neither ali.txt nor phones.ctm"):
        read_phone_alignment(tmp_path)
    (tmp_path / "ali.txt").write_text("u1 sil ax sil\n")
    with pytest.raises(DataError, match="utterance u1: phone 'ax'"):
        read_phone_alignment(tmp_path)


def test_a_ctm_phone_past_the_end_of_its_audio_is_refused_by_line(tmp_path):
    """A ctm of longer audio (a 1.2 s recording's phones on 100 frames, 1.015 s): its last
    phones would label no frame and vanish from the reference. 20 ms past the end is accepted."""
    (tmp_path / "utt2num_frames").write_text("u1 100\n")
    ctm = tmp_path / "phones.ctm"
    lines = ["u1 1 0.00 0.50 sil", "u1 1 0.50 0.53 ah", "u1 1 1.03 0.10 t"]
    ctm.write_text("\n".join(lines) + "\n")
    assert len(read_phone_alignment(tmp_path)["u1"]) == 100
    ctm.write_text("\n".join([*lines, "u1 1 1.035 0.10 s", "u1 1 1.20 0.10 iy"]) + "\n")
    with pytest.raises(DataError) as refused:
        read_phone_alignment(tmp_path)
    assert str(refused.value) == (
        f"{ctm}: utterance u1: line 4: phone 's' starts at 1.035 s, after the end of its audio "
        "(1.015 s, 100 frames; up to 20 ms past it is accepted)")


def test_cli_rejects_bad_input_in_one_line(tmp_path, capsys):
    assert generate.main(["--out", str(tmp_path), "--size", "tiny", "--nj", "0"]) == 2
    assert capsys.readouterr().err.strip() == "generate: --nj must be at least 1, got 0"
    (tmp_path / "train").mkdir()
    assert generate.main(["--out", str(tmp_path), "--size", "tiny"]) == 2
    assert "exists; remove it or pass --overwrite" in capsys.readouterr().err


def test_overwrite_replaces_only_the_generators_own_sets(tmp_path, capsys):
    """--overwrite over a folder of the user's (named like a set, or a link to one) is refused
    by name before any set is removed; the generator's own earlier output is replaced."""
    one = ["--out", str(tmp_path), "--size", "tiny", "--train-speakers", "0", "--dev-speakers",
           "0", "--test-speakers", "1", "--utts-per-speaker", "1"]
    assert generate.main(one) == 0
    (tmp_path / "test" / "stale").write_text("left by the earlier corpus")
    theirs = tmp_path / "train"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("mine")
    capsys.readouterr()
    assert generate.main([*one, "--train-speakers", "1", "--overwrite"]) == 2
    assert capsys.readouterr().err == (
        f"generate: {theirs} was not made by the corpus generator (no .pytorch_kaldi_snn in "
        "it); --overwrite removes only the generator's own sets\n")
    assert (theirs / "thesis.tex").read_text() == "mine"
    assert (tmp_path / "test" / "stale").is_file()  # nothing removed before the refusal
    shutil.rmtree(theirs)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes").write_text("mine")
    (tmp_path / "dev").symlink_to(elsewhere)
    assert generate.main([*one, "--overwrite"]) == 2
    assert capsys.readouterr().err.startswith(f"generate: {tmp_path / 'dev'} was not made by")
    assert (elsewhere / "notes").read_text() == "mine"
    (tmp_path / "dev").unlink()
    mark(tmp_path / "dev", "prepare_set, from /data/mine")  # a set of prepare_set's
    assert generate.main([*one, "--overwrite"]) == 2
    assert capsys.readouterr().err == (
        f"generate: {tmp_path / 'dev'} was not made by the corpus generator (its "
        ".pytorch_kaldi_snn says prepare_set made it); --overwrite removes only the generator's "
        "own sets\n")
    shutil.rmtree(tmp_path / "dev")
    assert generate.main([*one, "--overwrite"]) == 0
    assert not (tmp_path / "test" / "stale").exists()
    assert (tmp_path / "test" / ".pytorch_kaldi_snn").is_file()
    assert len(table(tmp_path / "test" / "wav.scp")) == 1


def test_a_users_phones_txt_in_the_out_folder_is_never_overwritten(tmp_path, capsys):
    """A Kaldi-style folder of the user's with its own phones.txt (and no generated set) is
    refused before anything is written, with or without --overwrite."""
    (tmp_path / "phones.txt").write_text("<eps> 0\nmine 1\n")
    args = ["--out", str(tmp_path), "--size", "tiny", "--train-speakers", "0", "--dev-speakers",
            "0", "--test-speakers", "1", "--utts-per-speaker", "1"]
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert generate.main(args + extra) == 2
        assert capsys.readouterr().err == (
            f"generate: {tmp_path / 'phones.txt'} exists and no set of the corpus generator is "
            "beside it; remove it or name a new or empty folder for --out\n")
        assert (tmp_path / "phones.txt").read_text() == "<eps> 0\nmine 1\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["phones.txt"]


def test_explicit_counts_override_the_preset():
    args = generate._parser().parse_args(["--out", "x", "--size", "timit", "--dev-speakers", "5"])
    assert generate.size_from_args(args) == generate.CorpusSize(462, 5, 24, 8)
    args = generate._parser().parse_args(["--out", "x", "--utts-per-speaker", "0"])
    with pytest.raises(ConfigError, match="--utts-per-speaker must be at least 1, got 0"):
        generate.size_from_args(args)
