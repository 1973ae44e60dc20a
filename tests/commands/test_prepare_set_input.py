"""prepare_set at the boundary with the user's machine: a ``--name`` that is a path or one of the
recipe's own sets, ``--overwrite`` of folders prepare_set did not make, an ``ali.txt`` that does
not fit its audio, a byte-order mark, a ``segments`` file. Every refusal is one exact line and
leaves every file as it was. Built-in path (no Kaldi binaries needed)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import soundfile

from pytorch_kaldi_snn import prepare_set as prepare_cli
from pytorch_kaldi_snn.gmm.align import main as align_main
from pytorch_kaldi_snn.gmm.labels import read_alignments
from pytorch_kaldi_snn.io import read_kaldi_map, read_matrices
from pytorch_kaldi_snn.io.segments import read_segment_waves, read_segments
from pytorch_kaldi_snn.io.tables import read_waves
from pytorch_kaldi_snn.io.ownership import MARKER

KALDI_FILES = ("wav.scp", "utt2spk", "spk2utt")
NAME_RULE = ("is not a set name: use one folder name of letters, digits, '_', '-' and '.' that "
             "starts with a letter or digit")


@pytest.fixture(autouse=True)
def _builtin_path(builtin_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", builtin_env["PATH"])
    monkeypatch.delenv("KALDI_ROOT", raising=False)


@pytest.fixture()
def recipe(tiny_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny recipe run at tmp/work/recipe, with victims beside and above it."""
    dest = tmp_path / "work" / "recipe"
    shutil.copytree(tiny_corpus, dest, symlinks=True)
    for victim in (dest / "victim", tmp_path / "work" / "victim", tmp_path / "victim"):
        victim.mkdir()
        (victim / "precious.txt").write_text("keep me\n")
    return dest


def _source(recipe: Path, dest: Path, *extra: str) -> Path:
    """A user's data dir: the recipe's test set (4 utterances) as plain Kaldi files."""
    dest.mkdir()
    for name in (*KALDI_FILES, *extra):
        shutil.copyfile(recipe / "data/test" / name, dest / name)
    return dest


def _tree(root: Path) -> Dict[str, str]:
    """Every file, folder and link under ``root`` with a digest of its bytes (or its target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = f"link -> {path.readlink()}"
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


def _refused(argv: list, expected: str, capsys) -> None:
    capsys.readouterr()
    assert prepare_cli.main(argv) == 2
    assert capsys.readouterr().err == f"prepare_set: {expected}\n"


@pytest.mark.parametrize("name", ["../victim", "../../victim", "../../../victim", "", ".", "..",
                                  "/tmp/victim", "a/../../victim", "-x", "train/..", " train"])
def test_a_name_that_is_a_path_is_refused_before_anything_is_touched(
        name: str, recipe: Path, tmp_path: Path, capsys) -> None:
    src = _source(recipe, tmp_path / "src", "text")
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), f"--name={name}", "--overwrite"],
             f"--name: {name!r} {NAME_RULE}", capsys)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2"])
def test_a_silence_probability_that_is_not_one_is_refused_before_anything_is_touched(
        value: str, recipe: Path, tmp_path: Path, capsys) -> None:
    """0 and 1 would make a cost -log(0) in the lexicon FST (a traceback before)."""
    src = _source(recipe, tmp_path / "src", "text")
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name=mine", "--sil-prob", value],
             f"--sil-prob {float(value):g} is not a probability strictly between 0 and 1", capsys)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", ["train", "dev", "test", "lang", "lang_test_bg", "mfcc", "ark",
                                  "phones.txt", "corpus.json"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_the_recipes_own_sets_and_folders_are_never_replaced(
        name: str, overwrite: bool, recipe: Path, tmp_path: Path, capsys) -> None:
    src = _source(recipe, tmp_path / "src", "text")
    before = _tree(tmp_path)
    argv = [str(src), "--dir", str(recipe), "--name", name] + ["--overwrite"] * overwrite
    # the corpus generator marks its sets too, as its own: they are not prepare_set's
    reason = (f"its {MARKER} says pytorch_kaldi_snn.corpus.generate made it"
              if name in ("train", "dev", "test") else f"no {MARKER} in it")
    _refused(argv, f"{recipe}/data/{name}: exists and was not made by prepare_set ({reason}); "
                   "choose another --name", capsys)
    assert _tree(tmp_path) == before


def test_a_phone_reference_needs_no_training_transcripts(recipe: Path, tmp_path: Path) -> None:
    """Only alignment from words reads the recipe's training text (lexicon phones, silences,
    pronunciation counts): a set given as phones imports without it."""
    (recipe / "data/train/text").unlink()
    src = _source(recipe, tmp_path / "src", "text")
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "mine"]) == 0
    assert (recipe / "data/mine/text").read_text() == (src / "text").read_text()


def test_overwrite_refuses_a_folder_without_the_marker(recipe: Path, tmp_path: Path,
                                                       capsys) -> None:
    """A user's own exp/mono_ali_mine (no marker) beside a set prepare_set made is kept."""
    src = _source(recipe, tmp_path / "src", "text")
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "mine"]) == 0
    theirs = recipe / "exp/mono_ali_mine"
    (theirs / MARKER).unlink()
    (theirs / "notes.txt").write_text("mine\n")
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name", "mine", "--overwrite"],
             f"{theirs}: exists and was not made by prepare_set (no {MARKER} in it); choose "
             "another --name", capsys)
    assert _tree(tmp_path) == before


