"""Large-graph decoding: 1-best without lattices, parallel jobs (lat.J.gz), one list of latgen options."""
from __future__ import annotations

import gzip
import itertools
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pytorch_kaldi_snn.decoding import DecodeOptions, decode_and_score, decode_ark, latgen_command, read_lattices
from pytorch_kaldi_snn.decoding.jobs import concatenate_archives, lattice_archives, part_sizes, split_loglikes
from pytorch_kaldi_snn.config.latgen_opts import latgen_options
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io import read_matrices, write_mat_ark
from pytorch_kaldi_snn.scoring.lm_sweep import builtin_hypotheses, kaldi_hypotheses
from repo_paths import KALDI_GOLDEN_DECODE as GOLDEN, ROOT

LOGLIKES = GOLDEN / "decode" / "loglikes.ark"
GRAPH, MODEL = GOLDEN / "graph", GOLDEN / "model" / "final.mdl"
ONE_BEST = ("best_words.txt", "best_ali.txt", "hyp.txt")
NARROW = DecodeOptions(lattice_beam=2.0)  # smaller lattices: the same 1-best, faster tests
LATGEN_OPTS = ROOT / "pytorch_kaldi_snn" / "config" / "latgen_opts.py"


@pytest.fixture(scope="module")
def with_lattices(tmp_path_factory) -> Path:
    return decode_ark(LOGLIKES, GRAPH, MODEL, tmp_path_factory.mktemp("lat"), NARROW)


def test_one_best_is_the_same_without_lattices(with_lattices, tmp_path):
    out = decode_ark(LOGLIKES, GRAPH, MODEL, tmp_path, NARROW, save_lattices=False)
    for name in ONE_BEST:
        assert (out / name).read_bytes() == (with_lattices / name).read_bytes() == (GOLDEN / "decode" / name).read_bytes()
    assert lattice_archives(out) == [] and lattice_archives(with_lattices) == [with_lattices / "lat.1.gz"]


@pytest.fixture(scope="module")
def four(tmp_path_factory) -> Path:
    """The first four golden utterances (the slower tests decode only these)."""
    ark = tmp_path_factory.mktemp("four") / "four.ark"
    write_mat_ark(ark, None, itertools.islice(read_matrices(LOGLIKES), 4))
    return ark


def test_builtin_jobs_give_the_same_hypotheses(tmp_path, four):
    one = decode_ark(four, GRAPH, MODEL, tmp_path / "nj1", NARROW)
    out = decode_ark(four, GRAPH, MODEL, tmp_path / "nj3", NARROW, nj=3)
    for name in ONE_BEST:
        assert (out / name).read_bytes() == (one / name).read_bytes()
    archives = lattice_archives(out)
    assert [p.name for p in archives] == ["lat.1.gz", "lat.2.gz", "lat.3.gz"]
    assert (out / "num_jobs").read_text() == "3\n"
    per_job = [[utt for utt, _ in read_lattices(p)] for p in archives]
    assert [len(u) for u in per_job] == part_sizes(4, 3) == [2, 1, 1]
    assert {u: lat for p in archives for u, lat in read_lattices(p)} == dict(read_lattices(one / "lat.1.gz"))
    assert not list(out.glob("split.*"))  # the split parts are removed


def test_sweep_reads_every_job_and_a_redecode_clears_old_archives(tmp_path, four):
    out = decode_ark(four, GRAPH, MODEL, tmp_path, NARROW, nj=2)
    hyps = builtin_hypotheses(lattice_archives(out), GRAPH / "words.txt")(10, 0.0)
    assert sorted(hyps) == sorted(u for u, _ in read_matrices(four)) and len(hyps) == 4
    joined = tmp_path / "all.gz"
    concatenate_archives(lattice_archives(out), joined)
    assert dict(read_lattices(joined)) == {u: l for p in lattice_archives(out) for u, l in read_lattices(p)}
    run = decode_and_score(four, GRAPH, MODEL, out, NARROW, use_kaldi=False, save_lattices=False)
    assert run.lattices == () and lattice_archives(out) == []


def test_split_refuses_more_jobs_than_utterances(tmp_path):
    with pytest.raises(DataError, match="10 utterance.* nj = 11"):
        split_loglikes(LOGLIKES, 11, tmp_path)


