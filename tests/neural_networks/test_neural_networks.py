"""PyTorch-Kaldi contract: classes loaded by module name from a section of strings."""
import configparser
import importlib
from pathlib import Path

import pytest
import torch

import pytorch_kaldi_snn
from pytorch_kaldi_snn.errors import ConfigError

PROTO_DIR = Path(pytorch_kaldi_snn.__file__).parent / "proto"

SNN_OPTIONS = """
snn_lay = 16,12
snn_drop = 0.1
snn_use_batchnorm = True,True
snn_n_bits = 6
snn_threshold = 3
snn_surrogate = ste,pwl
snn_alpha = 1.0
snn_learn_decay = False
snn_reset = output
snn_ema_momentum = 0.1
snn_b_init = 1.0
snn_impl = loop
snn_reading = paper
"""

SECTIONS = {
    "TraditionalSNN": SNN_OPTIONS + "snn_beta = 0.9\n",
    "ImprovedSNNv1": SNN_OPTIONS + "snn_forget_bias = 0.0\n",
    "ImprovedSNNv2": SNN_OPTIONS + "snn_forget_bias = 0.0\nsnn_orthinit = True\n",
}
for _kind in ("lstm", "gru"):
    SECTIONS["Uni" + _kind.upper()] = f"""
{_kind}_lay = 16,12
{_kind}_drop = 0.1,0.1
{_kind}_use_laynorm_inp = False
{_kind}_use_batchnorm_inp = False
{_kind}_use_laynorm = False,False
{_kind}_use_batchnorm = True,True
{_kind}_bidir = False
{_kind}_act = tanh,tanh
{_kind}_orthinit = True
"""
SECTIONS["MLP"] = """
dnn_lay = 9
dnn_drop = 0.0
dnn_use_laynorm_inp = False
dnn_use_batchnorm_inp = False
dnn_use_batchnorm = False
dnn_use_laynorm = False
dnn_act = softmax
"""


def section(class_name, **overrides):
    """A configparser section as upstream's model_init hands it over (strings, plus use_cuda/to_do)."""
    config = configparser.ConfigParser()
    config.read_string(f"[architecture1]\narch_class = {class_name}\n" + SECTIONS[class_name])
    config["architecture1"]["use_cuda"] = "False"
    config["architecture1"]["to_do"] = "train"
    for key, value in overrides.items():
        config["architecture1"][key] = value
    return config["architecture1"]


def build(class_name, inp_dim=10, **overrides):
    module = importlib.import_module("pytorch_kaldi_snn.neural_networks")
    return getattr(module, class_name)(section(class_name, **overrides), inp_dim)


@pytest.mark.parametrize("class_name", list(SECTIONS))
def test_forward_backward_on_time_major_input(class_name):
    torch.manual_seed(0)
    net = build(class_name)
    x = torch.randn(7, 3, 10, requires_grad=True)
    out = net(x)
    assert isinstance(out, torch.Tensor)
    expected = (21, 9) if class_name == "MLP" else (7, 3, 12)
    assert tuple(out.shape) == expected and net.out_dim == expected[-1]
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("class_name", list(SECTIONS))
def test_state_survives_rebuild_and_load_state_dict(class_name):
    torch.manual_seed(0)
    net = build(class_name)
    for _ in range(2):
        net(torch.randn(5, 2, 10))  # training passes move BN statistics and b
    net.eval()
    x = torch.randn(5, 2, 10)
    expected = net(x)
    rebuilt = build(class_name)  # upstream rebuilds the model for every chunk
    rebuilt.load_state_dict(net.state_dict())
    rebuilt.eval()
    assert torch.equal(rebuilt(x), expected)


def test_b_buffers_are_in_the_state_dict():
    state = build("ImprovedSNNv2").state_dict()
    for key in ("net.0.tracker.b", "net.0.tracker.b_biased", "net.0.tracker.b_steps",
                "net.1.tracker.b", "net.0.zeros_out", "net.0.alpha"):
        assert key in state


