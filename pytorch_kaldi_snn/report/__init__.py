"""The experiment report: results.json, a results.md table and PNG plots."""
from pytorch_kaldi_snn.report.plots import plot_learning_curves, plot_layer_sparsity
from pytorch_kaldi_snn.report.results import (
    NOT_DECODED, RESULT_KEYS, results_dict, scored_fields, scored_rate, write_results,
)

__all__ = ["NOT_DECODED", "RESULT_KEYS", "plot_layer_sparsity", "plot_learning_curves",
           "results_dict", "scored_fields", "scored_rate", "write_results"]
