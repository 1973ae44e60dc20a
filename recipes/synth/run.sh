#!/usr/bin/env bash
# Built-in recipe on the synthetic TIMIT-like corpus: corpus, features, lang/LM, monophone
# GMM alignments (lab_cd / lab_mono for PyTorch-Kaldi) and the decoding graph, without Kaldi.
#
# Usage: recipes/synth/run.sh [options]
#   e.g. recipes/synth/run.sh --size tiny --seed 0 --stage 0 --stop-stage 5
# Options:
#   --size tiny|default|timit   corpus size (default: tiny)
#   --seed N                    corpus seed (default: 0)
#   --nj N                      parallel jobs for corpus generation (default: 1)
#   --stage N / --stop-stage N  run stages N..M (default: 0..5)
#   --dir DIR                   where data/ and exp/ go (default: this recipe's folder)
#
# Stages (each leaves a .done marker and is skipped when it exists):
#   0 corpus (pytorch_kaldi_snn.corpus.generate); data/<set>/text becomes the phone
#     transcript (TIMIT style), the word transcript moves to text.words
#   1 fbank40 -> data/<set>/{feats.scp,cmvn.scp,cmvn_speaker.ark}; MFCC13 -> data/mfcc/<set>/
#   2 lang dir data/lang, phone bigram + G in data/lang_test_bg
#   3 monophone GMM from the synthesizer's alignment -> exp/mono, exp/mono_ali_{train,dev,test}
#   4 HCLG -> exp/mono/graph
#   5 GMM/synthesizer alignment agreement -> exp/mono/agreement.json
set -euo pipefail

recipe=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
size=tiny
seed=0
nj=1
stage=0
stop_stage=5
dir=$recipe

log() {
  echo "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"
}

usage() {
  sed -n '5,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 1
}

while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --size) size=$2 ;;
    --seed) seed=$2 ;;
    --nj) nj=$2 ;;
    --stage) stage=$2 ;;
    --stop-stage) stop_stage=$2 ;;
    --dir) dir=$2 ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
  shift 2
done
case $size in tiny|default|timit) ;; *) echo "run.sh: --size must be tiny, default or timit" >&2; exit 1 ;; esac

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cd "$recipe"
data=$dir/data
exp=$dir/exp
sets="train dev test"
export PYTHONUNBUFFERED=1

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ] && [ ! -f $data/.corpus.done ]; then
  log "Stage 0: generate the $size corpus (seed $seed) in $data"
  python -m pytorch_kaldi_snn.corpus.generate --out $data --size $size --seed $seed --nj $nj
  for x in $sets; do
    local/phone_text.sh $data/$x
  done
  touch $data/.corpus.done
fi

# shellcheck source=recipes/common/builtin_am.sh
. "$recipe/../common/builtin_am.sh"
builtin_am_stages "the synthesizer's alignment"

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ] && [ ! -f $exp/mono/.agreement.done ]; then
  log "Stage 5: agreement of the GMM alignments with the synthesizer's"
  python -m pytorch_kaldi_snn.gmm.agreement --data $data --exp $exp --lang $data/lang \
    --sets "${sets// /,}" --out $exp/mono/agreement.json
  touch $exp/mono/.agreement.done
fi

log "Done (stages $stage..$stop_stage) in $dir"
