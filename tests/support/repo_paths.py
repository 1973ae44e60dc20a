"""Where the checkout and the test fixtures are, computed once here so that a test file's own
location (``tests/<folder>/``) never enters a path: test files move, these do not."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # tests/support/ -> the checkout
TESTS = ROOT / "tests"
SUPPORT = TESTS / "support"  # these helpers and the scripts tests run in child processes
FIXTURES = TESTS / "fixtures"  # files written by Kaldi's own binaries (their README lists how)
KALDI_GOLDEN = FIXTURES / "kaldi_golden"
KALDI_GOLDEN_DECODE = FIXTURES / "kaldi_golden_decode"
