"""Configuration: typed option getters for cfg sections of strings (the only cfg-value parser)."""
from pytorch_kaldi_snn.config.options import (
    REQUIRED,
    get_bool,
    get_bool_list,
    get_float,
    get_float_list,
    get_int,
    get_int_list,
    get_str,
    get_str_list,
    per_layer,
    section_name,
)

__all__ = [
    "REQUIRED", "get_bool", "get_bool_list", "get_float", "get_float_list", "get_int",
    "get_int_list", "get_str", "get_str_list", "per_layer", "section_name",
]
