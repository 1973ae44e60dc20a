"""corpus/alignment.py: a phones.ctm in a data dir with a ``segments`` file counts each
utterance's frames from its segment of the recording (25/10 ms, as its features), or refuses in
one line naming the file."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import soundfile

from pytorch_kaldi_snn.corpus.alignment import num_frames, read_phone_alignment
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.features.extract import make_feats
from repo_paths import ROOT

RATE = 16000
# two utterances (samples; not whole frames) inside one recording, at offsets that are not
# whole frames either: before, between and after them other audio
LENGTHS = {"u1": 19753, "u2": 13957}
GAPS = (1975, 4801, 999)
CTM = ["u1 1 0.00 0.40 sil", "u1 1 0.40 0.5125 ah", "u1 1 0.9125 0.31 t",
       "u2 1 0.00 0.20 sil", "u2 1 0.20 0.45 iy", "u2 1 0.65 0.21 sil"]


def _data_dir(root: Path, wav_scp: str, **files: str) -> Path:
    root.mkdir()
    (root / "wav.scp").write_text(wav_scp)
    (root / "phones.ctm").write_text("\n".join(CTM) + "\n")
    (root / "utt2spk").write_text("u1 s1\nu2 s1\n")
    (root / "spk2utt").write_text("s1 u1 u2\n")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def dirs(tmp_path: Path) -> Dict[str, Path]:
    """The same two utterances as wavs of their own (``plain``) and as segments of one
    recording (``segmented``)."""
    rng = np.random.default_rng(0)
    audio = {utt: (rng.standard_normal(n) * 3000).astype(np.int16) for utt, n in LENGTHS.items()}
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for utt, samples in audio.items():
        soundfile.write(wavs / f"{utt}.wav", samples, RATE, subtype="PCM_16")
    gap = [np.zeros(n, np.int16) for n in GAPS]
    soundfile.write(wavs / "rec.wav", np.concatenate([gap[0], audio["u1"], gap[1], audio["u2"],
                                                      gap[2]]), RATE, subtype="PCM_16")
    start1, start2 = GAPS[0], GAPS[0] + LENGTHS["u1"] + GAPS[1]
    segments = "".join(f"{utt} rec {first / RATE:.7f} {(first + LENGTHS[utt]) / RATE:.7f}\n"
                       for utt, first in (("u1", start1), ("u2", start2)))
    return {"plain": _data_dir(tmp_path / "plain", "".join(
                f"{utt} {wavs / utt}.wav\n" for utt in LENGTHS)),
            "segmented": _data_dir(tmp_path / "segmented", f"rec {wavs / 'rec.wav'}\n",
                                   segments=segments)}


def test_ctm_with_segments_labels_the_frames_of_each_segment(dirs, tmp_path: Path):
    """The frames are the segment's, as the features count them (make_feats' utt2num_frames),
    and the labels those of the same audio in wavs of its own."""
    segmented = read_phone_alignment(dirs["segmented"])
    plain = read_phone_alignment(dirs["plain"])
    assert {utt: len(ids) for utt, ids in segmented.items()} == \
        {utt: num_frames(n, RATE) for utt, n in LENGTHS.items()} == {"u1": 121, "u2": 85}
    for utt in LENGTHS:
        np.testing.assert_array_equal(segmented[utt], plain[utt])
    conf = ROOT / "recipes" / "synth" / "conf" / "fbank.conf"
    make_feats(dirs["segmented"], "fbank", conf, tmp_path / "ark")
    assert (dirs["segmented"] / "utt2num_frames").read_text() == "u1 121\nu2 85\n"


def test_a_recording_that_is_a_command_is_refused_not_run(dirs, tmp_path: Path):
    root = dirs["segmented"]
    (root / "wav.scp").write_text(f"rec touch {tmp_path / 'M'} |\n")
    with pytest.raises(DataError) as refused:
        read_phone_alignment(root)
    assert str(refused.value) == (
        f"{root / 'wav.scp'}: recording rec: its wav is not a plain file, so phones.ctm's frames "
        "cannot be counted; add utt2num_frames")
    assert not (tmp_path / "M").exists()
    shutil.copy(root / "wav.scp", dirs["plain"] / "wav.scp")
    with pytest.raises(DataError, match="^.*/plain/wav.scp: utterance rec: its wav is not a "):
        read_phone_alignment(dirs["plain"])


@pytest.mark.parametrize("segments,file,expected", [
    ("u1 rec 0.1234375 1.358\nu2 rec 5.0 6.0\n", "segments",
     "utterance u2: segment 5-6 s is beyond recording rec (2.59281 s)"),
    ("u1 rec 0.1234375 1.358\n", "phones.ctm",
     "utterance u2: no frame count (utt2num_frames, segments or wav.scp)"),
])
def test_a_segment_that_cannot_be_counted_is_refused_by_name(dirs, segments, file, expected):
    """A segment beyond its recording, or a phones.ctm utterance that no segment holds."""
    root = dirs["segmented"]
    (root / "segments").write_text(segments)
    with pytest.raises(DataError) as refused:
        read_phone_alignment(root)
    assert str(refused.value) == f"{root / file}: {expected}"
