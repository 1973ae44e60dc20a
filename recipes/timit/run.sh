#!/usr/bin/env bash
# TIMIT with Kaldi, the paper's setup: Kaldi's egs/timit/s5 stages up to the tri3
# (LDA+MLLT+SAT) system, then what PyTorch-Kaldi needs from it (its README, TIMIT tutorial):
# fMLLR features of train/dev/test with per-speaker CMVN, alignments of every set (tri3, and those
# of Kaldi's fMLLR DNN, which PyTorch-Kaldi's TIMIT cfgs use), and the decoding graph, linked into
# --out-dir in the layout of recipes/timit/layout.txt.
#
# Every step runs inside $KALDI_ROOT/egs/timit/s5 with Kaldi's own scripts. Kaldi's run.sh for
# TIMIT has no stages (and a hard-coded corpus path), so its steps up to tri3 are called here one
# by one, with its arguments; so are those of its local/nnet/run_dnn.sh up to the cross-entropy
# DNN. The SGMM, sMBR and decoding-only parts are not needed and not run.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$recipe_dir/../.." && pwd)
# shellcheck source=../common/lib.sh
. "$recipe_dir/../common/lib.sh"
# shellcheck source=../common/kaldi.sh
. "$recipe_dir/../common/kaldi.sh"
# shellcheck source=../common/path.sh
. "$recipe_dir/path.sh"
# shellcheck source=../common/cmd.sh
. "$recipe_dir/cmd.sh"

# Begin configuration section.
corpus_dir=            # TIMIT (LDC93S1): the directory holding TRAIN/ and TEST/ (or train/, test/)
out_dir=$recipe_dir    # root of the project layout (layout.txt) that the TIMIT_*.cfg files use
stage=1
stop_stage=12
dry_run=false          # true: print every step, in order, as a bash script; run nothing
feats_nj=10            # parallel jobs for MFCC and train-set fMLLR features (Kaldi's feats_nj)
train_nj=30            # parallel jobs for training and train-set alignment (Kaldi's train_nj)
decode_nj=5            # parallel jobs for dev/test decoding, alignment, fMLLR features (decode_nj)
decode_opts=           # extra options of steps/decode_fmllr.sh in stage 7 (e.g. "--beam 10 --max-active 2000")
dnn=true               # stages 10-11: Kaldi's fMLLR DNN and its alignments (needs CUDA-built Kaldi and a GPU)
sph2pipe=kaldi         # stage 1: kaldi ($KALDI_ROOT/tools/sph2pipe_v2.5/sph2pipe) or builtin (recipes/common/sph2pipe.py)
phone_lm=irstlm        # stage 1: irstlm (Kaldi's phone bigram via IRSTLM) or builtin (recipes/common/irstlm-builtin)
arpa2fst=kaldi         # stage 1: kaldi (src/lmbin) or builtin (recipes/common/kaldi-builtin, kaldilm)
# Model sizes of Kaldi's egs/timit/s5/run.sh.
num_leaves_tri1=2500
num_gauss_tri1=15000
num_leaves_mllt=2500
num_gauss_mllt=15000
num_leaves_sat=2500
num_gauss_sat=15000
# End configuration section.

usage="Usage: $0 [options] --corpus-dir <timit-dir>
e.g.: KALDI_ROOT=/opt/kaldi $0 --corpus-dir /data/LDC93S1/TIMIT --out-dir \$PWD/recipes/timit
      $0 --corpus-dir /data/LDC93S1/TIMIT --dry-run true    # print every step, run nothing
Runs in \$KALDI_ROOT/egs/timit/s5. Stages (--stage N --stop-stage M; a stage that finished
leaves <out-dir>/.done/stage<N>.<name>.done and is skipped when run again):
  1 data      local/timit_data_prep.sh, dictionary, lang (no optional silence), format data
  2 mfcc      MFCC + CMVN statistics of train, dev, test
  3 mono      monophone system
  4 tri1      deltas + delta-deltas triphones
  5 tri2      LDA + MLLT
  6 tri3      LDA + MLLT + SAT (the fMLLR system)
  7 graph     exp/tri3/graph, and fMLLR decoding of dev/test (their speaker transforms)
  8 align     tri3 alignments: exp/tri3_ali, exp/tri3_ali_dev, exp/tri3_ali_test
  9 fmllr     data-fmllr-tri3/{train,dev,test} with cmvn_speaker.ark
  10 dnn     Kaldi's fMLLR DNN (local/nnet/run_dnn.sh: DBN pre-training, cross-entropy)
  11 dnn_ali its alignments: exp/dnn4_pretrain-dbn_dnn_ali{,_dev,_test}
  12 layout  links into --out-dir, checked against layout.txt
