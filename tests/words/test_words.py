"""Word transcripts into prepare_set: normalisation, CMUdict / lexicon.txt / eSpeak NG
pronunciations, alignment from words with the recipe's GMM, and each refusal's one line. The
data dirs are made from the tiny corpus, whose synthesizer frame labels (ali.txt) are the truth."""
from __future__ import annotations

import json
import math
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from experiment_cfgs import TINY, synth_cfg
from pytorch_kaldi_snn import prepare_set as prepare_cli
from pytorch_kaldi_snn.corpus.alignment import run_labels
from pytorch_kaldi_snn.corpus.timit import PHONES_48
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.gmm.agreement import set_agreement
from pytorch_kaldi_snn.gmm.labels import read_lab_folder
from pytorch_kaldi_snn.gmm.lexicon_fst import ConnectedSpeech
from pytorch_kaldi_snn.io import read_kaldi_map
from pytorch_kaldi_snn.io.tables import read_symbol_table
from pytorch_kaldi_snn.pipeline.runner import run_experiment
from pytorch_kaldi_snn.prepare_set import prepare_set
from pytorch_kaldi_snn.words.in_context import _edit_distance, pronunciations_in_context
from pytorch_kaldi_snn.words.lexicon import espeak_pronunciation, fold_arpabet, load_lexicon
from pytorch_kaldi_snn.words.normalise import normalise

# Alignment from words agrees with the synthesizer's frames a little less than realignment from
# the true phones on the tiny corpus's test set: 75.3 % against 77.2 % (8 training utterances
# leave the GMM too weak, and the silence and pronunciation counts too sparse, to place optional
# silences as well as a transcript that lists them). The default size is measured in docs/corpus.md.
AGREEMENT_GAP = 0.025


def test_cmudict_folds_to_the_39_phones() -> None:
    assert fold_arpabet(["AO1", "ZH", "AH0", "HH"]) == ("aa", "sh", "ah", "hh")
    lexicon = load_lexicon("cmudict", [])
    assert lexicon["read"] == (("r", "eh", "d"), ("r", "iy", "d"))
    assert lexicon["the"] == (("dh", "ah"), ("dh", "iy"))  # DH AH0 and DH AH1 are one entry


def test_cmudict_keeps_the_distinctions_of_timits_48_phones() -> None:
    """recipes/timit_builtin trains on 48 phones: ao and zh stay, unstressed AH/IH are TIMIT's
    ax/ix, and AH1 stays ah."""
    assert fold_arpabet(["AO1", "ZH", "AH0", "AH1", "IH0", "IH1", "ER0"], PHONES_48) == (
        "ao", "zh", "ax", "ah", "ix", "ih", "er")
    lexicon = load_lexicon("cmudict", PHONES_48)
    assert lexicon["roses"] == (("r", "ow", "z", "ix", "z"),)
    assert lexicon["the"] == (("dh", "ax"), ("dh", "ah"), ("dh", "iy"))
    assert load_lexicon("cmudict", [])["the"] == (("dh", "ah"), ("dh", "iy"))  # cached per inventory


def test_connected_speech_is_counted_in_phone_transcripts() -> None:
    """Silence by the class of the phone before and the phone after, and vowel-linking glides,
    as often as the transcripts have them (Laplace-smoothed); silence before an utterance's first
    phone is no closure or pause."""
    speech = ConnectedSpeech.estimate([
        "sil p ah sil p iy y ah er ah sil".split(),
        "sil t iy y ow sil t er r ah d ah s sil d ah sil".split(),
    ])
    assert speech.closure_before("ah", "p") == ("sil", 2 / 3)  # the first p follows leading silence
    assert speech.closure_before("ow", "t") == ("sil", 2 / 3)
    assert speech.closure_before("ah", "d") == ("sil", 1 / 3)  # d after a vowel: no closure
    assert speech.closure_before("s", "d") == ("sil", 2 / 3)  # after a fricative: closed
    assert speech.closure_before("n", "d") == ("sil", 0.5)  # never seen: as likely as not
    assert speech.closure_before("ah", "ah") is None  # silence between words only
    assert speech.silence_between("vowel", "s", 0.2) == 1 / 3
    assert speech.silence_between("stop", "s", 0.2) == 0.2  # never seen: the caller's prior
    assert speech.glide_after("iy") == ("y", 3 / 4)
    assert speech.glide_after("er") == ("r", 1 / 2)  # once linked by r, once not
    assert speech.glide_after("ow") is None  # never followed by a vowel: no glide offered


