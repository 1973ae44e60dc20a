"""The ``[model]`` language runs from one table, the one the cfg reader checks against."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pytorch_kaldi_snn.config import model_language
from pytorch_kaldi_snn.config.model_language import ModelSpec, Operation
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.train import acoustic_model
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel


def _model(*operations: Operation) -> AcousticModel:
    exp = SimpleNamespace(model=ModelSpec(operations), exp=SimpleNamespace(precision="float32"),
                          architectures={})
    return AcousticModel(exp, {}, {"fea": 3, "fea2": 2})


def test_the_runner_has_a_row_for_every_operation_the_reader_accepts():
    assert list(acoustic_model.OPERATIONS) == list(model_language.OPERATIONS)


def test_an_unknown_operation_is_refused_by_name_not_run_as_another():
    """Before, any operation the runner did not know fell through to torch.cat."""
    with pytest.raises(ConfigError) as err:
        _model(Operation("out", "softmax", ("fea", "fea2")))
    assert str(err.value) == ("[model] model: unknown operation 'softmax' (known: compute, "
                              "cost_nll, cost_err, sum, mult_constant, concatenate)")


def test_operations_run_from_the_table():
    model = _model(Operation("both", "concatenate", ("fea", "fea2")),
                   Operation("twice", "mult_constant", ("both", "2")),
                   Operation("sum", "sum", ("both", "twice")))
    features = {"fea": torch.ones(2, 1, 3), "fea2": torch.zeros(2, 1, 2)}
    values = model(features, {})
    assert model.dims == {"fea": 3, "fea2": 2, "both": 5, "twice": 5, "sum": 5}
    assert values["sum"].tolist() == [[[3.0, 3.0, 3.0, 0.0, 0.0]]] * 2
