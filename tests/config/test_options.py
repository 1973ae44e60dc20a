"""Typed option getters: conversion, ranges, choices, defaults, per-layer broadcast, errors."""
import configparser

import pytest

from pytorch_kaldi_snn.config import (
    get_bool,
    get_bool_list,
    get_float,
    get_float_list,
    get_int,
    get_int_list,
    get_str,
    get_str_list,
    per_layer,
)
from pytorch_kaldi_snn.errors import ConfigError


@pytest.fixture
def sec():
    config = configparser.ConfigParser()
    config.read_string("""[arch]
n = 6
f = 0.25
flag = yes
lay = 550, 550
drops = 0.1,0.2
flags = True,false
names = ste,pwl
bad_list = 550,,550
""")
    return config["arch"]


def test_values_convert(sec):
    assert get_int(sec, "n", min=1, max=16) == 6
    assert get_float(sec, "f", min=0.0, max=1.0) == 0.25
    assert get_bool(sec, "flag") is True
    assert get_int_list(sec, "lay", min=1) == [550, 550]
    assert get_float_list(sec, "drops") == [0.1, 0.2]
    assert get_bool_list(sec, "flags") == [True, False]
    assert get_str_list(sec, "names", choices=["ste", "pwl"]) == ["ste", "pwl"]
    assert get_str(sec, "names") == "ste,pwl"


def test_defaults_apply_only_to_missing_keys(sec):
    assert get_int(sec, "missing", default=3) == 3
    assert get_str(sec, "missing", default=None) is None
    with pytest.raises(ConfigError, match=r"\[arch\] missing: missing option missing"):
        get_int(sec, "missing")


@pytest.mark.parametrize("call,words", [
    (lambda s: get_int(s, "n", max=4), ["n = 6", "maximum 4"]),
    (lambda s: get_int(s, "n", min=8), ["n = 6", "minimum 8"]),
    (lambda s: get_int(s, "f"), ["f = '0.25'", "not an integer"]),
    (lambda s: get_float(s, "flag"), ["flag = 'yes'", "not a number"]),
    (lambda s: get_bool(s, "n"), ["n = '6'", "boolean"]),
    (lambda s: get_int_list(s, "drops"), ["'0.1'", "drops = 0.1,0.2"]),
    (lambda s: get_int_list(s, "bad_list"), ["bad_list", "empty item"]),
    (lambda s: get_str_list(s, "names", choices=["ste"]), ["names = 'pwl'", "one of ste"]),
    (lambda s: get_str(s, "names", choices=["a", "b"]), ["names = 'ste,pwl'", "a, b"]),
])
def test_errors_name_section_key_and_value(sec, call, words):
    with pytest.raises(ConfigError) as info:
        call(sec)
    assert info.value.section == "arch"
    for word in words:
        assert word in str(info.value)


def test_nan_is_rejected():
    with pytest.raises(ConfigError, match="not a number"):
        get_float({"x": "nan"}, "x")


def test_per_layer_broadcasts_one_value_and_checks_lengths(sec):
    assert per_layer([0.1], 3, sec, "drops") == [0.1, 0.1, 0.1]
    assert per_layer([1, 2], 2, sec, "lay") == [1, 2]
    with pytest.raises(ConfigError, match="drops = 0.1,0.2 has 2 values but there are 3 layers"):
        per_layer([0.1, 0.2], 3, sec, "drops")


def test_plain_mappings_work_without_a_section_name():
    with pytest.raises(ConfigError) as info:
        get_int({"k": "x"}, "k")
    assert info.value.section is None and info.value.key == "k"
