"""Parameter counts (paper, Section 2), activity counters and the multiplication cost model."""
import pytest
import torch
from torch import nn

from pytorch_kaldi_snn.layers import (
    GRULayer,
    ImprovedV1Layer,
    ImprovedV2Layer,
    LIFLayer,
    LSTMLayer,
    MLP,
    count_parameters,
    model_report,
    real_frames,
    recurrent_stack,
    reset_counters,
    spiking_stack,
)

M, N = 40, 550
BARE = dict(use_batchnorm=False, bias=False)


@pytest.mark.parametrize("cls,formula", [
    (LIFLayer, M * N),                        # traditional: m·n
    (ImprovedV1Layer, 2 * M * N),             # v1: W_fi, W_ci
    (ImprovedV2Layer, 2 * M * N + 2 * N * N),  # v2: W_fi, W_ci, W_fr, W_cr
    (GRULayer, 3 * (M * N + N * N)),
    (LSTMLayer, 4 * (M * N + N * N)),
])
def test_bias_free_parameter_counts_equal_the_paper(cls, formula):
    layer = cls(M, N, **BARE)
    assert count_parameters(layer) == (formula, formula)


def test_norms_and_learned_decays_are_reported_apart_from_weights():
    layer = LIFLayer(M, N, learn_decay=True)  # BN affine 2n, α and β n each
    assert count_parameters(layer) == (M * N + 4 * N, M * N)


def _sizes_kwargs(n_layers):
    return dict(n_bits=[6] * n_layers, thresholds=[3] * n_layers, surrogates=["ste"] * n_layers,
                alphas=[1.0] * n_layers, dropouts=[0.0] * n_layers, batchnorms=[False] * n_layers)


def test_v2_two_by_550_has_at_most_55_percent_of_the_lstm_parameters():
    v2 = spiking_stack("v2", 40, [550, 550], bias=False, **_sizes_kwargs(2))
    lstm = recurrent_stack("lstm", 40, [550, 550], acts=["tanh"] * 2, dropouts=[0.0] * 2,
                           batchnorms=[False] * 2, layernorms=[False] * 2, bias=False)
    ratio = count_parameters(v2).total / count_parameters(lstm).total
    assert ratio <= 0.55
    assert ratio == pytest.approx(0.5)  # 2(mn+n²) vs 4(mn+n²) per layer


def test_counters_fill_in_eval_only_and_reset():
    torch.manual_seed(0)
    layer = ImprovedV2Layer(6, 5)
    x = torch.randn(8, 3, 6)
    layer(x)
    assert layer.total_out.item() == 0
    layer.eval()
    y = layer(x)
    assert layer.total_out.item() == y.numel()
    assert layer.zeros_out.item() == (y == 0).sum().item()
    assert layer.in_nonzero.item() == x.numel() and layer.frames.item() == 24
    layer.reset_counters()
    assert layer.total_out.item() == 0 and layer.frames.item() == 0


def test_forward_returns_only_the_output_tensor():
    layer = ImprovedV1Layer(6, 5).eval()
    assert isinstance(layer(torch.randn(4, 2, 6)), torch.Tensor)


def _fill(layer, x_nonzero, x_total, y_zero, y_total):
    layer.in_nonzero.fill_(x_nonzero)
    layer.in_total.fill_(x_total)
    layer.zeros_out.fill_(y_zero)
    layer.total_out.fill_(y_total)


def test_mults_per_frame_formulas():
    m, n = 10, 8
    for cls, cost in [
        (LIFLayer, lambda s, r: n + s * m * n + 3 * n),                       # Eq. 10
        (ImprovedV1Layer, lambda s, r: 2 * s * m * n + 2 * n + 3 * n),
        (ImprovedV2Layer, lambda s, r: 2 * s * m * n + 2 * r * n * n + 2 * n + 3 * n),
        (GRULayer, lambda s, r: 3 * n + 3 * (m + n) * n),
        (LSTMLayer, lambda s, r: 3 * n + 4 * (m + n) * n),
    ]:
        layer = cls(m, n)
        _fill(layer, 25, 100, 60, 100)  # input density s = 0.25, own output density r = 0.4
        assert layer.mults_per_frame() == pytest.approx(cost(0.25, 0.4)), cls.__name__


