"""The decoding package against the files Kaldi's own binaries wrote
(tests/fixtures/kaldi_golden_decode)."""
from __future__ import annotations

import math
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from pytorch_kaldi_snn.decoding import (
    DecodeOptions,
    decode_and_score,
    decode_ark,
    decode_utterance,
    latgen_command,
    load_graph,
    read_lattices,
    read_transition_model,
)
from pytorch_kaldi_snn.decoding.graph import read_fst_header
from pytorch_kaldi_snn.io.lattice import best_path
from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.io import read_int_vectors, read_matrices, write_mat_ark
from pytorch_kaldi_snn.kaldi_ports import kaldifst
from repo_paths import KALDI_GOLDEN_DECODE as GOLDEN

MODEL = GOLDEN / "model"


def int_table(path: Path) -> dict[str, list[int]]:
    """A Kaldi int-vector text ark (or grep of one) as a dict."""
    return {f[0]: [int(x) for x in f[1:]] for f in (line.split() for line in path.read_text().splitlines()) if f}


@pytest.fixture(scope="module")
def tm():
    return read_transition_model(MODEL / "final.mdl")


@pytest.fixture(scope="module")
def graph():
    return load_graph(GOLDEN / "graph" / "HCLG.fst")


@pytest.fixture(scope="module")
def loglikes() -> dict[str, np.ndarray]:
    return dict(read_matrices(GOLDEN / "decode" / "loglikes.ark"))


# ---------------------------------------------------------------- transition model


@pytest.mark.parametrize("name", ["final.mdl.txt", "transition_model.txt"])
def test_text_and_binary_models_agree(tm, name):
    other = read_transition_model(MODEL / name)
    assert other.topology == tm.topology
    np.testing.assert_array_equal(other.tuples, tm.tuples)
    for field in ("tid2pdf", "tid2phone", "tid2state", "tid2hmm_state", "is_self_loop", "is_final"):
        np.testing.assert_array_equal(getattr(other, field), getattr(tm, field))
    # Text keeps 7 significant digits of the float32 log-probs.
    assert np.abs(other.log_probs - tm.log_probs).max() <= 1e-6


def test_hmm_info(tm):
    info = dict(re.findall(r"number of ([a-z-]+) (\d+)", (MODEL / "hmm_info.txt").read_text()))
    assert len(tm.topology.phones) == int(info["phones"]) == 39
    assert tm.num_pdfs == int(info["pdfs"]) == 117
    assert tm.num_tids == int(info["transition-ids"]) == 234
    assert tm.num_tstates == int(info["transition-states"]) == 117


def test_show_transitions(tm):
    lines = (GOLDEN / "graph" / "phones.txt").read_text().splitlines()
    phones = {name: int(i) for name, i in (line.split() for line in lines)}
    text = (MODEL / "show_transitions.txt").read_text()
    states = re.findall(r"Transition-state (\d+): phone = (\S+) hmm-state = (\d+) pdf = (\d+)", text)
    tids = re.findall(r"Transition-id = (\d+) p = (\S+) \[(self-loop|\d+ -> \d+)\]", text)
    assert len(states) == tm.num_tstates and len(tids) == tm.num_tids
    for ts, phone, hmm_state, pdf in states:
        assert tuple(tm.tuples[int(ts) - 1, :3]) == (phones[phone], int(hmm_state), int(pdf))
    probs = np.array([float(p) for _, p, _ in tids])
    assert np.abs(np.exp(tm.log_probs[1:]) - probs).max() < 5e-6  # show-transitions prints 6 digits
    assert [kind == "self-loop" for _, _, kind in tids] == tm.is_self_loop[1:].tolist()


