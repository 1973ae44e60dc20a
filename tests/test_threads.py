"""CPU threading: the entry point's OpenMP bootstrap, the thread count and the training governor."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytorch_kaldi_snn import threads
from pytorch_kaldi_snn.train.thread_governor import ThreadGovernor

ROOT = Path(__file__).resolve().parents[1]


def test_bootstrap_sets_passive_waiting_when_unset():
    env = {}
    assert threads.bootstrap(env) == {"wait_policy": "PASSIVE", "source": "set by the runner"}
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.parametrize("user", [{"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "10000"}])
def test_bootstrap_leaves_the_users_choice_alone(user):
    env = dict(user)
    assert threads.bootstrap(env)["source"] == "set by the user"
    assert env == user


def test_run_exp_entry_point_sets_the_policy_before_torch_loads():
    """``python -m pytorch_kaldi_snn.run_exp`` runs the bootstrap before its first torch import."""
    probe = ("import os, runpy, sys\n"
             "sys.argv = ['run_exp', '--help']\n"
             "try:\n    runpy.run_module('pytorch_kaldi_snn.run_exp', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('policy', os.environ.get('OMP_WAIT_POLICY'))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[-1] == "policy PASSIVE"


def test_available_cpus_honours_a_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("50000 100000\n")
    assert threads.available_cpus(quota) == 1
    quota.write_text("max 100000\n")
    assert threads.available_cpus(quota) == affinity
    assert threads.available_cpus(tmp_path / "missing") == affinity


@pytest.mark.parametrize("value, expected", [("3", 3), (" 2 ", 2), ("", None), ("0", None),
                                             ("two", None)])
def test_user_threads(value, expected):
    assert threads.user_threads({"OMP_NUM_THREADS": value}) == expected


class FakeMachine:
    """A clock and thread setting where a batch of 1000 frames takes ``seconds[count]``."""

    def __init__(self, seconds):
        self.seconds, self.now, self.count, self.history = seconds, 0.0, None, []

    def set_threads(self, count):
        self.count = count
        self.history.append(count)

    def clock(self):
        return self.now

    def run(self, governor, batches):
        for _ in range(batches):
            with governor.timing(1000):
                self.now += self.seconds[self.count]


def governor(machine, **kwargs):
    return ThreadGovernor(2, logging.getLogger("test"), probe_every=10, probe_batches=2,
                          clock=machine.clock, set_threads=machine.set_threads, **kwargs)


def test_governor_moves_to_fewer_threads_when_they_measure_faster(caplog):
    machine = FakeMachine({2: 1.0, 1: 0.5})  # contended: one thread trains twice as fast
    gov = governor(machine)
    with caplog.at_level(logging.INFO, logger="test"):
        machine.run(gov, 12)  # 10 batches at 2 threads, then 2 probe batches at 1 thread
    assert gov.current == 1
    assert "threads: 1 instead of 2 (2000 vs 1000 frames/s measured)" in caplog.text
    machine.seconds = {2: 0.2, 1: 0.5}  # the competitor went away
    machine.run(gov, 10)  # next probe at batch 20 tries 2 threads again
    assert gov.current == 2


def test_governor_keeps_the_count_within_the_margin():
    machine = FakeMachine({2: 1.0, 1: 0.95})
    gov = governor(machine)
    machine.run(gov, 30)
    assert gov.current == 2 and machine.history.count(1) == 4  # two probes of two batches


def test_fixed_governor_never_changes_the_count():
    machine = FakeMachine({2: 1.0, 1: 0.1})
    gov = governor(machine, fixed=True)
    machine.run(gov, 30)
    assert set(machine.history) == {2}
