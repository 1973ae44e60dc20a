"""config/architectures.py: cfg strings → the typed options the layer code defines, once; the
proto files state the same types, ranges and choices."""
from __future__ import annotations

import configparser
import math
import re

import pytest

from pytorch_kaldi_snn import neural_networks
from pytorch_kaldi_snn.config.architectures import (
    ARCHITECTURES, SNN_KEYS, SpikingSpec, StackSpec, spiking_spec, stack_spec,
)
from pytorch_kaldi_snn.config.registry import PROTO_DIR
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.neurons.variants import neuron

SPIKING = {"TraditionalSNN": "traditional", "ImprovedSNNv1": "v1", "ImprovedSNNv2": "v2"}
_FIELD = re.compile(r"^(int|float|bool|str)(_list)?(?:\(([^,]+),([^)]+)\))?$|^\{(.*)\}$")


def _proto(arch_class: str) -> configparser.SectionProxy:
    proto = configparser.ConfigParser(interpolation=None)
    proto.read(PROTO_DIR / f"{arch_class}.proto")
    return proto["proto"]


def _bound(value):
    return None if value is None or math.isinf(value) else value


@pytest.mark.parametrize("arch_class,variant", sorted(SPIKING.items()))
def test_proto_fields_state_the_neuron_options_types_ranges_and_choices(arch_class, variant):
    """A default, range or choice lives in neurons/options.py; the proto says the same."""
    family = neuron(variant).options
    proto = _proto(arch_class)
    for name in (n for n in family.names() if n in SNN_KEYS):
        key, listed = SNN_KEYS[name]
        kind, is_list, lo, hi, choices = _FIELD.match(proto[key]).groups()
        if choices is not None:
            assert tuple(choices.split(",")) == tuple(family.choices(name)), key
            continue
        default = family.default(name)
        expected = {bool: "bool", int: "int", float: "float", str: "str"}[type(default)]
        assert (kind, bool(is_list)) == (expected, listed), key
        if lo is not None:
            assert (_bound(float(lo)), _bound(float(hi))) == family.bounds(name), key


def test_every_class_of_the_library_is_read_by_config_and_back():
    classes = [n for n, obj in vars(neural_networks).items() if isinstance(obj, type)
               and obj.__module__ == neural_networks.__name__ and not n.startswith("_")]
    assert classes == list(ARCHITECTURES)
    assert sorted(p.stem for p in PROTO_DIR.glob("*.proto")) == sorted(ARCHITECTURES)


def test_options_are_parsed_once_into_typed_specs_with_named_widths():
    spec = spiking_spec("v2", {"snn_lay": "8,N_out_lab_cd", "snn_n_bits": "3,4",
                               "snn_impl": "loop"})
    assert isinstance(spec, SpikingSpec) and spec.sizes == (8, "N_out_lab_cd")
    assert [(o.n_bits, o.impl) for o in spec.layers] == [(3, "loop"), (4, "loop")]
    assert spec.sized({"lab_cd": 57}).sizes == (8, 57)
    mlp = stack_spec("dnn", {"dnn_lay": "N_out_lab_mono"})
    assert isinstance(mlp, StackSpec) and (mlp.acts, mlp.batchnorms) == (("softmax",), (False,))


def test_the_same_spec_builds_the_class_and_a_width_left_unknown_is_named():
    spec = ARCHITECTURES["MLP"]({"dnn_lay": "N_out_lab_cd"})
    assert neural_networks.MLP(spec.sized({"lab_cd": 5}), 3).out_dim == 5
    with pytest.raises(ConfigError) as err:
        neural_networks.MLP(spec, 3)
    assert str(err.value) == "dnn_lay: N_out_lab_cd is not known here: give the width as a number"


def test_a_neuron_check_is_worded_by_cfg_key():
    with pytest.raises(ConfigError) as err:
        spiking_spec("v1", {"snn_lay": "4", "snn_n_bits": "2", "snn_threshold": "5"})
    assert str(err.value) == "snn_threshold: snn_threshold = 5 is above 2^N - 1 = 3 for snn_n_bits = 2"
