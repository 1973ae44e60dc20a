#!/usr/bin/env bash
# Built-in stand-in for IRSTLM's build-lm.sh (recipes/timit/run.sh --phone-lm builtin), for
# the one call Kaldi's egs/timit/s5/local/timit_prepare_dict.sh makes:
#   build-lm.sh -i <text with <s> ... </s> lines> -n 2 -o <out.gz>
# It estimates a bigram with pytorch_kaldi_snn/graph/lm.py (add-one unigrams, absolute
# discounting; IRSTLM uses Witten-Bell) and writes it as gzipped ARPA, which the built-in
# compile-lm prints. Any other option or order fails with one line.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "${PYTORCH_KALDI_SNN_PYTHON:-python3}" "$here/../irstlm_builtin.py" build-lm "$@"
