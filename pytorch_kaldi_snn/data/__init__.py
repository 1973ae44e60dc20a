"""Experiment data: features and frame labels of a cfg dataset, sequences and padded batches."""
from pytorch_kaldi_snn.data.batching import Batch, Piece, make_batch
from pytorch_kaldi_snn.data.loading import label_sizes
from pytorch_kaldi_snn.data.streamed import (
    ChunkPlan, DataSource, eval_plan, open_source, plan_batches, train_plan,
)

__all__ = ["Batch", "ChunkPlan", "DataSource", "Piece", "eval_plan", "label_sizes",
           "make_batch", "open_source", "plan_batches", "train_plan"]