def test_normalise_folds_case_and_drops_punctuation() -> None:
    dropped: Counter = Counter()
    words = normalise("The WELL-meaning \"don't\", 'quoted' ... x!", set(), dropped)
    assert words == ["the", "well", "meaning", "don't", "quoted", "x"]
    assert dropped == Counter({"'": 2, '"': 2, ".": 3, "-": 1, ",": 1, "!": 1})


def test_normalise_refuses_a_character_without_a_rule() -> None:
    with pytest.raises(DataError) as err:
        normalise("a café", set(), Counter())
    assert str(err.value) == ("'é' (U+00E9) in 'café' is not a letter a-z: write it out as words, "
                              "or give 'café' in a --lexicon file")
    assert normalise("a café", {"café"}, Counter()) == ["a", "café"]


def test_espeak_pronounces_an_invented_word() -> None:
    assert espeak_pronunciation("blorfing") == ("b", "l", "aa", "r", "f", "ih", "ng")


def test_espeak_reads_words_in_context() -> None:
    """'the' before a vowel and the weak form of 'was'; eSpeak joins 'was the' into one word,
    cut back into the two words' phones."""
    words = "it was the end of the swim".split()
    assert espeak_pronunciation("the") == ("dh", "ah")
    assert pronunciations_in_context(words) == [
        ("ih", "t"), ("w", "ah", "z"), ("dh", "ih", "y"), ("eh", "n", "d"), ("ah", "v"), ("dh", "ah"),
        ("s", "w", "ih", "m")]


@pytest.mark.parametrize("a, b, distance", [
    (("k", "ae", "t"), ("k", "ah", "t", "s"), 2),  # one substitution, one insertion
    (("dh", "ah"), ("dh", "ih", "y"), 2),
    (("aa",), ("a", "a"), 2),  # a phone is one symbol, never its letters
    ((), ("ah", "v"), 2),  # an empty piece of a joined word
    ((), (), 0),
])
def test_pieces_are_matched_by_phone_edit_distance(a: tuple, b: tuple, distance: int) -> None:
    assert _edit_distance(a, b) == _edit_distance(b, a) == distance


