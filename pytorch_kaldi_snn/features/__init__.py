"""Kaldi-compatible features: extraction, CMVN/deltas/splicing, PyTorch-Kaldi fea_opts pipes."""
from pytorch_kaldi_snn.features.extract import FeatsLayout, FeatureConf, compute_features, make_feats
from pytorch_kaldi_snn.features.pipes import kaldi_featbin, parse_fea_opts, read_features
from pytorch_kaldi_snn.features.transforms import (
    add_deltas,
    apply_cmvn,
    compute_cmvn_stats,
    speaker_cmvn_stats,
    splice_feats,
)

__all__ = [
    "FeatsLayout",
    "FeatureConf",
    "add_deltas",
    "apply_cmvn",
    "compute_cmvn_stats",
    "compute_features",
    "kaldi_featbin",
    "make_feats",
    "parse_fea_opts",
    "read_features",
    "speaker_cmvn_stats",
    "splice_feats",
]
