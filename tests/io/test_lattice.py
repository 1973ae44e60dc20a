"""Kaldi CompactLattice archives: Kaldi's own lattices read back, our writer checked byte by byte."""
from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest

from pytorch_kaldi_snn.io.fst_header import FstHeader, read_fst_header, vector_fst_header
from pytorch_kaldi_snn.io.lattice import (
    COMPACT_ARC_TYPE,
    CompactArc,
    CompactLattice,
    CompactWeight,
    RawArc,
    best_path,
    compact_from_raw,
    lattice_to_text,
    read_lattices,
    write_lattices,
)
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.kaldi_ports import kaldifst
from repo_paths import KALDI_GOLDEN_DECODE

DECODE = KALDI_GOLDEN_DECODE / "decode"
PROPERTIES = slice(42, 50)  # the uint64 properties inside a vector/compactlattice44 header


def int_table(path: Path) -> dict[str, list[int]]:
    return {f[0]: [int(x) for x in f[1:]] for f in (line.split() for line in path.read_text().splitlines()) if f}


@pytest.fixture(scope="module")
def kaldi_binary() -> dict[str, CompactLattice]:
    return dict(read_lattices(DECODE / "lat.1.gz"))


@pytest.fixture(scope="module")
def kaldi_text() -> dict[str, CompactLattice]:
    return dict(read_lattices(DECODE / "lat.1.txt.gz"))


def test_kaldi_lattices_best_path_is_kaldis_one_best(kaldi_binary, kaldi_text):
    """Our lattice-best-path on latgen-faster-mapped's lattices gives its 1-best and costs."""
    words, ali = int_table(DECODE / "best_words.txt"), int_table(DECODE / "best_ali.txt")
    assert list(kaldi_binary) == list(kaldi_text) == list(words)
    graph = acoustic = frames = 0.0
    for utt in words:
        for lat in (kaldi_binary[utt], kaldi_text[utt]):
            best_words, best_ali, weight = best_path(lat, 0.1)
            assert (best_words, best_ali) == (words[utt], ali[utt])
        graph, acoustic, frames = graph + weight.graph, acoustic + 0.1 * weight.acoustic, frames + len(best_ali)
    # lattice_best_path.log: 11.3032 = 0.262092 [graph] + 11.0411 [acoustic] over 2228 frames
    assert frames == 2228
    assert (round(graph / frames, 6), round(acoustic / frames, 4)) == (0.262092, 11.0411)


def test_binary_and_text_forms_agree(kaldi_binary, kaldi_text):
    for utt, lat in kaldi_binary.items():
        txt = kaldi_text[utt]
        assert (lat.start, lat.num_states, len(lat.arcs)) == (txt.start, txt.num_states, len(txt.arcs))
        for a, b in zip(lat.arcs, txt.arcs):
            assert (a.src, a.dst, a.word, a.weight.tids) == (b.src, b.dst, b.word, b.weight.tids)
            assert math.isclose(a.weight.acoustic, b.weight.acoustic, rel_tol=6e-6, abs_tol=1e-5)
        assert lat.finals.keys() == txt.finals.keys()


def test_text_writer_reproduces_kaldis_text(kaldi_text):
    """At Kaldi's 6 digits our text writer gives lattice-copy's bytes for the first utterance."""
    expected = (DECODE / "lat.1.first_utt.txt").read_text()
    assert lattice_to_text("f2_u051", kaldi_text["f2_u051"], precision=6) == expected


def test_binary_writer_reproduces_kaldis_bytes(kaldi_binary, tmp_path):
    """Re-written, Kaldi's binary archive is byte-identical except the FST property bits."""
    write_lattices(tmp_path / "lat.1.gz", kaldi_binary.items())
    ours = gzip.decompress((tmp_path / "lat.1.gz").read_bytes())
    theirs = gzip.decompress((DECODE / "lat.1.gz").read_bytes())
    assert len(ours) == len(theirs)
    starts = [ours.index(f"{utt} ".encode()) + len(utt) + 1 for utt in kaldi_binary]
    assert starts == [theirs.index(f"{utt} ".encode()) + len(utt) + 1 for utt in kaldi_binary]
    mask = bytearray(ours), bytearray(theirs)
    for start in starts:
        for buf in mask:
            buf[start + PROPERTIES.start : start + PROPERTIES.stop] = bytes(8)
    assert mask[0] == mask[1]


def test_round_trip_text_and_binary(kaldi_binary, tmp_path):
    lat = kaldi_binary["m7_u057"]
    for name, binary in (("a.ark", True), ("b.txt", False)):
        write_lattices(tmp_path / name, [("m7_u057", lat)], binary=binary)
        ((key, back),) = read_lattices(tmp_path / name)
        assert key == "m7_u057" and back == lat  # 9 text digits are exact for float32


def raw(beam: float) -> CompactLattice:
    """0 -1-> 1 -2-> 2 -3-> 3(final), plus a costly 0 -> 4 -> 3 detour; acoustic scale 0.5."""
    arcs = [
        RawArc(0, 1, 5, 0, 1.0, 1.0),
        RawArc(1, 2, 6, 7, 0.0, 2.0),
        RawArc(2, 3, 8, 9, 0.5, 1.0),
        RawArc(0, 4, 5, 0, 50.0, 0.0),
        RawArc(4, 3, 6, 7, 0.0, 0.0),
    ]
    return compact_from_raw(arcs, {3: (0.25, 0.0)}, 0, acoustic_scale=0.5, lattice_beam=beam)


