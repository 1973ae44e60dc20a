# shellcheck shell=bash
# shellcheck disable=SC2154  # dry_run, train_cmd (cmd.sh), repo_root: set by the calling script
# Kaldi-side steps shared by recipes/timit/run.sh and recipes/librispeech/run.sh: finding the
# Kaldi egs directory, fMLLR feature dumping with per-speaker CMVN, and linking the Kaldi
# outputs into this project's layout (recipes/<corpus>/layout.txt). Needs lib.sh.

# require_kaldi_egs REL: check KALDI_ROOT and set egs_dir=$KALDI_ROOT/REL (e.g. egs/timit/s5).
# Prints nothing unless it fails, so that a failure is the only line the user sees.
require_kaldi_egs() {
  [ -n "${KALDI_ROOT:-}" ] || \
    die "KALDI_ROOT is not set: export KALDI_ROOT=/path/to/kaldi (the checkout holding src/ and egs/)"
  [ -d "$KALDI_ROOT" ] || die "KALDI_ROOT=$KALDI_ROOT is not a directory"
  egs_dir=$(cd "$KALDI_ROOT" && pwd)/$1
  [ -f "$egs_dir/path.sh" ] || \
    die "no Kaldi recipe at $egs_dir (no path.sh there): is KALDI_ROOT=$KALDI_ROOT a Kaldi checkout?"
}

# enter_kaldi_egs: cd into $egs_dir and source its path.sh (Kaldi's binaries, utils/, LC_ALL=C).
# Our Python (PYTHON, default python3: the one with this project's dependencies) is kept as
# PYTORCH_KALDI_SNN_PYTHON first, because Kaldi's path.sh may set PYTHON itself (LibriSpeech's
# sets PYTHON=python2.7 for its G2P tools).
enter_kaldi_egs() {
  export PYTORCH_KALDI_SNN_PYTHON=${PYTHON:-python3}
  enter_dir "$egs_dir"
  [ "$dry_run" = true ] && echo ". ./path.sh"
  set +u
  # shellcheck disable=SC1091  # Kaldi's own path.sh, found at run time
  . ./path.sh
  set -u
}

# require_binaries NAME...: each Kaldi/OpenFst binary must be on PATH (not checked in a dry run,
# which runs none of them).
require_binaries() {
  [ "$dry_run" = true ] && return 0
  local bin
  for bin in "$@"; do
    command -v "$bin" > /dev/null 2>&1 || \
      die "Kaldi binary $bin not found on PATH after sourcing $egs_dir/path.sh: build Kaldi (cd \$KALDI_ROOT/src && make) or fix KALDI_ROOT"
  done
}

# check_out_dir DIR: the project layout must not be rooted at the Kaldi egs dir, whose
# data/<set> holds the MFCC data dirs that the fMLLR ones would shadow.
check_out_dir() {
  local out
  out=$(abspath "$1")
  [ "${out%/}" != "${egs_dir%/}" ] || \
    die "--out-dir must not be the Kaldi egs dir $egs_dir (its data/<set> are the MFCC dirs): give a project directory"
}

# dump_fmllr NJ GMM_DIR TRANSFORM_DIR SRC_DATA FMLLR_DATA [REF_FILE...]
# fMLLR features of SRC_DATA through GMM_DIR's feature pipeline and the per-speaker transforms
# in TRANSFORM_DIR (steps/nnet/make_fmllr_feats.sh), stored in FMLLR_DATA/data; then the
# per-speaker CMVN statistics PyTorch-Kaldi's fea_opts apply (FMLLR_DATA/data/cmvn_speaker.ark,
# linked as FMLLR_DATA/cmvn_speaker.ark), and
# copies of the scoring references (REF_FILE, e.g. stm glm) next to the features.
dump_fmllr() {
  local nj=$1 gmm=$2 trans=$3 src=$4 dst=$5
  shift 5
  step steps/nnet/make_fmllr_feats.sh --nj "$nj" --cmd "$train_cmd" --transform-dir "$trans" \
    "$dst" "$src" "$gmm" "$dst/log" "$dst/data"
  # Where PyTorch-Kaldi's README puts it (<dir>/data/), and under the name the built-in recipe uses.
  step compute-cmvn-stats "--spk2utt=ark:$dst/spk2utt" "scp:$dst/feats.scp" "ark:$dst/data/cmvn_speaker.ark"
  step ln -sfn data/cmvn_speaker.ark "$dst/cmvn_speaker.ark"
  local ref
  for ref in "$@"; do
    step cp "$src/$ref" "$dst/$ref"
  done
}