def test_jobs_on_in_memory_items(tmp_path, four):
    items = list(read_matrices(four))
    one = decode_ark(items, GRAPH, MODEL, tmp_path / "nj1", NARROW, save_lattices=False)
    two = decode_ark(items, GRAPH, MODEL, tmp_path / "nj2", NARROW, save_lattices=False, nj=2)
    assert (two / "hyp.txt").read_bytes() == (one / "hyp.txt").read_bytes()
    assert [len(list(read_matrices(p))) for p in split_loglikes(items, 3, tmp_path / "s")] == [2, 1, 1]


# ---------------------------------------------------------------- one list of latgen options


def test_latgen_opts_script_prints_the_bridge_options(tmp_path):
    """decode_dnn.sh runs this file with any python3 (standard library only)."""
    done = subprocess.run([sys.executable, "-S", str(LATGEN_OPTS), "--acwt", "0.2", "--beam", "15.0",
                           "--word-symbol-table", "g/words.txt"], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == latgen_options(DecodeOptions(acoustic_scale=0.2, beam=15.0), "g/words.txt")
    argv = latgen_command("latgen", "ark:x.ark", Path("g"), Path("m"), tmp_path, DecodeOptions(acoustic_scale=0.2, beam=15.0))
    assert argv[1:9] == done.stdout.splitlines()
    bad = subprocess.run([sys.executable, str(LATGEN_OPTS), "--min-active", "9000", "--word-symbol-table", "w"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "latgen_opts.py: error: need 0 < min_active <= max_active"


def test_latgen_command_of_a_job_without_lattices(tmp_path):
    argv = latgen_command("latgen", "ark:p.ark", Path("g"), Path("m"), tmp_path, DecodeOptions(), job=3,
                          save_lattices=False, one_best_dir=tmp_path / "3")
    assert argv[-3:] == ["ark:/dev/null", f"ark,t:{tmp_path}/3/best_words.txt", f"ark,t:{tmp_path}/3/best_ali.txt"]
    assert latgen_command("latgen", "ark:p.ark", Path("g"), Path("m"), tmp_path, DecodeOptions(), job=3)[-3] == \
        f"ark:|gzip -c > {tmp_path}/lat.3.gz"


# ---------------------------------------------------------------- with Kaldi


def test_kaldi_jobs_give_the_same_hypotheses(kaldi_env, tmp_path, monkeypatch, caplog, four):
    """Real latgen-faster-mapped: nj = 3 gives nj = 1's hypotheses, lat.1..3.gz, and Kaldi's
    lattice-best-path over all three archives gives the same words as over lat.1.gz."""
    for key in ("PATH", "KALDI_ROOT"):
        monkeypatch.setenv(key, kaldi_env[key])
    caplog.set_level(logging.INFO)
    one = decode_and_score(four, GRAPH, MODEL, tmp_path / "nj1", NARROW, use_kaldi=True)
    three = decode_and_score(four, GRAPH, MODEL, tmp_path / "nj3", NARROW, use_kaldi=True, nj=3)
    assert one.decoder == three.decoder == "kaldi" and "3 jobs, lattices" in caplog.text
    for name in ONE_BEST:
        assert (three.out_dir / name).read_bytes() == (one.out_dir / name).read_bytes()
    assert len((one.out_dir / "hyp.txt").read_text().splitlines()) == 4
    assert [p.name for p in three.lattices] == ["lat.1.gz", "lat.2.gz", "lat.3.gz"]
    assert [(three.out_dir / "log" / f"decode.{j}.log").is_file() for j in (1, 2, 3)] == [True] * 3
    words = GRAPH / "words.txt"
    assert kaldi_hypotheses(three.lattices, words, kaldi_env["PATH"])(10, 0.0) == \
        kaldi_hypotheses(one.lattices, words, kaldi_env["PATH"])(10, 0.0)
    none = decode_and_score(four, GRAPH, MODEL, tmp_path / "nolat", NARROW, use_kaldi=True,
                            save_lattices=False, nj=2)
    assert none.lattices == () and (none.out_dir / "hyp.txt").read_bytes() == (one.out_dir / "hyp.txt").read_bytes()
    assert gzip.decompress(one.lattices[0].read_bytes())  # a real archive
