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
#   --overwrite                 regenerate the corpus over the generator's own sets (stage 0,
#                               run even when done) and redo every later stage on it
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
overwrite=false
generate_opts=()  # --overwrite, passed on to the corpus generator

log() {
  echo "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"
}

usage() {
  sed -n '5,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 1
}

while [ $# -gt 0 ]; do
  if [ "$1" = --overwrite ]; then
    overwrite=true
    generate_opts=(--overwrite)
    shift
    continue
  fi
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
if $overwrite && { [ "$stage" -gt 0 ] || [ "$stop_stage" -lt 0 ]; }; then
  echo "run.sh: --overwrite regenerates the corpus, stage 0: give --stage 0 (the default)" >&2
  exit 1
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cd "$recipe"
data=$dir/data
exp=$dir/exp
sets=(train dev test)
export PYTHONUNBUFFERED=1

# shellcheck source=recipes/common/builtin_am.sh
. "$recipe/../common/builtin_am.sh"
builtin_am_markers  # feats_done lang_done mono_done graph_done: stages 1-4
corpus_done=$data/.corpus.done
agreement_done=$exp/mono/.agreement.done

if $overwrite; then
  # every later stage was built from the corpus about to be replaced: not done any more (only
  # the recipe's own markers are removed; the stages rewrite their outputs when they rerun)
  log "--overwrite: the corpus and every stage after it will be redone"
  rm -f "$corpus_done" "$feats_done" "$lang_done" "$mono_done" "$graph_done" "$agreement_done"
fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ] && [ ! -f "$corpus_done" ]; then
  log "Stage 0: generate the $size corpus (seed $seed) in $data"
  python -m pytorch_kaldi_snn.corpus.generate --out "$data" --size "$size" --seed "$seed" --nj "$nj" \
    "${generate_opts[@]}"
  for x in "${sets[@]}"; do
    local/phone_text.sh "$data/$x"
  done
  touch "$corpus_done"
fi

builtin_am_stages "the synthesizer's alignment"

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ] && [ ! -f "$agreement_done" ]; then
  log "Stage 5: agreement of the GMM alignments with the synthesizer's"
  python -m pytorch_kaldi_snn.gmm.agreement --data "$data" --exp "$exp" --lang "$data/lang" \
    --sets "$(set_list)" --out "$exp/mono/agreement.json"
  touch "$agreement_done"
fi

log "Done (stages $stage..$stop_stage) in $dir"