@pytest.fixture(scope="module")
def recipe(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the tiny recipe run (prepare_set adds sets to it)."""
    root = tmp_path_factory.mktemp("words") / "synth"
    shutil.copytree(tiny_corpus, root, symlinks=True)
    return root


def _words_dir(recipe: Path, dest: Path, source: str = "test") -> Path:
    """A user's data dir: the set's wav.scp, utt2spk, spk2utt and its word transcript as text."""
    dest.mkdir()
    for name in ("wav.scp", "utt2spk", "spk2utt"):
        shutil.copyfile(recipe / "data" / source / name, dest / name)
    shutil.copyfile(recipe / "data" / source / "text.words", dest / "text")
    return dest


def test_alignment_from_words_agrees_with_the_synthesizer(recipe: Path, tmp_path: Path) -> None:
    """Through CMUdict (+ eSpeak NG): frame agreement close to realignment from the true phones,
    and a reference whose phones are those of the words' pronunciations the audio chose."""
    src = _words_dir(recipe, tmp_path / "mine")
    assert prepare_set(src, recipe, "from_words") == 4
    phones_txt = recipe / "data/lang/phones.txt"
    words = set_agreement(recipe / "exp/mono_ali_from_words", recipe / "data/test/ali.txt", phones_txt)
    realigned = set_agreement(recipe / "exp/mono_ali_test", recipe / "data/test/ali.txt", phones_txt)
    assert words["utts_aligned"] == 4
    assert words["agreement"] >= realigned["agreement"] - AGREEMENT_GAP
    text = read_kaldi_map(recipe / "data/from_words/text")
    assert set(text) == set(read_kaldi_map(src / "text"))
    assert all(line.split()[0] == "sil" and line.split()[-1] == "sil" for line in text.values())
    assert read_kaldi_map(recipe / "data/from_words/text.words") == read_kaldi_map(src / "text")
    # the reference is the phone sequence of the alignment written (ali-to-phones of ali.1.gz)
    frames = read_lab_folder(recipe / "exp/mono_ali_from_words", "ali-to-phones --per-frame=true")
    symbols = {i: p for p, i in read_symbol_table(phones_txt).items()}
    assert {u: " ".join(symbols[i] for i in run_labels(ids)) for u, ids in frames.items()} == text
    # CMUdict's "around" is 'er aw n d'; the synthesizer links er to the vowel with r, as the
    # recipe's training transcripts do, and the alignment chose the glide.
    around = [u for u, line in read_kaldi_map(src / "text").items() if "around" in line.split()]
    assert around and all("er r aw n" in text[u] for u in around)


def test_the_audio_chooses_between_alternative_pronunciations(recipe: Path, tmp_path: Path) -> None:
    """A lexicon.txt whose first entry for 'company' is a decoy: the reference has the spoken one."""
    src = _words_dir(recipe, tmp_path / "mine")
    cmu = load_lexicon("cmudict", [])
    vocabulary = sorted({w for line in read_kaldi_map(src / "text").values() for w in line.split()})
    lines = ["company sh uw sh uw sh uw"] + [f"{w} {' '.join(p)}" for w in vocabulary for p in cmu[w]]
    (tmp_path / "lexicon.txt").write_text("\n".join(lines) + "\n")
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "decoy",
                             "--lexicon", str(tmp_path / "lexicon.txt")]) == 0
    text = read_kaldi_map(recipe / "data/decoy/text")
    with_company = [u for u, line in read_kaldi_map(src / "text").items() if "company" in line.split()]
    spoken = {u: " ".join(p for p in text[u].split() if p != "sil") for u in with_company}  # closures out
    assert with_company and all("k ah m p ah n iy" in spoken[u] and "sh" not in spoken[u] for u in with_company)


def _tone(path: Path, seconds: float) -> str:
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(path, (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16), 16000, subtype="PCM_16")
    return str(path)


def test_oov_words_unalignable_utterances_and_refusals(recipe: Path, tmp_path: Path, capsys, caplog) -> None:
    """Invented words get eSpeak NG pronunciations (listed in oov_lexicon.txt, one log line); an
    utterance too short for its words is listed and left out; --oov error refuses by name."""
    src = _words_dir(recipe, tmp_path / "mine")
    text = read_kaldi_map(src / "text")
    first = sorted(text)[0]
    text[first] += " blorfing zquix"
    short = "zz_short"  # sorts after every synthesized utterance
    wav = _tone(tmp_path / "short.wav", 0.3)
    text[short] = "companies will now stampede to release their latest software"
    (src / "text").write_text("".join(f"{u} {line}\n" for u, line in sorted(text.items())))
    with open(src / "wav.scp", "a") as f:
        f.write(f"{short} {wav}\n")
    with open(src / "utt2spk", "a") as f:
        f.write(f"{short} zz\n")
    with open(src / "spk2utt", "a") as f:
        f.write(f"zz {short}\n")
    with caplog.at_level("INFO"):
        assert prepare_set(src, recipe, "oov") == 4
    out = recipe / "data/oov"
    assert read_kaldi_map(out / "oov_lexicon.txt") == {"blorfing": "b l aa r f ih ng", "zquix": "z iy k w ih k s"}
    assert (out / "unaligned.txt").read_text() == f"{short}\n"
    assert short not in read_kaldi_map(out / "text") and short not in read_kaldi_map(out / "utt2spk")
    assert "zz" not in read_kaldi_map(out / "spk2utt")
    messages = [r.getMessage() for r in caplog.records]
    assert f"2 words not in the lexicon were pronounced by eSpeak NG: blorfing zquix (listed in {out}/oov_lexicon.txt)" in messages
    assert [m for m in messages if short in m] == [  # named once: the aligner's warning is not repeated
        (f"1 of 5 utterances could not be aligned, left out of the set (no phone reference): {short} "
         f"(listed in {out}/unaligned.txt)")]
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "oov_refused", "--oov", "error"]) == 2
    assert capsys.readouterr().err == (
        f"prepare_set: {src}/text: 2 words are not in the lexicon cmudict: blorfing zquix (give them "
        "in a --lexicon file, or let eSpeak NG pronounce them: --oov espeak)\n")
    assert not (recipe / "data/oov_refused").exists()


