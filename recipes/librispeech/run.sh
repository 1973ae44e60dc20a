#!/usr/bin/env bash
# LibriSpeech 100 h with Kaldi, the paper's setup: Kaldi's egs/librispeech/s5 stages up to the
# tri4b (LDA+MLLT+SAT on train_clean_100) system, then what PyTorch-Kaldi needs from it (its
# README, LibriSpeech tutorial): the tgsmall graph, tri4b alignments of train_clean_100,
# dev_clean and test_clean, and their fMLLR features with per-speaker CMVN, linked into
# --out-dir in the layout of recipes/librispeech/layout.txt.
#
# Every step runs inside $KALDI_ROOT/egs/librispeech/s5 with Kaldi's own scripts. Stages 1-13 are
# Kaldi's run.sh stages of the same numbers (its run.sh has no stop stage, and its later stages
# train on 460/960 h, so they are called here one by one, with its arguments), restricted to the
# three sets used. Stage 5 of Kaldi's run.sh only spreads files over the JHU grid: not run.
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
corpus_dir=            # holds LibriSpeech/{train-clean-100,dev-clean,test-clean} (Kaldi's $data)
out_dir=$recipe_dir    # root of the project layout (layout.txt) that the Librispeech_*.cfg files use
stage=1
stop_stage=17
dry_run=false          # true: print every step, in order, as a bash script; run nothing
download=false         # true: stage 1 downloads the three parts into --corpus-dir (openslr.org)
data_url=www.openslr.org/resources/12
lm_url=www.openslr.org/resources/11
feats_nj=40            # parallel jobs for MFCC features
train_nj=20            # parallel jobs for training, train-set alignment and fMLLR features
decode_nj=10           # parallel jobs for dev/test decoding, alignment, fMLLR features
lm_dir=                # LM resources at hand instead of downloading them (see --lm-dir below)
const_arpa=true        # stages 4, 13: const-arpa tglarge/fglarge (needs Kaldi's arpa-to-const-arpa)
arpa2fst=kaldi         # stages 3, 13: kaldi (src/lmbin) or builtin (recipes/common/kaldi-builtin, kaldilm)
decode_opts=           # extra options of steps/decode_fmllr.sh in stage 14 (e.g. "--beam 10 --max-active 2000")
# Training subsets and model sizes of Kaldi's egs/librispeech/s5/run.sh.
mono_utts=2000         # data/train_2kshort: the shortest utterances of train_clean_100
tri1_utts=5000         # data/train_5k
tri2_utts=10000        # data/train_10k (tri2b, tri3b)
num_leaves_tri1=2000
num_gauss_tri1=10000
num_leaves_tri2b=2500
num_gauss_tri2b=15000
num_leaves_tri3b=2500
num_gauss_tri3b=15000
num_leaves_tri4b=4200
num_gauss_tri4b=40000
# End configuration section.

usage="Usage: $0 [options] --corpus-dir <dir>
e.g.: KALDI_ROOT=/opt/kaldi $0 --corpus-dir /data/librispeech --out-dir \$PWD/recipes/librispeech
      $0 --corpus-dir /data/librispeech --dry-run true    # print every step, run nothing
<dir>/LibriSpeech/{train-clean-100,dev-clean,test-clean} must exist (or pass --download true).
Runs in \$KALDI_ROOT/egs/librispeech/s5. Stages 1-13 are those of Kaldi's run.sh (--stage N
--stop-stage M; a finished stage leaves <out-dir>/.done/stage<N>.<name>.done and is skipped):
  1 download  corpus parts (with --download true) and the LM resources (local/download_lm.sh,
              or links to --lm-dir)
  2 data      Kaldi data dirs of train_clean_100, dev_clean, test_clean
  3 lang      dictionary, data/lang_nosp, G.fst of the small LMs
  4 carpa     const-arpa tglarge/fglarge LMs (lang_nosp)
  6 mfcc      MFCC + CMVN statistics
  7 subsets   train_2kshort, train_5k, train_10k
  8 mono      9 tri1      10 tri2b      11 tri3b
  12 tri4b    tri3b alignment of train_clean_100, then tri4b (LDA+MLLT+SAT, 100 h)
  13 prons    pronunciation/silence probabilities, data/lang, data/lang_test_*
  14 graph    exp/tri4b/graph_tgsmall, fMLLR decoding of dev/test (their speaker transforms)
  15 align    exp/tri4b_ali_clean_100, exp/tri4b_ali_dev_clean, exp/tri4b_ali_test_clean
  16 fmllr    data-fmllr-tri4b/{train_clean_100,dev_clean,test_clean} with cmvn_speaker.ark
  17 layout   links into --out-dir, checked against layout.txt