def test_overwrite_refuses_a_link_even_to_a_marked_folder(recipe: Path, tmp_path: Path,
                                                          capsys) -> None:
    """An attacker's data/mine -> victim with a forged marker: the link and the victim stay."""
    victim = tmp_path / "victim"
    (victim / MARKER).write_text("forged\n")
    (recipe / "data/mine").symlink_to(victim, target_is_directory=True)
    src = _source(recipe, tmp_path / "src", "text")
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name", "mine", "--overwrite"],
             f"{recipe}/data/mine: exists and was not made by prepare_set (no {MARKER} in it); "
             "choose another --name", capsys)
    assert _tree(tmp_path) == before


def test_overwrite_replaces_only_what_prepare_set_made(recipe: Path, tmp_path: Path,
                                                       capsys) -> None:
    src = _source(recipe, tmp_path / "src", "text")
    argv = [str(src), "--dir", str(recipe), "--name", "mine"]
    assert prepare_cli.main(argv) == 0
    made = [recipe / "data/mine", recipe / "data/mfcc/mine", recipe / "exp/mono_ali_mine"]
    assert all((folder / MARKER).is_file() for folder in made)
    (recipe / "data/mine/stale.txt").write_text("from before\n")
    _refused(argv, f"{recipe}/data/mine: exists; choose another --name or pass --overwrite", capsys)
    others = {k: v for k, v in _tree(tmp_path).items() if "mine" not in k}
    assert prepare_cli.main(argv + ["--overwrite"]) == 0
    assert not (recipe / "data/mine/stale.txt").exists()
    assert all((folder / MARKER).is_file() for folder in made)
    assert {k: v for k, v in _tree(tmp_path).items() if "mine" not in k} == others


@pytest.mark.parametrize("table", ["wav.scp", "utt2spk", "spk2utt", "text", "ali.txt",
                                   "phones.ctm"])
def test_a_byte_order_mark_is_refused_by_name(table: str, recipe: Path, tmp_path: Path,
                                              capsys) -> None:
    """Saved by a Windows editor: the first key would hold an invisible U+FEFF."""
    src = _source(recipe, tmp_path / "src", table if table not in KALDI_FILES else "text")
    (src / table).write_bytes(b"\xef\xbb\xbf" + (src / table).read_bytes())
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/{table}: starts with a UTF-8 byte-order mark (BOM); save it without one",
             capsys)
    assert _tree(tmp_path) == before


def test_a_byte_order_mark_inside_a_table_is_refused_by_line(recipe: Path, tmp_path: Path,
                                                             capsys) -> None:
    """Two files joined with cat, the second saved with a BOM."""
    src = _source(recipe, tmp_path / "src", "text")
    lines = (src / "utt2spk").read_text().splitlines(keepends=True)
    (src / "utt2spk").write_text("".join(lines[:2]) + "\ufeff" + "".join(lines[2:]))
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/utt2spk: line 3: holds a UTF-8 byte-order mark (BOM, invisible; files joined "
             "with cat?); remove it", capsys)


def test_a_table_that_is_not_utf8_is_refused_by_line(recipe: Path, tmp_path: Path,
                                                     capsys) -> None:
    src = _source(recipe, tmp_path / "src", "text")
    data = (src / "text").read_bytes()
    at = data.index(b"\n") + 1
    (src / "text").write_bytes(data[:at] + b"caf\xe9 " + data[at:])
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/text: line 2: byte 0xe9 at offset {at + 3} is not UTF-8; save it as UTF-8",
             capsys)


