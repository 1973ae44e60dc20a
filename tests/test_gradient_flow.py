"""Gradient-flow diagnostic (Eq. 11-15): files written, traditional gradient below v2's at 200."""
import csv
import json

import pytest

from pytorch_kaldi_snn.diagnostics import gradient_flow

SMALL = ["--steps", "210", "--batch", "4", "--hidden-size", "32", "--input-size", "20"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    assert gradient_flow.main(["--out", str(out)] + SMALL) == 0
    return out


def test_writes_png_json_and_csv(outputs):
    assert (outputs / "gradient_flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((outputs / "gradient_flow.json").read_text())
    assert data["settings"]["steps"] == 210
    assert set(data["grad_norm"]) == {"traditional", "v1", "v2", "v1_forget_bias_0",
                                      "v2_forget_bias_0", "lstm", "gru"}
    rows = list(csv.reader((outputs / "gradient_flow.csv").open()))
    assert rows[0][0] == "distance" and len(rows) == 211


def test_traditional_gradient_at_200_is_smaller_than_v2(outputs):
    norms = json.loads((outputs / "gradient_flow.json").read_text())["grad_norm"]
    assert norms["traditional"][200] < norms["v2"][200]
    assert norms["traditional"][200] < 1e-6 * norms["traditional"][0]  # ~β^200 decay (Eq. 15)


def test_traditional_decay_follows_beta_through_the_current(outputs):
    norms = json.loads((outputs / "gradient_flow.json").read_text())["grad_norm"]["traditional"]
    # with α = 1 and the straight-through surrogate the membrane path carries nothing back
    # (P[n] = α − 1 = 0 in Eq. 13), so only Eq. 15's β^(N−n) remains
    assert norms[150] / norms[100] == pytest.approx(0.9 ** 50, rel=1e-3)