def test_alignment_conversions_match_kaldi(tm):
    ali = dict(read_int_vectors(GOLDEN / "align" / "ali.1.gz"))
    assert len(ali) == 49
    tid = int_table(GOLDEN / "align" / "train_ali_tid.first5.txt")
    pdf = int_table(GOLDEN / "align" / "train_ali_pdf.first5.txt")
    per_frame = int_table(GOLDEN / "align" / "train_ali_phones.first5.txt")
    seq = int_table(GOLDEN / "align" / "train_ali_phone_seq.first5.txt")
    assert len(tid) == 5
    for utt in tid:
        assert ali[utt].tolist() == tid[utt]
        assert tm.ali_to_pdf(ali[utt]).tolist() == pdf[utt]
        assert tm.ali_to_phones_per_frame(ali[utt]).tolist() == per_frame[utt]
        assert tm.ali_to_phone_seq(ali[utt]) == seq[utt]


@pytest.mark.parametrize(
    "ali, phones",
    [
        ([1, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 11, 12], [1, 2]),  # self-loops before the exit
        ([2, 1, 1, 4, 3, 6, 5, 5, 8, 7, 10, 12, 11], [1, 2]),  # reordered: exit, then self-loops
        ([2, 4, 6, 5, 2, 4, 6], [1, 1]),  # the same phone twice, reordered
    ],
)
def test_phone_sequence_by_hand(tm, ali, phones):
    """sil = tids 1..6 and aa = tids 7..12 (show_transitions.txt); tid 6/12 enter the final state."""
    assert tm.ali_to_phone_seq(ali) == phones


def test_bad_model_files(tmp_path, tm):
    with pytest.raises(DataError, match="expected <TransitionModel>"):
        read_transition_model(GOLDEN / "decode" / "ref.txt")
    cut = tmp_path / "cut.mdl"
    cut.write_bytes((MODEL / "final.mdl").read_bytes()[:500])
    with pytest.raises(DataError, match="cut.mdl"):
        read_transition_model(cut)
    with pytest.raises(DataError, match="out of range"):
        tm.ali_to_pdf([0, 1])


# ---------------------------------------------------------------- graph


def fst_arcs(fst) -> tuple[list[tuple], dict[int, float]]:
    arcs = [
        (s, a.nextstate, a.ilabel, a.olabel, np.float32(a.weight.value))
        for s in range(fst.num_states)
        for a in kaldifst.ArcIterator(fst, s)
    ]
    finals = {s: np.float32(fst.final(s).value) for s in range(fst.num_states) if not math.isinf(fst.final(s).value)}
    return arcs, finals


def test_const_hclg_equals_fstprint(graph):
    arcs, finals = fst_arcs(graph)
    ref_arcs, ref_finals = [], {}
    for line in (GOLDEN / "graph" / "HCLG.txt").read_text().splitlines():
        f = line.split()
        if len(f) >= 4:
            ref_arcs.append((int(f[0]), int(f[1]), int(f[2]), int(f[3]), np.float32(f[4] if len(f) == 5 else 0)))
        else:
            ref_finals[int(f[0])] = np.float32(f[1] if len(f) == 2 else 0)
    assert sorted(arcs) == sorted(ref_arcs)  # bit-exact float32 weights
    assert finals == ref_finals
    info = (GOLDEN / "graph" / "hclg_fstinfo.txt").read_text()
    assert f"# of states {graph.num_states}" in re.sub(r"\s+", " ", info)
    assert len(arcs) == 1454 and len(finals) == 35 and graph.start == 0


def test_const_reader_keeps_fstprint_arc_order(graph):
    """Same states, start, arc order, labels and bit-exact weights as OpenFst's fstprint of the
    const graph (which lists each state's arcs in their order)."""
    arcs, _ = fst_arcs(graph)
    printed = [(int(f[0]), int(f[1]), int(f[2]), int(f[3]), np.float32(f[4] if len(f) == 5 else 0))
               for f in map(str.split, (GOLDEN / "graph" / "HCLG.txt").read_text().splitlines())
               if len(f) >= 4]
    assert (graph.num_states, graph.start) == (272, 0)
    assert arcs == printed  # in state and arc order, not sorted