@pytest.mark.parametrize("line, message", [
    ("... !", "empty transcript: no words to align"),
    ("the 42 cats", "'4' (U+0034) in '42' is not a letter a-z: write it out as words, or give '42' in a --lexicon file"),
])
def test_bad_word_transcript_is_one_line(line: str, message: str, recipe: Path, tmp_path: Path, capsys) -> None:
    src = _words_dir(recipe, tmp_path / "mine")
    text = read_kaldi_map(src / "text")
    utt = sorted(text)[1]
    text[utt] = line
    (src / "text").write_text("".join(f"{u} {v}\n" for u, v in sorted(text.items())))
    assert prepare_cli.main([str(src), "--dir", str(recipe), "--name", "bad"]) == 2
    assert capsys.readouterr().err == f"prepare_set: {src}/text: utterance {utt}: {message}\n"
    assert not (recipe / "data/bad").exists()


def _from_words(set_name: str):
    """A cfg edit: the quick-start cfg's ``set_name`` replaced by ``<set_name>_words``."""
    return lambda text: re.sub(rf"(data/{set_name}/|mono_ali_{set_name}$)",
                               lambda m: m.group(1).replace(set_name, f"{set_name}_words", 1),
                               text, flags=re.MULTILINE)


@pytest.mark.slow
def test_the_quick_start_cfg_trains_on_sets_imported_from_words(recipe: Path, tmp_path: Path,
                                                                builtin_env: dict, monkeypatch) -> None:
    """The train and dev sets imported from their words (alignments and priors from words), the
    test set the recipe's own: the run ends with a PER scored against the synthesizer's phones."""
    monkeypatch.setenv("PATH", builtin_env["PATH"])
    monkeypatch.delenv("KALDI_ROOT", raising=False)
    for name in ("train", "dev"):
        src = _words_dir(recipe, tmp_path / name, source=name)
        assert prepare_set(src, recipe, f"{name}_words") == len(read_kaldi_map(src / "text"))
    edits = (_from_words("train"), _from_words("dev"))
    cfg = synth_cfg(tmp_path, recipe, text_edit=lambda text: edits[1](edits[0](text)))
    text = cfg.read_text()
    assert "data/train/" not in text and "mono_ali_train_words\n" in text and "mono_ali_dev_words\n" in text
    assert "data/test/feats.scp" in text
    out = tmp_path / "exp"
    run_experiment(cfg, [*TINY, f"exp.out_folder={out}", "decoding.acwt=1.0"])
    per = json.loads((out / "results.json").read_text())["per"]
    assert isinstance(per, float) and math.isfinite(per)


def test_a_recipe_without_its_training_text_is_one_line(recipe: Path, tmp_path: Path, capsys) -> None:
    """Closures and glides are counted in the training set's phone text: without it, one line."""
    src = _words_dir(recipe, tmp_path / "mine")
    bare = tmp_path / "synth"
    shutil.copytree(recipe, bare, symlinks=True, ignore=shutil.ignore_patterns("ark", "wav"))
    (bare / "data/train/text").unlink()
    assert prepare_cli.main([str(src), "--dir", str(bare), "--name", "mine"]) == 2
    assert capsys.readouterr().err == (
        f"prepare_set: {bare}/data/train/text: missing: run the recipe first (its train set's phone text)\n")
    assert not (bare / "data/mine").exists()