def test_mlp_accepts_flat_frames():
    assert build("MLP")(torch.randn(8, 10)).shape == (8, 9)
    log_probs = build("MLP")(torch.randn(8, 10))
    assert torch.allclose(log_probs.exp().sum(dim=1), torch.ones(8), atol=1e-5)


def test_every_class_ships_a_proto_with_its_options():
    for class_name, body in SECTIONS.items():
        proto = configparser.ConfigParser()
        proto.read(PROTO_DIR / f"{class_name}.proto")
        cfg = configparser.ConfigParser()
        cfg.read_string("[s]\n" + body)
        assert set(proto["proto"]) == set(cfg["s"]), class_name


def _check_upstream_style(value, type_spec):
    """The checks PyTorch-Kaldi's check_field applies to one typed proto field."""
    if type_spec.startswith("{"):
        return value in type_spec[1:-1].split(",")
    if type_spec in ("bool", "bool_list"):
        return all(v in {"True", "true", "1", "False", "false", "0"} for v in value.split(","))
    for kind, cast in (("int_list(", int), ("float_list(", float), ("int(", int),
                       ("float(", float)):
        if type_spec.startswith(kind):
            low, high = type_spec[len(kind):-1].split(",")
            for item in value.split(","):
                number = cast(item)
                if low != "-inf" and number < cast(low) or high != "inf" and number > cast(high):
                    return False
            return True
    return type_spec in ("str", "str_list")


def test_example_sections_pass_the_proto_types():
    for class_name, body in SECTIONS.items():
        proto = configparser.ConfigParser()
        proto.read(PROTO_DIR / f"{class_name}.proto")
        cfg = configparser.ConfigParser()
        cfg.read_string("[s]\n" + body)
        for key, spec in proto["proto"].items():
            assert _check_upstream_style(cfg["s"][key], spec), (class_name, key, spec)


@pytest.mark.parametrize("class_name,key,value,words", [
    ("ImprovedSNNv2", "snn_n_bits", "0", ["snn_n_bits", "0"]),
    ("ImprovedSNNv2", "snn_n_bits", "17", ["snn_n_bits", "17"]),
    ("ImprovedSNNv2", "snn_lay", "550,abc", ["snn_lay", "abc"]),
    ("ImprovedSNNv2", "snn_drop", "0.1,0.1,0.1", ["snn_drop", "3 values", "2 layers"]),
    ("TraditionalSNN", "snn_beta", "0.9,0.8,0.7", ["snn_beta", "0.9,0.8,0.7"]),
    ("ImprovedSNNv1", "snn_threshold", "64", ["snn_threshold", "64"]),
    ("ImprovedSNNv1", "snn_surrogate", "atan", ["snn_surrogate", "atan", "fast_sigmoid"]),
    ("ImprovedSNNv1", "snn_use_batchnorm", "maybe", ["snn_use_batchnorm", "maybe"]),
    ("ImprovedSNNv1", "snn_reset", "zero", ["snn_reset", "zero"]),
    ("ImprovedSNNv1", "snn_ema_momentum", "0", ["snn_ema_momentum", "0"]),
    ("UniLSTM", "lstm_bidir", "True", ["lstm_bidir", "True"]),
    ("UniGRU", "gru_act", "tanh,swish", ["gru_act", "swish"]),
    ("UniGRU", "gru_lay", "", ["gru_lay"]),
    ("MLP", "dnn_lay", "N_out_lab_cd", ["dnn_lay", "N_out_lab_cd"]),
])
def test_bad_values_raise_config_error_naming_option_and_value(class_name, key, value, words):
    with pytest.raises(ConfigError) as info:
        build(class_name, **{key: value})
    message = str(info.value)
    assert "[architecture1]" in message
    for word in words:
        assert word in message


def test_optional_options_take_documented_defaults():
    config = configparser.ConfigParser()
    config.read_string("[architecture1]\nsnn_lay = 8\n")
    from pytorch_kaldi_snn.neural_networks import ImprovedSNNv2

    layer = ImprovedSNNv2(config["architecture1"], 5).net[0]
    assert (layer.n_bits, layer.k, layer.surrogate, layer.impl) == (6, 4, "ste", "fused")
    assert layer.projection.batchnorm is not None and layer.dropout == 0.0