Already ran Kaldi's run.sh? Start at --stage 7; also local/nnet/run_dnn.sh? Run --stage 8
--stop-stage 9 (stage 9 redoes run_dnn.sh's fMLLR dump, adding cmvn_speaker.ark), then --stage 11.
No corpus is needed from stage 2 on.
Options (default):
  --corpus-dir DIR     TIMIT corpus, needed by stage 1 ($corpus_dir)
  --out-dir DIR        where the layout is linked ($out_dir)
  --stage N            first stage ($stage)
  --stop-stage N       last stage ($stop_stage)
  --dry-run BOOL       print the steps without running them ($dry_run)
  --feats-nj N, --train-nj N, --decode-nj N   parallel jobs ($feats_nj, $train_nj, $decode_nj)
  --decode-opts STR    extra options of steps/decode_fmllr.sh (stage 7) ($decode_opts)
  --num-leaves-tri1 N, --num-gauss-tri1 N, ... (mllt, sat)   model sizes (Kaldi's)
  --dnn BOOL           run stages 10-11 (Kaldi's nnet1 needs CUDA and a GPU); false: tri3 alignments only ($dnn)
  --sph2pipe kaldi|builtin   how stage 1 reads SPHERE audio: Kaldi's sph2pipe (cd \$KALDI_ROOT/tools &&
                       make sph2pipe), or builtin: links recipes/common/sph2pipe.py (PCM SPHERE, as
                       TIMIT's) where Kaldi's data prep looks for sph2pipe ($sph2pipe)
  --phone-lm irstlm|builtin  stage 1's phone bigram: IRSTLM (\$KALDI_ROOT/tools/extras/install_irstlm.sh),
                       or builtin: the same Kaldi script with recipes/common/irstlm-builtin as
                       \$IRSTLM, our smoothed bigram (pytorch_kaldi_snn/graph/lm.py) ($phone_lm)
  --arpa2fst kaldi|builtin   stage 1's G.fst: Kaldi's arpa2fst (src/lmbin), or builtin: the kaldilm
                       pip port, used when Kaldi has none ($arpa2fst)
  --config FILE        options as --name=value lines"

cmdline="$0 $*"
# shellcheck source=../common/parse_options.sh
. "$recipe_dir/../common/parse_options.sh"
[ $# -eq 0 ] || die "unexpected argument '$1' (options only; see --help)"

check_bool dry_run "$dry_run"
check_bool dnn "$dnn"
case "$sph2pipe" in kaldi|builtin) ;; *) die "--sph2pipe takes kaldi or builtin, got '$sph2pipe'" ;; esac
case "$phone_lm" in irstlm|builtin) ;; *) die "--phone-lm takes irstlm or builtin, got '$phone_lm'" ;; esac
case "$arpa2fst" in kaldi|builtin) ;; *) die "--arpa2fst takes kaldi or builtin, got '$arpa2fst'" ;; esac
for opt in stage stop_stage feats_nj train_nj decode_nj num_leaves_tri1 num_gauss_tri1 \
    num_leaves_mllt num_gauss_mllt num_leaves_sat num_gauss_sat; do
  check_int "$opt" "${!opt}"
done
read -ra decode_args <<< "$decode_opts"

# Everything a run needs is checked before the first step; each failure is one line.
require_kaldi_egs egs/timit/s5
if in_stage_range 1; then
  [ -n "$corpus_dir" ] || die "--corpus-dir is required for stage 1: the TIMIT directory holding TRAIN/ and TEST/"
  [ -d "$corpus_dir" ] || die "TIMIT corpus dir $corpus_dir does not exist"
  if ! { [ -d "$corpus_dir/TRAIN" ] || [ -d "$corpus_dir/train" ]; } || \
     ! { [ -d "$corpus_dir/TEST" ] || [ -d "$corpus_dir/test" ]; }; then
    die "$corpus_dir is not a TIMIT corpus dir: it has no TRAIN/ and TEST/ (or train/ and test/)"
  fi
  corpus_dir=$(cd "$corpus_dir" && pwd)
  # Where Kaldi's local/timit_data_prep.sh and timit_prepare_dict.sh look for the tools.
  sph2pipe_bin=$(cd "$KALDI_ROOT" && pwd)/tools/sph2pipe_v2.5/sph2pipe
  irstlm_dir=${IRSTLM:-$(cd "$KALDI_ROOT" && pwd)/tools/irstlm}
  if [ "$phone_lm" = builtin ]; then irstlm_dir=$recipe_dir/../common/irstlm-builtin; fi