# -- ali.txt against its audio ----------------------------------------------------------------

def _ali_source(recipe: Path, tmp_path: Path, change: Dict[str, int]) -> Path:
    """The test set with its ali.txt, utterance by utterance ``change[utt]`` frames longer
    (``sil`` appended) or shorter."""
    src = _source(recipe, tmp_path / "src", "ali.txt")
    lines = []
    for line in (src / "ali.txt").read_text().splitlines():
        utt, *phones = line.split()
        delta = change.get(utt, 0)
        phones = phones + ["sil"] * delta if delta >= 0 else phones[:delta]
        lines.append(" ".join([utt, *phones]))
    (src / "ali.txt").write_text("\n".join(lines) + "\n")
    return src


def _frames(recipe: Path, utt: str) -> int:
    return int(read_kaldi_map(recipe / "data/test/utt2num_frames")[utt])


@pytest.mark.parametrize("delta", [50, -50, 3])
def test_an_alignment_of_other_audio_is_refused(delta: int, recipe: Path, tmp_path: Path,
                                                capsys) -> None:
    utt = "mte000_05446"
    src = _ali_source(recipe, tmp_path, {utt: delta})
    before = _tree(tmp_path)
    n = _frames(recipe, utt)
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/ali.txt: utterance {utt}: {n + delta} frames, but its audio has {n} (25 ms "
             "frames every 10 ms; up to 2 apart is accepted)", capsys)
    assert _tree(tmp_path) == before


def test_an_alignment_of_other_audio_from_a_pipe_is_refused_and_nothing_stays(
        recipe: Path, tmp_path: Path, capsys) -> None:
    """Audio from ``cat wav |`` is measured by its features: refused then, the set removed."""
    utt = "mte000_05446"
    src = _ali_source(recipe, tmp_path, {utt: -50})
    wavs = read_kaldi_map(src / "wav.scp")
    (src / "wav.scp").write_text("".join(f"{u} cat {w} |\n" for u, w in wavs.items()))
    n = _frames(recipe, utt)
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/ali.txt: utterance {utt}: {n - 50} frames, but its audio has {n} (25 ms "
             "frames every 10 ms; up to 2 apart is accepted)", capsys)
    assert not any(p.exists() for p in (recipe / "data/mine", recipe / "data/mfcc/mine",
                                        recipe / "exp/mono_ali_mine"))


def test_an_alignment_two_frames_off_is_accepted(recipe: Path, tmp_path: Path) -> None:
    src = _ali_source(recipe, tmp_path, {"fte001_00374": 2, "mte000_05446": -2})
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "mine"]) == 0
    assert read_kaldi_map(recipe / "data/mine/text") == read_kaldi_map(recipe / "data/test/text")


def test_a_ctm_with_phones_past_the_end_of_the_audio_is_refused(recipe: Path, tmp_path: Path,
                                                                capsys) -> None:
    """The ctm of a longer take of one utterance: its phones beyond the audio are named, not
    dropped from the reference without a word."""
    src = _source(recipe, tmp_path / "src", "phones.ctm")
    utt = "mte000_05446"
    end = (_frames(recipe, utt) - 1) * 0.010 + 0.025
    with open(src / "phones.ctm", "a") as ctm:
        ctm.write(f"{utt} 1 {end + 0.5:.3f} 0.080 ah\n")
    line = len((src / "phones.ctm").read_text().splitlines())
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name", "mine"],
             f"{src}/phones.ctm: utterance {utt}: line {line}: "
             f"phone 'ah' starts at {end + 0.5:.3f} s, after the end of its audio ({end:.3f} s, "
             f"{_frames(recipe, utt)} frames; up to 20 ms past it is accepted)", capsys)
    assert _tree(tmp_path) == before


# -- an utterance the GMM cannot align -----------------------------------------------------------