def test_vector_graph_round_trip(graph, tmp_path):
    graph.write(str(tmp_path / "HCLG.fst"))
    assert read_fst_header((tmp_path / "HCLG.fst").read_bytes(), "x").fst_type == "vector"
    assert fst_arcs(load_graph(tmp_path / "HCLG.fst")) == fst_arcs(graph)


def test_bad_graph(tmp_path):
    (tmp_path / "bad.fst").write_bytes(b"not an fst at all, clearly")
    with pytest.raises(DataError, match="bad magic"):
        load_graph(tmp_path / "bad.fst")
    (tmp_path / "cut.fst").write_bytes((GOLDEN / "graph" / "HCLG.fst").read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated const FST"):
        load_graph(tmp_path / "cut.fst")


# ---------------------------------------------------------------- decoder


def test_decoder_reproduces_latgen_faster_mapped(graph, tm, loglikes):
    words = int_table(GOLDEN / "decode" / "best_words.txt")
    ali = int_table(GOLDEN / "decode" / "best_ali.txt")
    log_text = (GOLDEN / "decode" / "latgen_faster_mapped.log").read_text()
    logged = {u: float(v) for u, v in re.findall(r"utterance (\S+) is (\S+) over", log_text)}
    assert len(loglikes) == len(words) == 10
    total, frames = 0.0, 0
    for utt, matrix in loglikes.items():
        hyp = decode_utterance(matrix, graph, tm, DecodeOptions(), with_lattice=False)
        assert hyp.words == words[utt]
        assert hyp.alignment == ali[utt]
        per_frame = hyp.likelihood / hyp.num_frames
        assert abs(per_frame - logged[utt]) <= 5e-5 * abs(logged[utt])  # the log has 6 digits
        total, frames = total + hyp.likelihood, frames + hyp.num_frames
    assert frames == 2228 and round(total / frames, 4) == -11.3032


def test_decode_rejects_bad_loglikes(graph, tm, loglikes):
    matrix = next(iter(loglikes.values()))
    with pytest.raises(DataError, match="117 pdfs"):
        decode_utterance(matrix[:, :100], graph, tm)
    with pytest.raises(DataError, match="no frames"):
        decode_utterance(matrix[:0], graph, tm)
    bad = matrix.copy()
    bad[3, 4] = np.nan
    with pytest.raises(DataError, match="NaN"):
        decode_utterance(bad, graph, tm)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("decode")
    return decode_ark(GOLDEN / "decode" / "loglikes.ark", GOLDEN / "graph", MODEL / "final.mdl", out)


@pytest.mark.parametrize("name", ["best_words.txt", "best_ali.txt", "hyp.txt"])
def test_decode_ark_outputs_equal_kaldis_bytes(decoded, name):
    assert (decoded / name).read_bytes() == (GOLDEN / "decode" / name).read_bytes()


def test_decode_ark_lattices_hold_kaldis_best_path(decoded):
    words = int_table(GOLDEN / "decode" / "best_words.txt")
    ali = int_table(GOLDEN / "decode" / "best_ali.txt")
    lattices = dict(read_lattices(decoded / "lat.1.gz"))
    assert sorted(lattices) == sorted(words)
    for utt, lat in lattices.items():
        best_words, best_ali, _ = best_path(lat, 0.1)
        assert (best_words, best_ali) == (words[utt], ali[utt])


def test_decode_ark_from_items_and_unknown_word(tmp_path, loglikes):
    items = list(loglikes.items())[:1]
    decode_ark(items, GOLDEN / "graph", MODEL / "final.mdl", tmp_path / "a", DecodeOptions(lattice_beam=2.0))
    assert (tmp_path / "a" / "hyp.txt").read_text().startswith("f2_u051 dh ah f")
    graph_dir = tmp_path / "graph"
    graph_dir.mkdir()
    shutil.copy(GOLDEN / "graph" / "HCLG.fst", graph_dir)
    (graph_dir / "words.txt").write_text("<eps> 0\n<unk> 1\n")
    with pytest.raises(DataError, match="not in the symbol table"):
        decode_ark(items, graph_dir, MODEL / "final.mdl", tmp_path / "b")


# ---------------------------------------------------------------- Kaldi bridge

FAKE_LATGEN = """#!/bin/sh
# FAKE latgen-faster-mapped for tests: records its argv, then plays back Kaldi's golden outputs.
printf '%s\\n' "$@" > "$FAKE_ARGV"
for last; do :; done
n=$#
lat=$(eval echo \\"\\${$((n - 2))}\\"); words=$(eval echo \\"\\${$((n - 1))}\\")
gunzip -c "$GOLDEN/decode/lat.1.gz" | sh -c "${lat#ark:|}"
cp "$GOLDEN/decode/best_words.txt" "${words#ark,t:}"
cp "$GOLDEN/decode/best_ali.txt" "${last#ark,t:}"
"""


def test_bridge_runs_kaldi_when_found(tmp_path, monkeypatch, caplog):
    """Kaldi path, with a FAKE latgen-faster-mapped (no Kaldi here): the command line is exact."""
    bindir = tmp_path / "kaldi" / "src" / "latbin"
    bindir.mkdir(parents=True)
    fake = bindir / "latgen-faster-mapped"
    fake.write_text(FAKE_LATGEN)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("KALDI_ROOT", str(tmp_path / "kaldi"))
    monkeypatch.setenv("FAKE_ARGV", str(tmp_path / "argv"))
    monkeypatch.setenv("GOLDEN", str(GOLDEN))
    out = tmp_path / "out"
    caplog.set_level("INFO")
    run = decode_and_score(
        GOLDEN / "decode" / "loglikes.ark", GOLDEN / "graph", MODEL / "final.mdl", out,
        ref_text=GOLDEN / "decode" / "ref.txt", mode="kaldi",
    )
    assert run.decoder == "kaldi" and "decoder: kaldi" in caplog.text
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == [
        "--min-active=200", "--max-active=7000", "--max-mem=50000000", "--beam=13", "--lattice-beam=8", "--acoustic-scale=0.1",
        "--allow-partial=true", f"--word-symbol-table={GOLDEN / 'graph' / 'words.txt'}",
        str(MODEL / "final.mdl"), str(GOLDEN / "graph" / "HCLG.fst"), f"ark:{GOLDEN / 'decode' / 'loglikes.ark'}",
        f"ark:|gzip -c > {out / 'lat.1.gz'}", f"ark,t:{out / 'best_words.txt'}", f"ark,t:{out / 'best_ali.txt'}",
    ]
    loglikes = str(GOLDEN / "decode" / "loglikes.ark")
    assert argv == latgen_command("x", loglikes, GOLDEN / "graph", MODEL / "final.mdl", out, DecodeOptions())[1:]
    assert (out / "hyp.txt").read_bytes() == (GOLDEN / "decode" / "hyp.txt").read_bytes()
    assert (out / "score.txt").read_text() == (GOLDEN / "decode" / "compute_wer.txt").read_text()


def test_bridge_falls_back_to_builtin(tmp_path, monkeypatch, caplog, loglikes):
    monkeypatch.delenv("KALDI_ROOT", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(ConfigError, match="not found"):
        decode_and_score(
            GOLDEN / "decode" / "loglikes.ark", GOLDEN / "graph", MODEL / "final.mdl", tmp_path, use_kaldi=True
        )
    caplog.set_level("INFO")
    ark = tmp_path / "two.ark"
    write_mat_ark(ark, None, list(loglikes.items())[:2])
    opts = DecodeOptions(lattice_beam=3.0)
    run = decode_and_score(ark, GOLDEN / "graph", MODEL / "final.mdl", tmp_path / "out", opts)
    assert run.decoder == "builtin" and "decoder: builtin" in caplog.text and run.counts is None
    assert len((tmp_path / "out" / "hyp.txt").read_text().splitlines()) == 2
