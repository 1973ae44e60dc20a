"""Kaldi tables (ark/scp, int vectors, compressed matrices) and data directories."""
from pytorch_kaldi_snn.io.atomic import atomic_outputs
from pytorch_kaldi_snn.io.tables import (
    as_rspecifier,
    read_double_matrices,
    read_int_vectors,
    read_kaldi_map,
    read_matrices,
    read_tokens,
    mat_ark_writer,
    read_waves,
    write_double_matrices,
    write_int_vectors,
    write_kaldi_map,
    write_mat_ark,
)

__all__ = [
    "as_rspecifier",
    "atomic_outputs",
    "mat_ark_writer",
    "read_double_matrices",
    "read_int_vectors",
    "read_kaldi_map",
    "read_matrices",
    "read_tokens",
    "read_waves",
    "write_double_matrices",
    "write_int_vectors",
    "write_kaldi_map",
    "write_mat_ark",
]