def test_an_utterance_that_cannot_align_is_named_once(recipe: Path, tmp_path: Path, caplog) -> None:
    """A phone reference keeps it for scoring, named in one log line (the aligner's own warning
    is not repeated) and in unaligned.txt; the gmm.align command names it in its own line."""
    src = _source(recipe, tmp_path / "src", "text")
    short = "zz_short"  # 0.3 s of tone for 60 phones: too short for 3 HMM states per phone
    t = np.arange(int(0.3 * RATE)) / RATE
    soundfile.write(tmp_path / "short.wav", (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16), RATE,
                    subtype="PCM_16")
    for table, line in (("wav.scp", f"{tmp_path}/short.wav"), ("utt2spk", "zz"), ("text", "sil ah t " * 20)):
        with open(src / table, "a") as f:
            f.write(f"{short} {line}\n")
    with open(src / "spk2utt", "a") as f:
        f.write(f"zz {short}\n")
    with caplog.at_level("INFO"):
        assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "mine"]) == 0
    out = recipe / "data/mine"
    assert (out / "unaligned.txt").read_text() == f"{short}\n"
    assert short in read_kaldi_map(out / "text") and short not in read_alignments(recipe / "exp/mono_ali_mine")
    assert [r.getMessage() for r in caplog.records if short in r.getMessage()] == [
        (f"1 of 5 utterances could not be aligned, kept for scoring, without frame labels: {short} "
         f"(listed in {out}/unaligned.txt)")]
    caplog.clear()
    mfcc = recipe / "data/mfcc/mine"
    with caplog.at_level("INFO"):
        assert align_main(["--lang", str(recipe / "data/lang"), "--model", str(recipe / "exp/mono"),
                           "--feats", str(mfcc), "--text", str(mfcc / "text"), "--out", str(tmp_path / "ali")]) == 0
    assert [r.getMessage() for r in caplog.records if short in r.getMessage()] == [
        f"alignment failed for 1 of 5 utterances: {short}"]


# -- segments -----------------------------------------------------------------------------------

RATE = 16000


def _recording(recipe: Path, dest: Path) -> tuple:
    """Two test utterances joined into one recording; returns (wav, samples, first length, utts)."""
    wavs = read_kaldi_map(recipe / "data/test/wav.scp")
    utts = sorted(wavs)[:2]
    parts = [soundfile.read(wavs[u], dtype="int16")[0] for u in utts]
    samples = np.concatenate(parts)
    soundfile.write(dest, samples, RATE, subtype="PCM_16")
    return dest, samples, len(parts[0]), utts


def _segmented_source(recipe: Path, tmp_path: Path) -> tuple:
    """A data dir with segments (the cut 0.6 samples past the join, rounded up as Kaldi does),
    and the same utterances cut by hand into their own wavs."""
    src, hand = tmp_path / "segmented", tmp_path / "byhand"
    src.mkdir()
    hand.mkdir()
    wav, samples, join, utts = _recording(recipe, tmp_path / "rec1.wav")
    cut = (join + 0.6) / RATE
    (src / "wav.scp").write_text(f"rec1 {wav}\n")
    (src / "segments").write_text(f"{utts[0]} rec1 0 {cut!r}\n{utts[1]} rec1 {cut!r} -1\n")
    pieces = {utts[0]: samples[:join + 1], utts[1]: samples[join + 1:]}
    for utt, piece in pieces.items():
        soundfile.write(hand / f"{utt}.wav", piece, RATE, subtype="PCM_16")
    (hand / "wav.scp").write_text("".join(f"{u} {hand / u}.wav\n" for u in utts))
    text = read_kaldi_map(recipe / "data/test/text")
    for folder in (src, hand):
        (folder / "utt2spk").write_text("".join(f"{u} spk1\n" for u in utts))
        (folder / "spk2utt").write_text(f"spk1 {' '.join(utts)}\n")
        (folder / "text").write_text("".join(f"{u} {text[u]}\n" for u in utts))
    return src, hand, utts


def test_segments_give_the_features_of_the_audio_cut_by_hand(recipe: Path, tmp_path: Path) -> None:
    src, hand, utts = _segmented_source(recipe, tmp_path)
    assert prepare_cli.main([str(hand), "--dir", str(recipe), "--name", "byhand"]) == 0
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "segmented"]) == 0
    for folder in ("data/{}", "data/mfcc/{}"):
        mine = dict(read_matrices(recipe / folder.format("segmented") / "feats.scp"))
        theirs = dict(read_matrices(recipe / folder.format("byhand") / "feats.scp"))
        assert list(mine) == utts and list(theirs) == utts
        for utt in utts:
            assert np.array_equal(mine[utt], theirs[utt]), (folder, utt)
    assert (recipe / "data/segmented/segments").read_bytes() == (src / "segments").read_bytes()
    assert read_kaldi_map(recipe / "data/segmented/text") == read_kaldi_map(src / "text")
    assert (recipe / "data/segmented/cmvn_speaker.ark").read_bytes() == \
        (recipe / "data/byhand/cmvn_speaker.ark").read_bytes()


