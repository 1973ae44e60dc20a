"""Decoding: Kaldi transition models, HCLG graphs, the built-in decoder, lattices, priors, Kaldi bridge.

Import order matters for the pip Kaldi ports; every submodule goes through
:mod:`pytorch_kaldi_snn.kaldi_ports`.
"""
from pytorch_kaldi_snn.decoding.decoder import (
    DecodeOptions,
    Hypothesis,
    decode_ark,
    decode_utterance,
    mapped_scores,
    write_hyp_text,
)
from pytorch_kaldi_snn.decoding.graph import load_graph
from pytorch_kaldi_snn.decoding.kaldi_bridge import DecodeRun, decode_and_score, latgen_command
from pytorch_kaldi_snn.io.lattice import (
    CompactArc,
    CompactLattice,
    CompactWeight,
    best_path,
    read_lattices,
    write_lattices,
)
from pytorch_kaldi_snn.decoding.priors import log_priors, pdf_counts, read_counts, write_counts
from pytorch_kaldi_snn.decoding.transition_model import TransitionModel, read_transition_model

__all__ = [
    "CompactArc",
    "CompactLattice",
    "CompactWeight",
    "DecodeOptions",
    "DecodeRun",
    "Hypothesis",
    "TransitionModel",
    "best_path",
    "decode_and_score",
    "decode_ark",
    "decode_utterance",
    "latgen_command",
    "load_graph",
    "log_priors",
    "mapped_scores",
    "pdf_counts",
    "read_counts",
    "read_lattices",
    "read_transition_model",
    "write_counts",
    "write_hyp_text",
    "write_lattices",
]
