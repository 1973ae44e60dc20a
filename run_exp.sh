#!/usr/bin/env bash
# Train, forward, decode, score and report one experiment: ./run_exp.sh CFG [--set section.key=value ...]
# Paths inside the cfg are relative to the current directory (as in PyTorch-Kaldi).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec python -m pytorch_kaldi_snn.run_exp "$@"