def _model(kind):
    if kind in ("traditional", "v1", "v2"):
        body = spiking_stack(kind, 12, [16, 16], **_sizes_kwargs(2))
    else:
        body = recurrent_stack(kind, 12, [16, 16], acts=["tanh"] * 2, dropouts=[0.0] * 2,
                               batchnorms=[True] * 2, layernorms=[False] * 2)
    readout = MLP(16, [7], acts=["softmax"], dropouts=[0.0], batchnorms=[False],
                  layernorms=[False])
    return nn.Sequential(body, readout)


def test_model_report_gives_table_1_columns_for_any_model():
    torch.manual_seed(0)
    reports = {}
    for kind in ("lstm", "gru", "traditional", "v1", "v2"):
        model = _model(kind)
        model(torch.randn(20, 4, 12))  # one training pass sets b
        model.eval()
        with torch.no_grad():
            model(torch.randn(20, 4, 12))
        reports[kind] = model_report(model)
    lstm, gru = reports["lstm"], reports["gru"]
    assert lstm.ratio_vs_lstm == pytest.approx(1.0)
    assert gru.ratio_vs_lstm == pytest.approx(gru.gru_mults_per_frame / gru.lstm_mults_per_frame)
    assert lstm.zero_output_pct < 1.0
    for kind in ("traditional", "v1", "v2"):
        report = reports[kind]
        assert report.zero_output_pct > 0.0
        assert report.ratio_vs_lstm < 1.0
        assert [row.kind for row in report.layers] == [f"snn_{kind}" if kind != "traditional"
                                                      else "snn_traditional"] * 2 + ["mlp"]
        assert report.layers[0].frames == 80
        # the second layer's input density is the first layer's non-zero output fraction
        first, second = report.layers[0], report.layers[1]
        assert second.input_density == pytest.approx(1 - first.zero_output_pct / 100)
    assert set(reports["v2"].as_dict()) >= {"params_total", "zero_output_pct", "ratio_vs_lstm",
                                             "ratio_vs_gru", "mults_per_frame", "layers"}


def test_reset_counters_walks_the_model():
    model = _model("v1").eval()
    model(torch.randn(5, 2, 12))
    reset_counters(model)
    assert model_report(model).layers[0].frames == 0


@pytest.mark.parametrize("kind", ["traditional", "v2", "lstm"])
def test_counters_over_real_frames_match_unpadded_batch_one_evaluation(kind):
    """A batch padded to 2.5x its real frames reports what batch-1 evaluation reports."""
    torch.manual_seed(0)
    model = _model(kind)
    model(torch.randn(20, 4, 12))  # one training pass sets b and the BN statistics
    model.eval()
    lengths = [3, 20, 5, 4]
    utts = [torch.randn(n, 1, 12) for n in lengths]
    with torch.no_grad():
        for utt in utts:
            model(utt)
        alone = model_report(model)
        padded = torch.zeros(max(lengths), len(lengths), 12)
        mask = torch.zeros(max(lengths), len(lengths), dtype=torch.bool)
        for b, utt in enumerate(utts):
            padded[:len(utt), b] = utt[:, 0]
            mask[:len(utt), b] = True
        reset_counters(model)
        with real_frames(model, mask):
            model(padded)
        batched = model_report(model)
        reset_counters(model)
        model(padded)
        unmasked = model_report(model)
    assert batched.layers[0].frames == sum(lengths)
    for a, b in zip(alone.layers, batched.layers):
        assert (a.frames, a.input_density) == (b.frames, pytest.approx(b.input_density))
        assert a.zero_output_pct == pytest.approx(b.zero_output_pct)
    assert batched.mults_per_frame == pytest.approx(alone.mults_per_frame)
    assert batched.zero_output_pct == pytest.approx(alone.zero_output_pct)
    # without the mask the padding moves the figures (the bug this guards against)
    assert unmasked.layers[0].input_density != pytest.approx(alone.layers[0].input_density)
