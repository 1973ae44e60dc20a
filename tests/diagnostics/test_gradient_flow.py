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


CHECKPOINT_CFG = """[exp]
out_folder = exp/v2
seed = 1
n_epochs_tr = 1

[architecture1]
arch_name = snn_layers
arch_class = ImprovedSNNv2
arch_seq_model = True
snn_lay = 12,10
snn_drop = 0.0
snn_impl = loop
arch_lr = 0.001
arch_opt = adam

[architecture2]
arch_name = readout
arch_class = MLP
arch_seq_model = False
dnn_lay = 5
arch_lr = 0.001
arch_opt = adam
"""


def test_checkpoint_of_a_trained_stack_is_measured_with_its_own_weights(tmp_path):
    import torch

    from pytorch_kaldi_snn.neural_networks import ImprovedSNNv2
    from pytorch_kaldi_snn.train.checkpoint import save_torch

    torch.manual_seed(0)
    stack = ImprovedSNNv2({"snn_lay": "12,10", "snn_drop": "0.0", "snn_impl": "loop"}, 7)
    for _ in range(3):  # "training": weights, BN statistics and b move away from a fresh init
        stack(torch.randn(30, 4, 7)).pow(2).mean().backward()
        with torch.no_grad():
            for p in stack.parameters():
                p -= 0.5 * p.grad
                p.grad = None
    model = {f"nets.snn_layers.{k}": v for k, v in stack.state_dict().items()}
    model["nets.readout.net.0.linear.weight"] = torch.zeros(5, 10)
    folder = tmp_path / "exp_v2"
    save_torch(folder / "checkpoint.pt", {"cfg_text": CHECKPOINT_CFG, "model": model})
    out = tmp_path / "flow"
    assert gradient_flow.main(["--out", str(out), "--steps", "40", "--batch", "2",
                               "--checkpoint", str(folder)]) == 0
    norms = json.loads((out / "gradient_flow.json").read_text())["grad_norm"]
    assert list(norms) == [f"{folder}:snn_layers"]
    torch.manual_seed(0)  # the diagnostic's input: seed, then N(0, 1) of (steps, batch, inputs)
    expected = gradient_flow.eval_gradient_norms(stack, torch.randn(40, 2, 7))
    assert norms[f"{folder}:snn_layers"] == pytest.approx(expected.tolist(), rel=1e-6)
    torch.manual_seed(0)
    fresh = ImprovedSNNv2({"snn_lay": "12,10", "snn_drop": "0.0", "snn_impl": "loop"}, 7)
    torch.manual_seed(0)
    assert gradient_flow.eval_gradient_norms(fresh, torch.randn(40, 2, 7))[0] != expected[0]


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert gradient_flow.main(["--out", str(tmp_path), "--checkpoint", str(tmp_path / "x")]) == 2
    missing = tmp_path / "x" / "checkpoint.pt"
    assert capsys.readouterr().err == (f"gradient_flow: {missing}: no checkpoint "
                                       f"(run run_exp first)\n")
