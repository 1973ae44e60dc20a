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
  echo "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[0]##*/}:${BASH_LINENO[0]}) $*"
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
sets="train dev test"
export PYTHONUNBUFFERED=1

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ] && [ ! -f $data/.timit.done ]; then
  [ -n "$corpus" ] || { echo "run.sh: --corpus-dir is required for stage 0" >&2; exit 1; }
  log "Stage 0: TIMIT data prep from $corpus"
  python -m pytorch_kaldi_snn.corpus.timit --corpus-dir "$corpus" --out $data \
    --dev-spk "$dev_spk" --test-spk "$test_spk"
  touch $data/.timit.done
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ] && [ ! -f $data/.feats.done ]; then
  log "Stage 1: fbank40 and MFCC13 features with per-speaker CMVN"
  for x in $sets; do
    local/make_feats.py fbank conf/fbank.conf $data/$x $data/ark/fbank
    mkdir -p $data/mfcc/$x
    for f in wav.scp utt2spk spk2utt text; do cp $data/$x/$f $data/mfcc/$x/; done
    local/make_feats.py mfcc conf/mfcc.conf $data/mfcc/$x $data/ark/mfcc
  done
  touch $data/.feats.done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ ! -f $data/lang_test_bg/.done ]; then
  log "Stage 2: lang dir and phone bigram G"
  python -m pytorch_kaldi_snn.graph.prepare_lang --phones $data/phones.txt \
    --train-text $data/train/text --lang $data/lang --lang-test $data/lang_test_bg
  touch $data/lang_test_bg/.done
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ] && [ ! -f $exp/mono/.done ]; then
  log "Stage 3: monophone GMM from the .PHN alignment; realign $sets"
  mkdir -p $exp/mono/log
  python -m pytorch_kaldi_snn.gmm.train_mono --lang $data/lang --feats $data/mfcc --data $data \
    --exp $exp --sets "${sets// /,}" 2>&1 | tee $exp/mono/log/train_mono.log
  touch $exp/mono/.done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ] && [ ! -f $exp/mono/graph/.done ]; then
  log "Stage 4: HCLG"
  python -m pytorch_kaldi_snn.graph.mkgraph $data/lang_test_bg $exp/mono $exp/mono/graph
  touch $exp/mono/graph/.done
fi

log "Done (stages $stage..$stop_stage) in $dir"