fi
out_dir=$(abspath "$out_dir")
check_out_dir "$out_dir"
done_dir=$out_dir/.done
layout=$recipe_dir/layout.txt
if in_stage_range 12; then check_link_targets "$layout" "$out_dir"; fi

enter_kaldi_egs
if [ "$stage" -le 11 ]; then  # the last stage only links files
  require_binaries compute-mfcc-feats compute-cmvn-stats copy-feats transform-feats \
    gmm-init-mono gmm-align-compiled gmm-est-fmllr gmm-latgen-faster fstcompose
fi
if in_stage_range 1 && [ "$dry_run" = false ]; then
  use_arpa2fst "$arpa2fst"
  if [ "$sph2pipe" = kaldi ] && [ ! -x "$sph2pipe_bin" ]; then
    die "no sph2pipe at $sph2pipe_bin: build it (cd \$KALDI_ROOT/tools && make sph2pipe), or pass --sph2pipe builtin"
  fi
  if [ "$sph2pipe" = builtin ] && [ -e "$sph2pipe_bin" ] && [ ! -L "$sph2pipe_bin" ]; then
    die "--sph2pipe builtin would replace Kaldi's own $sph2pipe_bin: use --sph2pipe kaldi"
  fi
  if [ "$phone_lm" = irstlm ] && [ ! -x "$irstlm_dir/bin/build-lm.sh" ]; then
    die "no IRSTLM at $irstlm_dir (the TIMIT phone bigram needs build-lm.sh): run \$KALDI_ROOT/tools/extras/install_irstlm.sh, or pass --phone-lm builtin"
  fi
elif in_stage_range 1; then
  use_arpa2fst "$arpa2fst"
fi
log "$cmdline"

if begin_stage 1 data; then
  if [ "$sph2pipe" = builtin ]; then
    step mkdir -p "$(dirname "$sph2pipe_bin")"
    step ln -sfn "$(cd "$recipe_dir/../common" && pwd)/sph2pipe.py" "$sph2pipe_bin"
  fi
  step local/timit_data_prep.sh "$corpus_dir"
  if [ "$phone_lm" = builtin ]; then
    step env "IRSTLM=$(cd "$irstlm_dir" && pwd)" local/timit_prepare_dict.sh
  else
    step local/timit_prepare_dict.sh
  fi
  # No optional silence: in TIMIT silence is a scored "word" of the dictionary.
  step utils/prepare_lang.sh --sil-prob 0.0 --position-dependent-phones false --num-sil-states 3 \
    data/local/dict sil data/local/lang_tmp data/lang
  step local/timit_format_data.sh
  expect_files local/timit_format_data.sh data/lang_test_bg/G.fst
  end_stage 1 data
fi

if begin_stage 2 mfcc; then
  for set in train dev test; do
    step steps/make_mfcc.sh --cmd "$train_cmd" --nj "$feats_nj" "data/$set" "exp/make_mfcc/$set" mfcc
    step steps/compute_cmvn_stats.sh "data/$set" "exp/make_mfcc/$set" mfcc
  done
  end_stage 2 mfcc
fi

if begin_stage 3 mono; then
  step steps/train_mono.sh --nj "$train_nj" --cmd "$train_cmd" data/train data/lang exp/mono
  end_stage 3 mono
fi

if begin_stage 4 tri1; then
  step steps/align_si.sh --boost-silence 1.25 --nj "$train_nj" --cmd "$train_cmd" \
    data/train data/lang exp/mono exp/mono_ali
  step steps/train_deltas.sh --cmd "$train_cmd" "$num_leaves_tri1" "$num_gauss_tri1" \
    data/train data/lang exp/mono_ali exp/tri1
  end_stage 4 tri1
fi

if begin_stage 5 tri2; then
  step steps/align_si.sh --nj "$train_nj" --cmd "$train_cmd" data/train data/lang exp/tri1 exp/tri1_ali
  step steps/train_lda_mllt.sh --cmd "$train_cmd" --splice-opts "--left-context=3 --right-context=3" \
    "$num_leaves_mllt" "$num_gauss_mllt" data/train data/lang exp/tri1_ali exp/tri2
  end_stage 5 tri2
