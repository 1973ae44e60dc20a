"""CPU threading: the entry point's OpenMP bootstrap and the thread count."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pytorch_kaldi_snn import threads
from repo_paths import ROOT


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
