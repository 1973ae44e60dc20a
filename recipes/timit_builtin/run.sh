#!/usr/bin/env bash
# Built-in recipe on TIMIT as LDC ships it, without Kaldi: data prep as Kaldi's TIMIT recipe
# (SA sentences dropped; 462-speaker train, 50-speaker dev, 24-speaker core test; 61 phones
# folded to 48 for training and to 39 for scoring), then the synthetic recipe's steps:
# fbank/MFCC features, lang dir and phone bigram, monophone GMM started from the .PHN
# alignment, HCLG. conf/dev_spk.list and conf/test_spk.list are the speaker lists of Kaldi's
# egs/timit/s5/conf (Apache 2.0), i.e. TIMIT's standard dev set and core test set.
#
# Usage: recipes/timit_builtin/run.sh --corpus-dir DIR [options]
#   e.g. recipes/timit_builtin/run.sh --corpus-dir /data/TIMIT
# Options:
#   --corpus-dir DIR            the TIMIT tree (holds TRAIN/ and TEST/, either letter case)
#   --dev-spk FILE / --test-spk FILE   speaker lists (default: conf/dev_spk.list, conf/test_spk.list)
#   --stage N / --stop-stage N  run stages N..M (default: 0..4)
#   --dir DIR                   where data/ and exp/ go (default: this recipe's folder)
#
# Stages (each leaves a .done marker and is skipped when it exists):
#   0 data/{train,dev,test}: RIFF wavs, 48-phone text, frame labels ali.txt (corpus.timit)
#   1 fbank40 -> data/<set>/{feats.scp,cmvn.scp,cmvn_speaker.ark}; MFCC13 -> data/mfcc/<set>/
#   2 lang dir data/lang (48 phones), phone bigram + G in data/lang_test_bg
#   3 monophone GMM from the .PHN alignment -> exp/mono, exp/mono_ali_{train,dev,test}
#   4 HCLG -> exp/mono/graph
set -euo pipefail

recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
corpus=
dev_spk=$recipe/conf/dev_spk.list
test_spk=$recipe/conf/test_spk.list
stage=0
stop_stage=4
dir=$recipe

log() {
  echo "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"
}

usage() {
  sed -n '9,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 1
}

while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --corpus-dir) corpus=$2 ;;
    --dev-spk) dev_spk=$2 ;;
    --test-spk) test_spk=$2 ;;
    --stage) stage=$2 ;;
    --stop-stage) stop_stage=$2 ;;
    --dir) dir=$2 ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
  shift 2
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cd "$recipe"
data=$dir/data
exp=$dir/exp
sets=(train dev test)
export PYTHONUNBUFFERED=1

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ] && [ ! -f "$data/.timit.done" ]; then
  [ -n "$corpus" ] || { echo "run.sh: --corpus-dir is required for stage 0" >&2; exit 1; }
  log "Stage 0: TIMIT data prep from $corpus"
  python -m pytorch_kaldi_snn.corpus.timit --corpus-dir "$corpus" --out "$data" \
    --dev-spk "$dev_spk" --test-spk "$test_spk"
  touch "$data/.timit.done"
fi

# shellcheck source=recipes/common/builtin_am.sh
. "$recipe/../common/builtin_am.sh"
builtin_am_stages "the .PHN alignment"

log "Done (stages $stage..$stop_stage) in $dir"
