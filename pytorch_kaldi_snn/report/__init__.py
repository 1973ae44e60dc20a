"""The experiment report: results.json, a results.md table and PNG plots."""
from pytorch_kaldi_snn.report.plots import plot_learning_curves, plot_layer_sparsity
from pytorch_kaldi_snn.report.results import (
    RESULT_KEYS, results_dict, scored_rate, write_results,
)

__all__ = ["RESULT_KEYS", "plot_layer_sparsity", "plot_learning_curves",
           "results_dict", "scored_rate", "write_results"]
