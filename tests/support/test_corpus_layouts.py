"""The corpus-shaped fixture writers (tests/support/corpus_layouts.py): the trees look like
TIMIT and LibriSpeech to the scripts that read them."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import soundfile

from corpus_layouts import write_librispeech_tree, write_timit_tree

# TIMIT's 61 phone labels (its PHONCODE.DOC), the set Kaldi's phones.60-48-39.map starts from.
TIMIT_61 = set(
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# hh hv "
    "ih ix iy jh k kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z zh".split()
)


@pytest.mark.parametrize("lower_case", [False, True])
def test_timit_tree(tmp_path: Path, lower_case: bool) -> None:
    tree = write_timit_tree(tmp_path / "TIMIT", train_speakers=2, dev_speakers=1, test_speakers=1,
                            utts_per_speaker=3, lower_case=lower_case)
    case = str.lower if lower_case else str.upper
    train, test = tmp_path / "TIMIT" / case("TRAIN"), tmp_path / "TIMIT" / case("TEST")
    assert sorted(p.name for p in train.glob("*/*")) == sorted(tree.speakers["train"])
    assert sorted(p.name for p in test.glob("*/*")) == sorted(tree.speakers["dev"] + tree.speakers["test"])
    spk_dir = next(test.glob(f"*/{tree.speakers['dev'][0]}"))
    assert sorted(p.stem for p in spk_dir.glob(case("*.wav"))) == [case("SA1"), case("SA2"), case("SI1000")]
    assert tree.dev_spk_list.read_text().split() == [s.lower() for s in tree.speakers["dev"]]
    assert tree.utterances == {"train": 2, "dev": 1, "test": 1}
    for wav in (train.parent).glob(case("*/DR*/*/*.wav")):
        assert wav.read_bytes()[:8] == b"NIST_1A\n"
        n = soundfile.info(str(wav)).frames
        phn = [line.split() for line in wav.with_suffix(case(".phn")).read_text().splitlines()]
        assert phn[0][0] == "0" and int(phn[-1][1]) == n  # the segments tile the file exactly
        assert all(a[1] == b[0] for a, b in zip(phn, phn[1:]))
        assert {p[2] for p in phn} <= TIMIT_61 and phn[0][2] == phn[-1][2] == "h#"
        txt = wav.with_suffix(case(".txt")).read_text().split()
        assert txt[:2] == ["0", str(n)]
        wrd = [line.split() for line in wav.with_suffix(case(".wrd")).read_text().splitlines()]
        assert [w[2] for w in wrd] == [w.strip(".,;:!?\"").lower() for w in txt[2:]]


def test_librispeech_tree(tmp_path: Path) -> None:
    tree = write_librispeech_tree(tmp_path, train_speakers=2, dev_speakers=1, test_speakers=1,
                                  utts_per_speaker=2)
    libri = tmp_path / "LibriSpeech"
    assert tree.utterances == {"train": 4, "dev": 2, "test": 2}
    lexicon = dict(line.split("\t") for line in (tree.lm_dir / "librispeech-lexicon.txt").read_text().splitlines())
    for part, n in (("train-clean-100", 4), ("dev-clean", 2), ("test-clean", 2)):
        trans = sorted(libri.glob(f"{part}/*/*/*.trans.txt"))
        lines = [line.split() for t in trans for line in t.read_text().splitlines()]
        assert len(lines) == n
        for t in trans:
            reader, chapter = t.parent.parent.name, t.parent.name
            assert t.name == f"{reader}-{chapter}.trans.txt"
            ids = [line.split()[0] for line in t.read_text().splitlines()]
            assert ids == sorted(p.stem for p in t.parent.glob("*.flac"))
            assert all(i.startswith(f"{reader}-{chapter}-") for i in ids)
        assert all(w in lexicon for line in lines for w in line[1:])
    assert soundfile.info(str(next(libri.glob("*/*/*/*.flac")))).samplerate == 16000
    speakers = (libri / "SPEAKERS.TXT").read_text().splitlines()
    assert len(speakers) == 1 + 4
    with gzip.open(tree.lm_dir / "lm_tgsmall.arpa.gz", "rt") as f:
        assert f.readline().strip() == "\\data\\"