# layout_entries LAYOUT_FILE: "<project path> <kaldi egs path>" per entry of a layout file
# (see recipes/timit/layout.txt). An optional entry ("?path") is listed only when its Kaldi
# path exists, or in a dry run (which assumes the stages making it ran).
layout_entries() {
  local project kaldi rest
  while read -r project kaldi rest; do
    case "$project" in ''|'#'*) continue ;; esac
    [ -n "$kaldi" ] || die "$1: entry '$project' has no Kaldi path"
    if [ "${project:0:1}" = "?" ]; then
      project=${project:1}
      [ "$dry_run" = true ] || [ -e "$egs_dir/$kaldi" ] || continue
    fi
    printf '%s %s\n' "$project" "$kaldi"
  done < "$1"
}

# check_link_targets LAYOUT_FILE OUT_DIR: no OUT_DIR/<project path> is a real file or directory
# (which the links would not replace). Run before the first step, and again by link_layout.
check_link_targets() {
  local out project kaldi
  out=$(abspath "$2")
  while read -r project kaldi; do
    if [ -e "$out/$project" ] && [ ! -L "$out/$project" ]; then
      die "$out/$project exists and is not a symlink: move it away, or pick another --out-dir"
    fi
  done < <(layout_entries "$1")
}

# link_layout LAYOUT_FILE OUT_DIR: OUT_DIR/<project path> -> $egs_dir/<kaldi path>, per entry.
link_layout() {
  local layout=$1 out
  out=$(abspath "$2")
  check_link_targets "$layout" "$out"
  local project kaldi parents=()
  while read -r project kaldi; do
    parents+=("$out/$(dirname "$project")")
  done < <(layout_entries "$layout")
  # one mkdir for all parents, in first-seen order
  local unique=() p q seen
  for p in "${parents[@]}"; do
    seen=false
    for q in ${unique[@]+"${unique[@]}"}; do [ "$q" = "$p" ] && seen=true; done
    $seen || unique+=("$p")
  done
  step mkdir -p "${unique[@]}"
  while read -r project kaldi; do
    step ln -sfn "$egs_dir/$kaldi" "$out/$project"
  done < <(layout_entries "$layout")
}

# check_layout LAYOUT_FILE OUT_DIR: every file the layout promises exists under OUT_DIR.
# The checker is pytorch_kaldi_snn/recipes_layout.py (stdlib only, run as a script), the same
# code the tests use to check the cfgs' paths against the layout.
check_layout() {
  step "$PYTORCH_KALDI_SNN_PYTHON" "$repo_root/pytorch_kaldi_snn/recipes_layout.py" check "$1" "$(abspath "$2")"
}

# use_arpa2fst kaldi|builtin: make sure Kaldi's LM scripts find an arpa2fst. builtin appends
# recipes/common/kaldi-builtin/bin (arpa2fst through the kaldilm pip port) to PATH, so that a
# Kaldi build without src/lmbin still formats its LMs; Kaldi's own arpa2fst, when built, comes
# first on PATH and is used.
use_arpa2fst() {
  if [ "$1" = builtin ]; then
    local dir=$repo_root/recipes/common/kaldi-builtin/bin
    # shellcheck disable=SC2016  # $PATH is for the dry-run script to expand
    [ "$dry_run" = true ] && printf 'export PATH="$PATH":%s\n' "$(quote_cmd "$dir")"
    export PATH="$PATH:$dir"
  fi
  [ "$dry_run" = true ] && return 0
  command -v arpa2fst > /dev/null 2>&1 || \
    die "arpa2fst not found on PATH (Kaldi's src/lmbin is not built): build it (cd \$KALDI_ROOT/src && make lmbin), or pass --arpa2fst builtin"
}

# expect_files SCRIPT FILE...: stop when a Kaldi script that exited 0 did not write FILE (some,
# e.g. local/timit_format_data.sh, carry on past a failing command). A dry run prints the check.
expect_files() {
  local script=$1 file
  shift
  for file in "$@"; do
    if [ "$dry_run" = true ]; then quote_cmd test -s "$file"; continue; fi
    [ -s "$file" ] || die "$script exited 0 but did not write $file: see its output above"
  done
}