Already ran Kaldi's run.sh to stage 13? Start at --stage 14; no corpus needed.
Options (default):
  --corpus-dir DIR     corpus, needed by stages 1-2 ($corpus_dir)
  --download BOOL      download the corpus parts in stage 1 ($download)
  --out-dir DIR        where the layout is linked ($out_dir)
  --stage N            first stage ($stage)
  --stop-stage N       last stage ($stop_stage)
  --dry-run BOOL       print the steps without running them ($dry_run)
  --feats-nj N, --train-nj N, --decode-nj N   parallel jobs ($feats_nj, $train_nj, $decode_nj)
  --lm-dir DIR         stage 1 links DIR's librispeech-lexicon.txt, librispeech-vocab.txt and
                       lm_{tgsmall,tgmed,tglarge,fglarge}.arpa.gz into data/local/lm instead of
                       downloading openslr.org/resources/11 ($lm_dir)
  --const-arpa BOOL    build the const-arpa tglarge/fglarge (Kaldi's arpa-to-const-arpa, src/lmbin);
                       false: no data/lang*_test_{tglarge,fglarge}, no rescoring ($const_arpa)
  --arpa2fst kaldi|builtin   G.fst of the small LMs: Kaldi's arpa2fst (src/lmbin), or builtin: the
                       kaldilm pip port, used when Kaldi has none ($arpa2fst)
  --decode-opts STR    extra options of steps/decode_fmllr.sh (stage 14) ($decode_opts)
  --mono-utts N, --tri1-utts N, --tri2-utts N   training subset sizes ($mono_utts, $tri1_utts, $tri2_utts)
  --num-leaves-tri1 N, --num-gauss-tri1 N, ... (tri2b, tri3b, tri4b)   model sizes (Kaldi's)
  --config FILE        options as --name=value lines"

cmdline="$0 $*"
# shellcheck source=../common/parse_options.sh
. "$recipe_dir/../common/parse_options.sh"
[ $# -eq 0 ] || die "unexpected argument '$1' (options only; see --help)"

check_bool dry_run "$dry_run"
check_bool download "$download"
check_bool const_arpa "$const_arpa"
case "$arpa2fst" in kaldi|builtin) ;; *) die "--arpa2fst takes kaldi or builtin, got '$arpa2fst'" ;; esac
for opt in stage stop_stage feats_nj train_nj decode_nj mono_utts tri1_utts tri2_utts \
    num_leaves_tri1 num_gauss_tri1 num_leaves_tri2b num_gauss_tri2b num_leaves_tri3b num_gauss_tri3b \
    num_leaves_tri4b num_gauss_tri4b; do
  check_int "$opt" "${!opt}"
done
read -ra decode_args <<< "$decode_opts"
# What stage 1 links from --lm-dir (the names Kaldi's local/download_lm.sh leaves in data/local/lm).
lm_files=(librispeech-lexicon.txt librispeech-vocab.txt
          lm_tgsmall.arpa.gz lm_tgmed.arpa.gz lm_tglarge.arpa.gz lm_fglarge.arpa.gz)
carpa_lms=(tglarge fglarge)
[ "$const_arpa" = true ] || carpa_lms=()

# The three sets of the 100 h setup: Kaldi's names (data/<set>) and the corpus' (LibriSpeech/<part>).
sets=(train_clean_100 dev_clean test_clean)
test_sets=(dev_clean test_clean)

# Everything a run needs is checked before the first step; each failure is one line.
require_kaldi_egs egs/librispeech/s5
if in_stage_range 2 || { in_stage_range 1 && [ "$download" = true ]; }; then
  [ -n "$corpus_dir" ] || \
    die "--corpus-dir is required for stages 1-2: the directory holding LibriSpeech/train-clean-100 etc."
  [ -d "$corpus_dir" ] || die "LibriSpeech corpus dir $corpus_dir does not exist"
  corpus_dir=$(cd "$corpus_dir" && pwd)
  if ! { in_stage_range 1 && [ "$download" = true ]; }; then
    for set in "${sets[@]}"; do
      [ -d "$corpus_dir/LibriSpeech/${set//_/-}" ] || \
        die "LibriSpeech part $corpus_dir/LibriSpeech/${set//_/-} not found: unpack it there, or pass --download true"
    done
  fi
fi
if in_stage_range 1 && [ -n "$lm_dir" ]; then
  [ -d "$lm_dir" ] || die "--lm-dir $lm_dir does not exist"
  lm_dir=$(cd "$lm_dir" && pwd)
  for f in "${lm_files[@]}"; do
    [ -s "$lm_dir/$f" ] || die "--lm-dir $lm_dir has no $f (needed: ${lm_files[*]})"
  done
fi
out_dir=$(abspath "$out_dir")
check_out_dir "$out_dir"
done_dir=$out_dir/.done
layout=$recipe_dir/layout.txt
if in_stage_range 17; then check_link_targets "$layout" "$out_dir"; fi

enter_kaldi_egs
if [ "$stage" -le 16 ]; then  # the last stage only links files
  require_binaries compute-mfcc-feats compute-cmvn-stats copy-feats transform-feats \
    gmm-init-mono gmm-align-compiled gmm-est-fmllr gmm-latgen-faster fstcompose
fi
if in_stage_range 3 || in_stage_range 13; then use_arpa2fst "$arpa2fst"; fi
if [ "${#carpa_lms[@]}" -gt 0 ] && { in_stage_range 4 || in_stage_range 13; }; then
  require_binaries arpa-to-const-arpa
fi
log "$cmdline"

if begin_stage 1 download; then
  if [ "$download" = true ]; then
    for set in "${sets[@]}"; do
      step local/download_and_untar.sh "$corpus_dir" "$data_url" "${set//_/-}"
    done
  fi
  if [ -n "$lm_dir" ]; then
    step mkdir -p data/local/lm
    for f in "${lm_files[@]}"; do step ln -sfn "$lm_dir/$f" "data/local/lm/$f"; done
  else
    # Kaldi's script: downloads only the LM files that are not already in data/local/lm.
    step local/download_lm.sh "$lm_url" data/local/lm
  fi
  end_stage 1 download
fi

if begin_stage 2 data; then
  for set in "${sets[@]}"; do
    step local/data_prep.sh "$corpus_dir/LibriSpeech/${set//_/-}" "data/$set"
  done
  end_stage 2 data
fi

if begin_stage 3 lang; then
  step local/prepare_dict.sh --stage 3 --nj 30 --cmd "$train_cmd" \
    data/local/lm data/local/lm data/local/dict_nosp
  step utils/prepare_lang.sh data/local/dict_nosp "<UNK>" data/local/lang_tmp_nosp data/lang_nosp
  step local/format_lms.sh --src-dir data/lang_nosp data/local/lm
  end_stage 3 lang
fi

if begin_stage 4 carpa; then
  [ "${#carpa_lms[@]}" -gt 0 ] || comment "no const-arpa LMs: --const-arpa false"
  for lm in ${carpa_lms[@]+"${carpa_lms[@]}"}; do
    step utils/build_const_arpa_lm.sh "data/local/lm/lm_$lm.arpa.gz" data/lang_nosp "data/lang_nosp_test_$lm"
  done
  end_stage 4 carpa
fi

if begin_stage 6 mfcc; then
  for set in "${sets[@]}"; do
    step steps/make_mfcc.sh --cmd "$train_cmd" --nj "$feats_nj" "data/$set" "exp/make_mfcc/$set" mfcc
    step steps/compute_cmvn_stats.sh "data/$set" "exp/make_mfcc/$set" mfcc
  done
  end_stage 6 mfcc
fi

if begin_stage 7 subsets; then
  step utils/subset_data_dir.sh --shortest data/train_clean_100 "$mono_utts" data/train_2kshort
  step utils/subset_data_dir.sh data/train_clean_100 "$tri1_utts" data/train_5k
  step utils/subset_data_dir.sh data/train_clean_100 "$tri2_utts" data/train_10k
  end_stage 7 subsets
fi

if begin_stage 8 mono; then
  step steps/train_mono.sh --boost-silence 1.25 --nj "$train_nj" --cmd "$train_cmd" \
    data/train_2kshort data/lang_nosp exp/mono
  end_stage 8 mono
fi

if begin_stage 9 tri1; then
  step steps/align_si.sh --boost-silence 1.25 --nj "$decode_nj" --cmd "$train_cmd" \
    data/train_5k data/lang_nosp exp/mono exp/mono_ali_5k
  step steps/train_deltas.sh --boost-silence 1.25 --cmd "$train_cmd" "$num_leaves_tri1" "$num_gauss_tri1" \
    data/train_5k data/lang_nosp exp/mono_ali_5k exp/tri1
  end_stage 9 tri1
fi

if begin_stage 10 tri2b; then
  step steps/align_si.sh --nj "$decode_nj" --cmd "$train_cmd" \
    data/train_10k data/lang_nosp exp/tri1 exp/tri1_ali_10k
  step steps/train_lda_mllt.sh --cmd "$train_cmd" --splice-opts "--left-context=3 --right-context=3" \
    "$num_leaves_tri2b" "$num_gauss_tri2b" data/train_10k data/lang_nosp exp/tri1_ali_10k exp/tri2b
  end_stage 10 tri2b
fi

if begin_stage 11 tri3b; then
  step steps/align_si.sh --nj "$decode_nj" --cmd "$train_cmd" --use-graphs true \
    data/train_10k data/lang_nosp exp/tri2b exp/tri2b_ali_10k
  step steps/train_sat.sh --cmd "$train_cmd" "$num_leaves_tri3b" "$num_gauss_tri3b" \
    data/train_10k data/lang_nosp exp/tri2b_ali_10k exp/tri3b
  end_stage 11 tri3b
fi

if begin_stage 12 tri4b; then
  step steps/align_fmllr.sh --nj "$train_nj" --cmd "$train_cmd" \
    data/train_clean_100 data/lang_nosp exp/tri3b exp/tri3b_ali_clean_100
  step steps/train_sat.sh --cmd "$train_cmd" "$num_leaves_tri4b" "$num_gauss_tri4b" \
    data/train_clean_100 data/lang_nosp exp/tri3b_ali_clean_100 exp/tri4b
  end_stage 12 tri4b
fi

if begin_stage 13 prons; then
  step steps/get_prons.sh --cmd "$train_cmd" data/train_clean_100 data/lang_nosp exp/tri4b
  step utils/dict_dir_add_pronprobs.sh --max-normalize true data/local/dict_nosp \
    exp/tri4b/pron_counts_nowb.txt exp/tri4b/sil_counts_nowb.txt \
    exp/tri4b/pron_bigram_counts_nowb.txt data/local/dict
  step utils/prepare_lang.sh data/local/dict "<UNK>" data/local/lang_tmp data/lang
  step local/format_lms.sh --src-dir data/lang data/local/lm
  for lm in ${carpa_lms[@]+"${carpa_lms[@]}"}; do
    step utils/build_const_arpa_lm.sh "data/local/lm/lm_$lm.arpa.gz" data/lang "data/lang_test_$lm"
  done
  end_stage 13 prons
fi

if begin_stage 14 graph; then
  step utils/mkgraph.sh data/lang_test_tgsmall exp/tri4b exp/tri4b/graph_tgsmall
  # Two-pass fMLLR decoding gives the dev/test speaker transforms without their transcripts
  # (exp/tri4b/decode_tgsmall_<set>/trans.*), which PyTorch-Kaldi's README feeds to the
  # fMLLR feature dump.
  for set in "${test_sets[@]}"; do
    step steps/decode_fmllr.sh --nj "$decode_nj" --cmd "$decode_cmd" ${decode_args[@]+"${decode_args[@]}"} \
      exp/tri4b/graph_tgsmall "data/$set" "exp/tri4b/decode_tgsmall_$set"
  done
  end_stage 14 graph
fi

if begin_stage 15 align; then
  # Frame labels (context-dependent states) of every set, from the final SAT model.
  step steps/align_fmllr.sh --nj "$train_nj" --cmd "$train_cmd" \
    data/train_clean_100 data/lang exp/tri4b exp/tri4b_ali_clean_100
  for set in "${test_sets[@]}"; do
    step steps/align_fmllr.sh --nj "$decode_nj" --cmd "$train_cmd" \
      "data/$set" data/lang exp/tri4b "exp/tri4b_ali_$set"
  done
  end_stage 15 align
fi

if begin_stage 16 fmllr; then
  # Train: tri4b's own SAT transforms (exp/tri4b/trans.*, which PyTorch-Kaldi's README copies
  # into decode_tgsmall_train_clean_100); dev/test: those of the decoding (stage 14).
  dump_fmllr "$train_nj" exp/tri4b exp/tri4b data/train_clean_100 data-fmllr-tri4b/train_clean_100
  for set in "${test_sets[@]}"; do
    dump_fmllr "$decode_nj" exp/tri4b "exp/tri4b/decode_tgsmall_$set" "data/$set" "data-fmllr-tri4b/$set"
  done
  end_stage 16 fmllr
fi

if begin_stage 17 layout; then
  link_layout "$layout" "$out_dir"
  check_layout "$layout" "$out_dir"
  end_stage 17 layout
fi

log "done: the Librispeech_*.cfg files can point to $out_dir (see docs/kaldi_recipes.md)"