def test_segments_with_a_phones_ctm_count_each_segments_frames(recipe: Path, tmp_path: Path) -> None:
    """A phones.ctm beside segments (no utt2num_frames) is read on the frames of each segment:
    the reference is the one the same audio cut by hand gives."""
    src, hand, utts = _segmented_source(recipe, tmp_path)
    ctm = [line for line in (recipe / "data/test/phones.ctm").read_text().splitlines()
           if line.split()[0] in utts]
    for folder in (src, hand):
        (folder / "text").unlink()
        (folder / "phones.ctm").write_text("\n".join(ctm) + "\n")
    assert prepare_cli.main([str(hand), "--dir", str(recipe), "--name", "byhand"]) == 0
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "segmented"]) == 0
    reference = read_kaldi_map(recipe / "data/segmented/text")
    assert list(reference) == utts and all(reference.values())
    assert reference == read_kaldi_map(recipe / "data/byhand/text")


def test_segments_are_cut_as_kaldis_extract_segments(kaldi_env: dict, recipe: Path,
                                                     tmp_path: Path) -> None:
    """Rounding (half away from zero), an end of -1 and an end overshooting by < 0.5 s."""
    wav, samples, join, _ = _recording(recipe, tmp_path / "rec1.wav")
    length = len(samples) / RATE
    (tmp_path / "wav.scp").write_text(f"rec1 {wav}\n")
    segments = tmp_path / "segments"
    segments.write_text(f"a rec1 0.10003 {(join + 0.5) / RATE!r}\nb rec1 0.20004 0.30006\n"
                        f"c rec1 {(join + 0.6) / RATE!r} -1\nd rec1 1.1 {length + 0.3!r}\n")
    ark = tmp_path / "kaldi.ark"
    subprocess.run(["extract-segments", f"scp:{tmp_path / 'wav.scp'}", str(segments), f"ark:{ark}"],
                   env=kaldi_env, check=True, capture_output=True)
    kaldi = {utt: wave for utt, (_, wave) in read_waves(f"ark:{ark}")}
    mine = {utt: wave for utt, (_, wave) in
            read_segment_waves(tmp_path / "wav.scp", read_segments(segments), segments)}
    assert list(mine) == list(kaldi) == ["a", "b", "c", "d"]
    for utt in mine:
        assert np.array_equal(mine[utt], kaldi[utt]), utt


@pytest.mark.parametrize("case", ["recording", "beyond", "fields", "order", "reversed", "bom"])
def test_a_bad_segments_file_is_refused_by_line(case: str, recipe: Path, tmp_path: Path,
                                                capsys) -> None:
    src, _, utts = _segmented_source(recipe, tmp_path)
    lines = (src / "segments").read_text().splitlines()
    length = soundfile.info(str(tmp_path / "rec1.wav")).frames / RATE
    edit, expected = {
        "recording": (f"{utts[1]} rec2 1.0 -1", f"utterance {utts[1]}: recording rec2 is not in "
                                                 "wav.scp"),
        "beyond": (f"{utts[1]} rec1 2.0 {length + 0.6!r}", f"utterance {utts[1]}: segment 2-"
                   f"{length + 0.6:g} s is beyond recording rec1 ({length:g} s)"),
        "fields": (f"{utts[1]} rec1 2.0", "line 2: expected '<utt> <recording> <start> <end>' "
                                          "(seconds)"),
        "order": (None, f"utterance {utts[0]}: not sorted (LC_ALL=C sort): {utts[0]} comes after "
                        f"{utts[1]}"),
        "reversed": (f"{utts[1]} rec1 2.0 1.5", f"utterance {utts[1]}: line 2: needs 0 <= start "
                                                "< end (or end -1), got 2 1.5"),
        "bom": (None, "starts with a UTF-8 byte-order mark (BOM); save it without one"),
    }[case]
    if case == "bom":
        (src / "segments").write_bytes(b"\xef\xbb\xbf" + (src / "segments").read_bytes())
    else:
        (src / "segments").write_text(f"{lines[0]}\n{edit}\n" if edit else f"{lines[1]}\n{lines[0]}\n")
    before = _tree(tmp_path)
    _refused([str(src), "--dir", str(recipe), "--name", "mine"], f"{src}/segments: {expected}",
             capsys)
    assert _tree(tmp_path) == before
