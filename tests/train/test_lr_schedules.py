"""The three halving rules on scripted dev-error sequences (train/scheduler.py)."""
from __future__ import annotations

from typing import List

import pytest

from pytorch_kaldi_snn.train.scheduler import HalvingScheduler


def _rates(rule: str, errors: List[float], patience: int = 1, threshold: float = 0.001) -> List[float]:
    sched = HalvingScheduler(lr=1.0, halving_factor=0.5, improvement_threshold=threshold,
                             patience=patience, min_lr=0.0, rule=rule)
    return [sched.step(err) for err in errors]


ALTERNATING = [0.33, 0.34, 0.33, 0.34, 0.33, 0.34]


def test_upstream_halves_on_every_slow_epoch_relative_to_the_current_error():
    # (prev - err) / err: 0.40 -> 0.30 improves by 33 %; 0.30 -> 0.2999 by 0.033 % < 0.1 %
    assert _rates("upstream", [0.40, 0.30, 0.2999, 0.25]) == [1.0, 1.0, 0.5, 0.5]
    assert _rates("upstream", ALTERNATING) == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_consecutive_stalls_on_an_alternating_dev_error():
    assert _rates("consecutive", ALTERNATING, patience=3) == [1.0] * 6
    assert _rates("consecutive", [0.3, 0.3, 0.3, 0.3], patience=3) == [1.0, 1.0, 1.0, 0.5]


def test_fork_counts_bad_epochs_against_the_best_and_halves_above_patience():
    # best stays 0.33: every later epoch is bad; halves when num_bad_epochs > 3 (the 4th)
    assert _rates("fork", ALTERNATING, patience=3) == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    # a new best resets the count
    assert _rates("fork", [0.5, 0.5, 0.4, 0.4, 0.4], patience=1) == [1.0, 1.0, 1.0, 1.0, 0.5]


def test_the_floor_holds_and_state_round_trips():
    sched = HalvingScheduler(1.0, 0.5, 0.001, 1, 0.3, "upstream")
    assert [sched.step(e) for e in [0.3] * 4] == [1.0, 0.5, 0.3, 0.3]
    again = HalvingScheduler(9.0, 0.1, 0.1, 9, 0.0, "fork")
    again.load_state_dict(sched.state_dict())
    assert again == sched


@pytest.mark.parametrize("cfg_key", ["arch_patience"])
def test_patience_is_refused_with_the_upstream_rule(tmp_path, cfg_key):
    from experiment_cfgs import fake_corpus, synth_cfg
    from pytorch_kaldi_snn.config.experiment import load_experiment
    from pytorch_kaldi_snn.errors import ConfigError
    cfg = synth_cfg(tmp_path, fake_corpus(tmp_path / "c"),
                    text_edit=lambda t: t.replace("arch_lr_schedule = consecutive\n", "", 1))
    with pytest.raises(ConfigError, match=rf"\[architecture1\] {cfg_key}: arch_patience is not "
                                          r"used by arch_lr_schedule = upstream"):
        load_experiment(cfg)


def test_upstream_per_epoch_rates_replace_halving():
    sched = HalvingScheduler(0.08, 0.5, 0.001, 1, 0.0, "upstream", (0.08, 0.08, 0.04))
    assert [sched.step(e) for e in (0.5, 0.5, 0.5)] == [0.08, 0.04, 0.04]
