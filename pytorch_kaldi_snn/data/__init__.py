"""Experiment data: features and frame labels of a cfg dataset, sequences and padded batches."""
from pytorch_kaldi_snn.data.batching import Batch, Piece, eval_batches, make_batch, train_order
from pytorch_kaldi_snn.data.loading import LoadedSet, label_sizes, load_dataset

__all__ = ["Batch", "LoadedSet", "Piece", "eval_batches", "label_sizes", "load_dataset",
           "make_batch", "train_order"]