def test_compact_from_raw_merges_chains_and_prunes():
    lat = raw(beam=10.0)  # best 5.75, detour 50.25: pruned
    assert lat.num_states == 3 and lat.start == 0
    assert lat.arcs == (
        CompactArc(0, 1, 7, CompactWeight(1.0, 6.0, (5, 6))),  # chain cut before the 2nd word
        CompactArc(1, 2, 9, CompactWeight(0.5, 2.0, (8,))),
    )
    assert lat.finals == {2: CompactWeight(0.25, 0.0)}
    assert best_path(lat, 0.5) == ([7, 9], [5, 6, 8], CompactWeight(1.75, 8.0, (5, 6, 8)))  # final 0.25 included
    wide = raw(beam=100.0)
    assert CompactArc(0, 2, 7, CompactWeight(50.0, 0.0, (5, 6))) in wide.arcs
    assert best_path(wide, 0.5)[0] == [7, 9]


def test_reads_lattice4_binary(tmp_path):
    """Kaldi also accepts a plain Lattice (arc type lattice4); kaldifst writes that type."""
    lat = kaldifst.Lattice()
    for _ in range(3):
        lat.add_state()
    lat.start = 0
    lat.add_arc(0, kaldifst.LatticeArc(3, 11, kaldifst.LatticeWeight(1.5, 20.0), 1))
    lat.add_arc(1, kaldifst.LatticeArc(4, 0, kaldifst.LatticeWeight(0.0, 5.0), 2))
    lat.set_final(2, kaldifst.LatticeWeight(0.5, 0.0))
    lat.write(str(tmp_path / "one.fst"))
    (tmp_path / "lat.ark").write_bytes(b"utt1 " + (tmp_path / "one.fst").read_bytes())
    ((key, back),) = read_lattices(tmp_path / "lat.ark")
    assert key == "utt1"
    assert best_path(back, 1.0) == ([11], [3, 4], CompactWeight(2.0, 25.0, (3, 4)))


def test_a_cut_lattice_and_a_cut_header_are_one_line_each(tmp_path):
    """The one byte cursor raises each reader's own line: a lattice's archive, utterance and
    byte within that lattice; a graph header's file and byte."""
    arc = CompactArc(0, 1, 7, CompactWeight(1.0, 2.0, (3,)))
    write_lattices(tmp_path / "cut.ark", [("u", CompactLattice(0, 2, (arc,), {1: CompactWeight(0.0, 0.0)}))])
    # after "u " and the header: state 0 (final weight 12 bytes, arc count 8, the arc 28), state 1's
    # final weight (12), then its 8-byte arc count, of which 4 bytes are left
    (tmp_path / "cut.ark").write_bytes((tmp_path / "cut.ark").read_bytes()[:-4])
    count = len(vector_fst_header(COMPACT_ARC_TYPE, 0, 0, 2)) + 12 + 8 + 28 + 12
    with pytest.raises(DataError) as err:
        list(read_lattices(tmp_path / "cut.ark"))
    assert str(err.value) == (f"{tmp_path / 'cut.ark'}: utterance u: "
                              f"truncated binary lattice at byte {count} of the lattice")
    header = vector_fst_header(COMPACT_ARC_TYPE, 0x10003, 0, 5)
    with pytest.raises(DataError) as err:
        read_fst_header(header[:20], "g.fst")  # 18 bytes of magic and "vector", then the arc type
    assert str(err.value) == "g.fst: truncated OpenFst header at byte 18"


def test_a_cut_header_in_an_archive_names_the_archive_the_utterance_and_its_byte(tmp_path, kaldi_binary):
    """The second lattice's header is cut after 20 bytes: its byte 18, not the archive's."""
    write_lattices(tmp_path / "two.ark", [("first", kaldi_binary["m3_u050"])])
    header = vector_fst_header(COMPACT_ARC_TYPE, 0x10003, 0, 5)
    archive = tmp_path / "two.ark.gz"
    archive.write_bytes(gzip.compress((tmp_path / "two.ark").read_bytes() + b"second " + header[:20]))
    with pytest.raises(DataError) as err:
        list(read_lattices(archive))
    assert str(err.value) == f"{archive}: utterance second: truncated OpenFst header at byte 18 of the lattice"


def test_the_vector_header_written_reads_back():
    """What the lattice writer and the const-to-vector graph rewrite put first: the header
    OpenFst's VectorFst writes, which read_fst_header gives back field by field."""
    header = vector_fst_header(COMPACT_ARC_TYPE, 0x10003, 1, 5)
    assert read_fst_header(b"utt " + header + b"states...", "x", 4) == FstHeader(
        "vector", COMPACT_ARC_TYPE, 2, 0, 0x10003, 1, 5, 0, len(header))


def test_bad_archives(tmp_path, kaldi_binary):
    (tmp_path / "junk.ark").write_bytes(b"utt1 xyz")
    with pytest.raises(DataError, match="neither text nor"):
        list(read_lattices(tmp_path / "junk.ark"))
    write_lattices(tmp_path / "cut.ark", [("u", kaldi_binary["m3_u050"])])
    (tmp_path / "cut.ark").write_bytes((tmp_path / "cut.ark").read_bytes()[:-30])
    with pytest.raises(DataError, match="truncated"):
        list(read_lattices(tmp_path / "cut.ark"))
    (tmp_path / "bad.txt").write_text("u \n0\t1\t5\tx,y,z\n\n")
    with pytest.raises(DataError, match="bad CompactLattice weight"):
        list(read_lattices(tmp_path / "bad.txt"))
    one = CompactWeight(0, 0)
    cyclic = CompactLattice(0, 2, (CompactArc(0, 1, 1, one), CompactArc(1, 0, 1, one)), {1: one})
    with pytest.raises(DataError, match="cycle"):
        best_path(cyclic, 0.1)
