"""Tables and plots read each run's own error rate: PER on a phone graph, WER on a word graph."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytorch_kaldi_snn.report.results import _markdown, scored_rate
from pytorch_kaldi_snn.scoring.decoded import DecodeResult, Score, is_phone_graph
from pytorch_kaldi_snn.study import Point, summarise, table1_markdown
from pytorch_kaldi_snn.sweep import accuracy_lines, plot_accuracy, sweep_row


def _results(metric: str, rate: float, frame_acc: float = 50.0) -> dict:
    """A results.json as run_exp writes it after decoding over a ``metric`` graph."""
    decoded = DecodeResult("builtin", _score(metric, rate))
    return {"arch": "ImprovedSNNv2", "frame_acc": frame_acc, "zero_outputs_pct": 70.0,
            "zero_outputs_pct_per_layer": {"nets.snn_layers.net.0": 70.0,
                                                              "nets.snn_layers.net.1": 60.0}, "mults_per_frame": 1e5,
            "mults_vs_lstm": 0.2, "mults_vs_gru": 0.25, "params": 1000, "decoder": "builtin",
            "epochs": 1, "wall_s": 1.0, "per": decoded.per, **decoded.results_fields()}


def _score(metric: str, rate: float, **changed) -> Score:
    """A 1-best-only score (no sweep) of ``rate`` on a ``metric`` graph."""
    fields = dict(metric=metric, error_rate=rate, ins=1, dels=2, subs=3, ref_tokens=40,
                  scored_on="1-best at acwt 0.2 (save_lattices = False: no LM-weight sweep)",
                  rescoring=None, decode_mbr=None, best_lmwt=None, best_wip=None, sweep=[],
                  one_best_acwt=0.2, one_best_error_rate=rate, hyp="d/hyp.txt",
                  decode_dir="exp/decode_test")
    return Score(**{**fields, **changed})


def test_decode_json_keeps_its_keys_in_order_and_reads_back():
    """decode.json and results.json's ``decoding`` are what users read: the typed result writes
    the keys (and order) the dicts had, and a written file reads back to the same result."""
    one_best = DecodeResult("builtin", _score("PER", 15.0))
    assert list(one_best.to_json()) == [
        "metric", "error_rate", "decoder", "scored_on", "rescoring", "best_lmwt", "best_wip", "ins",
        "del", "sub", "ref_tokens", "sweep", "one_best_acwt", "one_best_error_rate", "hyp",
        "decode_dir"]
    swept = DecodeResult("kaldi", _score("WER", 12.5, rescoring="kaldi", decode_mbr=False,
                                         best_lmwt=7, best_wip=0.5, sweep=[{"lmwt": 7}]))
    assert list(swept.to_json())[4:7] == ["rescoring", "decode_mbr", "best_lmwt"]
    assert DecodeResult("none").to_json() == {"metric": None, "error_rate": None, "decoder": "none"}
    for result in (one_best, swept, DecodeResult("none"), DecodeResult("builtin")):
        assert DecodeResult.from_json({**result.to_json(), "cfg": "[exp]"}) == result
    assert (one_best.per, swept.per, swept.results_fields()["wer"]) == (15.0, None, 12.5)
    assert swept.results_fields()["decoding"]["del"] == 2


# decode.json files as the hand-written to_json wrote them (keys, order, the omitted decode_mbr)
_ONE_BEST_JSON = {
    "metric": "PER", "error_rate": 15.0, "decoder": "builtin", "scored_on": "1-best at acwt 0.2",
    "rescoring": None, "best_lmwt": None, "best_wip": None, "ins": 1, "del": 2, "sub": 3,
    "ref_tokens": 40, "sweep": [], "one_best_acwt": 0.2, "one_best_error_rate": 15.0,
    "hyp": "d/hyp.txt", "decode_dir": "exp/decode_test"}
_SWEPT_JSON = {
    "metric": "WER", "error_rate": 12.5, "decoder": "kaldi", "scored_on": "best of the sweep",
    "rescoring": "kaldi", "decode_mbr": True, "best_lmwt": 7, "best_wip": 0.5, "ins": 4, "del": 5,
    "sub": 6, "ref_tokens": 120, "sweep": [{"lmwt": 7, "wip": 0.5, "error_rate": 12.5}],
    "one_best_acwt": 0.1, "one_best_error_rate": 13.0, "hyp": "h.txt", "decode_dir": "exp/d"}


def test_decode_json_written_before_reads_and_writes_back_unchanged():
    """The fields-driven to_json/from_json keep the hand-written format: an old decode.json reads
    into the right fields and writes back byte for byte (keys, order, ``del``/``sub``, and
    ``decode_mbr`` only where there was a sweep); a file missing a key still fails loudly."""
    for written in (_ONE_BEST_JSON, _SWEPT_JSON):
        result = DecodeResult.from_json(written)
        assert json.dumps(result.to_json()) == json.dumps(written)
    swept = DecodeResult.from_json(_SWEPT_JSON).score
    assert (swept.dels, swept.subs, swept.decode_mbr, swept.best_lmwt) == (5, 6, True, 7)
    assert DecodeResult.from_json(_ONE_BEST_JSON).score.decode_mbr is None
    with pytest.raises(KeyError, match="'sub'"):
        DecodeResult.from_json({k: v for k, v in _SWEPT_JSON.items() if k != "sub"})


def test_one_function_says_whether_a_graph_is_of_phones(tmp_path: Path):
    (tmp_path / "phones.txt").write_text("<eps> 0\nsil_B 1\naa 2\n#0 3\n")
    (tmp_path / "words.txt").write_text("<eps> 0\nsil 1\naa 2\n#0 3\n")
    assert is_phone_graph(tmp_path)
    (tmp_path / "words.txt").write_text("<eps> 0\nsil 1\ncat 2\n#0 3\n")
    assert not is_phone_graph(tmp_path)
    (tmp_path / "phones.txt").unlink()
    assert not is_phone_graph(tmp_path)


def test_scored_rate_names_the_metric():
    assert scored_rate(_results("WER", 31.5)) == ("WER", 31.5)
    assert scored_rate(_results("PER", 18.0)) == ("PER", 18.0)
    assert scored_rate({"per": 20.0, "wer": None}) == ("PER", 20.0)  # written before `metric`
    assert "| WER % |" in _markdown(_results("WER", 31.5)).splitlines()[0]


def test_results_md_names_layers_as_the_cfg_does_and_says_what_wall_time_covers():
    text = _markdown(_results("PER", 18.0))
    assert "| snn_layers layer 1 | 70.00 |\n| snn_layers layer 2 | 60.00 |" in text
    assert "nets." not in text
    assert ("wall s: this run from reading the data to scoring, plus the training time of the "
            "interrupted runs it resumed (corpus preparation not included).") in text


def test_sweep_of_a_word_graph_plots_its_wer(tmp_path: Path):
    axes = [("architecture1.snn_n_bits", ["1", "3"])]
    rows = [sweep_row((("architecture1.snn_n_bits", "1"),), _results("WER", 60.0)),
            sweep_row((("architecture1.snn_n_bits", "3"),), _results("WER", 40.0))]
    assert [(r["metric"], r["error_rate"]) for r in rows] == [("WER", 60.0), ("WER", 40.0)]
    assert accuracy_lines(rows, axes) == {"": [("1", 40.0), ("3", 60.0)]}
    plot_accuracy(rows, axes, tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").stat().st_size > 0


def test_unscored_points_are_left_out_of_the_accuracy_line():
    axes = [("architecture1.snn_n_bits", ["1", "3"])]
    rows = [sweep_row((("architecture1.snn_n_bits", "1"),), _results("WER", 60.0)),
            sweep_row((("architecture1.snn_n_bits", "3"),),
                      {**_results("WER", 0.0), "metric": None, "per": None, "wer": None})]
    assert accuracy_lines(rows, axes) == {"": [("1", 40.0)]}


def test_study_table_of_word_graph_runs_reports_wer():
    point = Point("v2", 6, 4, 16)
    row = summarise(point, [_results("WER", 30.0), _results("WER", 34.0)])
    assert (row["metric"], row["error_rate"], row["accuracy"]) == ("WER", 32.0, 68.0)
    table = table1_markdown([row]).splitlines()
    assert "| 100 - WER % |" in table[0]
    assert table[2].startswith("| v2 | 6-bit | b/16 | 68.00 ± 2.83 |")