fi

if begin_stage 6 tri3; then
  step steps/align_si.sh --nj "$train_nj" --cmd "$train_cmd" --use-graphs true \
    data/train data/lang exp/tri2 exp/tri2_ali
  step steps/train_sat.sh --cmd "$train_cmd" "$num_leaves_sat" "$num_gauss_sat" \
    data/train data/lang exp/tri2_ali exp/tri3
  end_stage 6 tri3
fi

if begin_stage 7 graph; then
  step utils/mkgraph.sh data/lang_test_bg exp/tri3 exp/tri3/graph
  # Two-pass fMLLR decoding gives the dev/test speaker transforms without their transcripts
  # (exp/tri3/decode_<set>/trans.*); the fMLLR features of dev/test use these, as Kaldi's
  # local/nnet/run_dnn.sh and PyTorch-Kaldi's data-fmllr-tri3 do.
  for set in dev test; do
    step steps/decode_fmllr.sh --nj "$decode_nj" --cmd "$decode_cmd" ${decode_args[@]+"${decode_args[@]}"} \
      exp/tri3/graph "data/$set" "exp/tri3/decode_$set"
  done
  end_stage 7 graph
fi

if begin_stage 8 align; then
  # Frame labels (context-dependent states) of every set, from the final SAT model.
  step steps/align_fmllr.sh --nj "$train_nj" --cmd "$train_cmd" data/train data/lang exp/tri3 exp/tri3_ali
  for set in dev test; do
    step steps/align_fmllr.sh --nj "$decode_nj" --cmd "$train_cmd" \
      "data/$set" data/lang exp/tri3 "exp/tri3_ali_$set"
  done
  end_stage 8 align
fi

if begin_stage 9 fmllr; then
  # Train: the transforms of the training alignment; dev/test: those of the decoding (stage 7).
  dump_fmllr "$feats_nj" exp/tri3 exp/tri3_ali data/train data-fmllr-tri3/train stm glm
  for set in dev test; do
    dump_fmllr "$decode_nj" exp/tri3 "exp/tri3/decode_$set" "data/$set" "data-fmllr-tri3/$set" stm glm
  done
  end_stage 9 fmllr
fi

if [ "$dnn" = false ] && in_stage_range 10; then comment "stages 10-11 (dnn, dnn_ali): skipped, --dnn false"; fi
if [ "$dnn" = true ] && begin_stage 10 dnn; then
  # Kaldi's local/nnet/run_dnn.sh stages 0-2: 90/10 split, 6 RBMs, frame cross-entropy on tri3_ali.
  step utils/subset_data_dir_tr_cv.sh data-fmllr-tri3/train data-fmllr-tri3/train_tr90 data-fmllr-tri3/train_cv10
  step steps/nnet/pretrain_dbn.sh --hid-dim 1024 --rbm-iter 20 data-fmllr-tri3/train exp/dnn4_pretrain-dbn
  step steps/nnet/train.sh --feature-transform exp/dnn4_pretrain-dbn/final.feature_transform \
    --dbn exp/dnn4_pretrain-dbn/6.dbn --hid-layers 0 --learn-rate 0.008 \
    data-fmllr-tri3/train_tr90 data-fmllr-tri3/train_cv10 data/lang exp/tri3_ali exp/tri3_ali \
    exp/dnn4_pretrain-dbn_dnn
  end_stage 10 dnn
fi

if [ "$dnn" = true ] && begin_stage 11 dnn_ali; then
  # The alignments PyTorch-Kaldi's README suggests for TIMIT (and its TIMIT cfgs use).
  step steps/nnet/align.sh --nj "$train_nj" --cmd "$train_cmd" \
    data-fmllr-tri3/train data/lang exp/dnn4_pretrain-dbn_dnn exp/dnn4_pretrain-dbn_dnn_ali
  for set in dev test; do
    step steps/nnet/align.sh --nj "$decode_nj" --cmd "$train_cmd" \
      "data-fmllr-tri3/$set" data/lang exp/dnn4_pretrain-dbn_dnn "exp/dnn4_pretrain-dbn_dnn_ali_$set"
  done
  end_stage 11 dnn_ali
fi

if begin_stage 12 layout; then
  link_layout "$layout" "$out_dir"
  check_layout "$layout" "$out_dir"
  end_stage 12 layout
fi

log "done: the TIMIT_*.cfg files can point to $out_dir (see docs/kaldi_recipes.md)"
