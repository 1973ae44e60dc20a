"""Experiment data: features and frame labels of a cfg dataset, sequences and padded batches."""
from pytorch_kaldi_snn.data.batching import Batch, Piece, eval_batches, make_batch, train_order
from pytorch_kaldi_snn.data.loading import LoadedSet, label_sizes, load_dataset
from pytorch_kaldi_snn.data.streamed import (
    ChunkPlan, DataSource, eval_plan, open_source, plan_batches, train_plan,
)

__all__ = ["Batch", "ChunkPlan", "DataSource", "LoadedSet", "Piece", "eval_batches",
           "eval_plan", "label_sizes", "load_dataset",
           "make_batch", "open_source", "plan_batches", "train_order", "train_plan"]
