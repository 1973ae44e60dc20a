# shellcheck shell=bash
# shellcheck disable=SC2154  # stage, stop_stage, data, exp, sets (an array): set by the calling recipe
# Stages 1-4 shared by the built-in recipes (recipes/synth/run.sh, recipes/timit_builtin/run.sh),
# which differ only in where data/<set>/ comes from (stage 0). Sourced, never run; the caller has
# cd'ed into its recipe folder (conf/, local/) and defines log().
#
# builtin_am_stages ORIGIN: ORIGIN names the frame alignment the monophone GMM starts from.
#   1 fbank40 -> data/<set>/{feats.scp,cmvn.scp,cmvn_speaker.ark}; MFCC13 -> data/mfcc/<set>/
#   2 lang dir data/lang, phone bigram + G in data/lang_test_bg
#   3 monophone GMM from ORIGIN -> exp/mono, exp/mono_ali_<set>
#   4 HCLG -> exp/mono/graph
#
# builtin_am_markers: sets feats_done, lang_done, mono_done and graph_done, the .done marker of
# stages 1-4 (the one place they are named: the stages touch them, a recipe may remove them).
# set_list: the sets as one comma-separated argument (train,dev,test), as the Python steps take them.
set_list() {
  local IFS=,
  echo "${sets[*]}"
}

builtin_am_markers() {
  feats_done=$data/.feats.done
  lang_done=$data/lang_test_bg/.done
  mono_done=$exp/mono/.done
  graph_done=$exp/mono/graph/.done
}

builtin_am_stages() {
  local origin=$1 x f
  builtin_am_markers
  if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -f "$feats_done" ]; then
    log "Stage 1: fbank40 and MFCC13 features with per-speaker CMVN"
    for x in "${sets[@]}"; do
      local/make_feats.py fbank conf/fbank.conf "$data/$x" "$data/ark/fbank"
      mkdir -p "$data/mfcc/$x"
      # this stage's own files of an earlier run (of another corpus, after run.sh --overwrite):
      # a feats.scp left there would not match the new utt2spk
      rm -f "$data/mfcc/$x/feats.scp" "$data/mfcc/$x/cmvn.scp" "$data/mfcc/$x/utt2num_frames"
      for f in wav.scp utt2spk spk2utt text; do cp "$data/$x/$f" "$data/mfcc/$x/"; done
      local/make_feats.py mfcc conf/mfcc.conf "$data/mfcc/$x" "$data/ark/mfcc"
    done
    touch "$feats_done"
  fi

  if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ ! -f "$lang_done" ]; then
    log "Stage 2: lang dir and phone bigram G"
    python -m pytorch_kaldi_snn.graph.prepare_lang --phones "$data/phones.txt" \
      --train-text "$data/train/text" --lang "$data/lang" --lang-test "$data/lang_test_bg"
    touch "$lang_done"
  fi

  if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ] && [ ! -f "$mono_done" ]; then
    log "Stage 3: monophone GMM from $origin; realign ${sets[*]}"
    mkdir -p "$exp/mono/log"
    python -m pytorch_kaldi_snn.gmm.train_mono --lang "$data/lang" --feats "$data/mfcc" \
      --data "$data" --exp "$exp" --sets "$(set_list)" 2>&1 | tee "$exp/mono/log/train_mono.log"
    touch "$mono_done"
  fi

  if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ] && [ ! -f "$graph_done" ]; then
    log "Stage 4: HCLG"
    python -m pytorch_kaldi_snn.graph.mkgraph "$data/lang_test_bg" "$exp/mono" "$exp/mono/graph"
    touch "$graph_done"
  fi
}
