"""benchmarks/bench_recurrence.py's checkpoint mode: a trained spiking model streamed on its own
test utterances, at the sparsity it really has there, against GRU/LSTM cell stacks of its sizes
(speed is not checked: figures live in the benchmark's JSON, never in tests)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from experiment_cfgs import ROOT, TINY, synth_cfg
from pytorch_kaldi_snn import run_exp
from pytorch_kaldi_snn.io import read_kaldi_map


def _bench():
    spec = importlib.util.spec_from_file_location("bench_recurrence",
                                                  ROOT / "benchmarks" / "bench_recurrence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained_v2(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch 2 x 16 v2 experiment on the tiny corpus."""
    tmp = tmp_path_factory.mktemp("bench_ckpt")
    sets = [*TINY, "exp.n_epochs_tr=1", "forward.require_decoding=False",
            f"exp.out_folder={tmp / 'exp'}"]
    assert run_exp.main([str(synth_cfg(tmp, tiny_corpus))]
                        + [a for s in sets for a in ("--set", s)]) == 0
    return tmp / "exp"


def test_checkpoint_mode_streams_the_trained_stack_on_its_test_utterances(trained_v2: Path,
                                                                          tiny_corpus: Path):
    bench = _bench()
    result = bench.checkpoint_streaming(bench.load_stream(str(trained_v2), 2), reps=1)

    trained, feature, layers = bench.trained_stack(trained_v2)
    utterances = bench.real_utterances(trained, feature, 2)
    lengths = read_kaldi_map(tiny_corpus / "data/test/utt2num_frames")
    first_two = sorted(lengths)[:2]
    assert [len(u) for u in utterances] == [int(lengths[u]) for u in first_two]
    assert result["frames"] == sum(int(lengths[u]) for u in first_two)
    assert (result["variant"], result["sizes"], result["utterances"]) == ("v2", [40, 16, 16], 2)
    # the sparsity is the trained model's own on these frames: its dense eval-mode forward's
    stack = nn.Sequential(*layers).eval()
    zeros, total = [0, 0], [0, 0]
    with torch.no_grad():
        for frames in utterances:
            x = frames[:, None, :]
            for index, layer in enumerate(stack):
                x = layer(x)
                zeros[index] += int((x == 0).sum())
                total[index] += x.numel()
    expected = [z / t for z, t in zip(zeros, total)]
    assert result["zero_fraction"] == pytest.approx(expected, abs=0.01)
    assert 0.0 < min(expected) and max(expected) < 1.0  # neither silent nor dense: a real test
    latency = result["stream_seconds_per_frame"]
    assert set(latency) == {"checkpoint", "checkpoint_threads", "checkpoint_no_rows",
                            "zeroing_only", "grucell", "lstmcell"}
    split = result["time_split"]
    assert split["fixed_seconds_per_frame"] + split["rows_seconds_per_frame"] == pytest.approx(
        latency["checkpoint"])
    assert result["ratios"]["v2_stream_vs_grucell"] == latency["checkpoint"] / latency["grucell"]
    assert result["ratios"]["v2_stream_threads_vs_grucell"] == (latency["checkpoint_threads"]
                                                                / latency["grucell"])
    # weight values read per frame: the features' rows, then each layer's non-zero outputs
    # read by the next layer's W and, the frame after, by its own W_r (2 x 16 wide each)
    nonzero = [(1 - z) * result["frames"] * 16 for z in expected]
    reads = (40 * result["frames"] + nonzero[0] + nonzero[0] + nonzero[1]) * 32
    assert result["time_split"]["weights_read_per_frame"] == pytest.approx(
        reads / result["frames"], rel=0.05)


def test_checkpoint_that_is_not_a_finished_experiment_is_one_line(tmp_path: Path, capsys):
    bench = _bench()
    rc = bench.main(["--json", str(tmp_path / "b.json"), "--checkpoint", str(tmp_path),
                     "--streaming-only", "--reps", "0"])
    assert (rc, capsys.readouterr().err) == (
        2, f"bench_recurrence: {tmp_path / 'results.json'}: missing: not a finished experiment "
           f"folder (run ./run_exp.sh first)\n")
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("streaming_only", [False, True])
def test_the_default_run_needs_no_checkpoint(streaming_only: bool, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch):
    """What CI can run: imposed sparsity, no trained model (sizes shrunk to keep it fast)."""
    bench = _bench()
    for name, value in (("T", 6), ("B", 2), ("N", 8)):
        monkeypatch.setattr(bench, name, value)
    out = tmp_path / "bench.json"
    assert bench.main(["--json", str(out), "--reps", "1", "--threads", "1"]
                      + (["--streaming-only"] if streaming_only else [])) == 0
    result = json.loads(out.read_text())
    assert result["stream_sparsity_source"] == "imposed via b"
    assert "checkpoint" not in result
    assert all(z == pytest.approx(0.85, abs=0.1) for z in result["stream_zero_fraction"]["v2"])
    assert ("v2_stream_vs_grucell" in result, "v2_train_vs_gru" in result, "cuda" in result) == (
        True, not streaming_only, not streaming_only)
