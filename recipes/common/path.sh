# shellcheck shell=bash
# Environment of the Kaldi recipes (recipes/timit, recipes/librispeech): KALDI_ROOT is the Kaldi
# checkout with src/ built (and, for TIMIT scoring, tools/sctk: cd $KALDI_ROOT/tools && make sclite).
# Export it before running, or write it here. Kaldi's own egs/<corpus>/s5/path.sh, sourced by the
# scripts once they are in the egs dir, puts Kaldi's binaries, utils/ and OpenFst on PATH.
export KALDI_ROOT="${KALDI_ROOT:-}"
