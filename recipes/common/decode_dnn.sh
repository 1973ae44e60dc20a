#!/usr/bin/env bash
# Decode forward arks with Kaldi and score them, as PyTorch-Kaldi's
# kaldi_decoding_scripts/decode_dnn.sh does: one latgen-faster-mapped job per forward ark
# (<decode-dir>/lat.<job>.gz, <decode-dir>/num_jobs), the model copied next to the decode dir
# (<decode-dir>/../final.mdl, where Kaldi's scoring looks for it), then the corpus' own Kaldi
# scoring run in its egs dir: TIMIT's local/score.sh (39-phone folding of
# conf/phones.60-48-39.map, sclite), LibriSpeech's local/score.sh (WER with compute-wer).
# The best score over LM weights is written to <decode-dir>/best_wer.
#
# A forward ark holds, per utterance, a matrix of scaled log-likelihoods (log-posteriors minus
# log-priors), one row per frame and one column per pdf: what this project's forward step and
# PyTorch-Kaldi's write. The built-in decoder reads and writes the same files.
#
# latgen's options (and their defaults) come from pytorch_kaldi_snn/config/latgen_opts.py, the
# list the runner's Kaldi path passes too; it needs only a python3 (standard library), $PYTHON.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

common_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$common_dir/lib.sh"
# shellcheck source=kaldi.sh
. "$common_dir/kaldi.sh"
# shellcheck source=path.sh
. "$common_dir/path.sh"

# Begin configuration section.
corpus=timit           # timit|librispeech: scoring runs in $KALDI_ROOT/egs/<corpus>/s5
# latgen options: empty takes the default of DecodeOptions (pytorch_kaldi_snn/config/latgen_opts.py)
acwt=                  # acoustic scale (latgen-faster-mapped --acoustic-scale)
beam=
lattice_beam=
max_active=
min_active=
max_mem=
nj=0                   # latgen jobs running at once; 0: all (one per forward ark)
num_threads=1          # > 1: latgen-faster-mapped-parallel with that many threads per job
scoring_script=local/score.sh   # relative to the egs dir, or absolute; called as <script> [opts] <data> <graph> <decode-dir>
scoring_opts=          # options of the scoring script, e.g. "--min-lmwt 1 --max-lmwt 10"
skip_scoring=false
stage=0                # 0: decode and score; 1: score the lattices already there
dry_run=false          # true: print every step, in order, as a bash script; run nothing
# End configuration section.

usage="Usage: $0 [options] <graph-dir> <data-dir> <ali-dir> <decode-dir> <forward-ark>...
e.g.: $0 --config recipes/timit/conf/decode.conf recipes/timit/exp/tri3/graph \\
        recipes/timit/data/test recipes/timit/exp/tri3_ali_test exp/TIMIT_snn_v2/decode_test \\
        exp/TIMIT_snn_v2/forward_test.ark
<graph-dir> has HCLG.fst and words.txt; <data-dir> the reference (text; TIMIT also stm, glm);
<ali-dir> the model final.mdl. Each <forward-ark> is a file or a Kaldi rspecifier
('ark:copy-feats scp:f.scp ark:- |'); job N decodes the N-th into <decode-dir>/lat.N.gz.
Options (default):
  --config FILE          options as --name=value lines (recipes/<corpus>/conf/decode.conf)
  --corpus NAME          timit or librispeech: egs dir of the scoring ($corpus)
  --acwt X               acoustic scale
  --beam X               decoding beam
  --lattice-beam X       lattice beam
  --max-active N         --min-active N
  --max-mem N            (these six, when not given: DecodeOptions' defaults, which
                         python3 pytorch_kaldi_snn/config/latgen_opts.py --help lists)
  --nj N                 latgen jobs at once, 0 = all ($nj)
  --num-threads N        threads per job, > 1 uses latgen-faster-mapped-parallel ($num_threads)
  --scoring-script PATH  ($scoring_script)
  --scoring-opts 'OPTS'  ('$scoring_opts')
  --skip-scoring BOOL    ($skip_scoring)
  --stage N              0 decode + score, 1 score only ($stage)
  --dry-run BOOL         print the steps without running them ($dry_run)"

cmdline="$0 $*"
# shellcheck source=parse_options.sh
. "$common_dir/parse_options.sh"

[ $# -ge 5 ] || die "expected <graph-dir> <data-dir> <ali-dir> <decode-dir> <forward-ark>..., got $# argument(s) (see --help)"
check_bool dry_run "$dry_run"
check_bool skip_scoring "$skip_scoring"
for opt in nj num_threads stage; do check_int "$opt" "${!opt}"; done
case "$corpus" in timit|librispeech) ;; *) die "--corpus must be timit or librispeech, got '$corpus'" ;; esac

# Paths are made absolute: the steps run in the Kaldi egs dir.
graph=$(abspath "$1"); data=$(abspath "$2"); ali=$(abspath "$3"); dir=$(abspath "${4%/}")
shift 4
feats=()
for ark in "$@"; do
  case "$ark" in
    ark:*|ark,*|scp:*|scp,*) feats+=("$ark") ;;
    *) [ -f "$ark" ] || die "forward ark $ark does not exist"
       feats+=("ark:$(abspath "$ark")") ;;
  esac
done
njobs=${#feats[@]}

# Everything a run needs is checked before the first step; each failure is one line.
require_kaldi_egs "egs/$corpus/s5"
kaldi_root=$(cd "$KALDI_ROOT" && pwd)
required=("$graph/HCLG.fst" "$graph/words.txt" "$ali/final.mdl")
[ "$stage" -le 0 ] || required=("$graph/words.txt" "$dir/lat.1.gz" "$dir/num_jobs")
if [ "$skip_scoring" = false ]; then
  required+=("$data/text")
  [ "$corpus" = timit ] && required+=("$data/stm" "$data/glm")
fi
for f in "${required[@]}"; do
  [ -f "$f" ] || die "missing input $f"
done
case "$scoring_script" in /*) scorer=$scoring_script ;; *) scorer=$egs_dir/$scoring_script ;; esac
if [ "$skip_scoring" = false ] && [ ! -x "$scorer" ]; then
  die "scoring script $scorer not found or not executable (set --scoring-script, or --skip-scoring true)"
fi

# latgen's options, one per line, from the list the runner uses (one source of truth).
given=()
give() { [ -z "$2" ] || given+=("$1" "$2"); }
give --acwt "$acwt"; give --beam "$beam"; give --lattice-beam "$lattice_beam"
give --max-active "$max_active"; give --min-active "$min_active"; give --max-mem "$max_mem"
latgen_opts_py=$common_dir/../../pytorch_kaldi_snn/config/latgen_opts.py
if ! opts_text=$("${PYTHON:-python3}" "$latgen_opts_py" ${given[@]+"${given[@]}"} \
                 --word-symbol-table "$graph/words.txt" 2>&1); then
  die "${opts_text##*$'\n'}"
fi
mapfile -t latgen_opts <<< "$opts_text"

latgen="latgen-faster-mapped"
thread_opts=()
if [ "$num_threads" -gt 1 ]; then
  latgen="latgen-faster-mapped-parallel"
  thread_opts=("--num-threads=$num_threads")
fi

enter_kaldi_egs
[ "$stage" -le 0 ] && require_binaries "$latgen"
if [ "$skip_scoring" = false ]; then
  if [ "$corpus" = timit ]; then
    require_binaries lattice-align-phones lattice-to-ctm-conf
    [ "$dry_run" = true ] || [ -f "$kaldi_root/tools/sctk/bin/hubscr.pl" ] || \
      die "sclite not found at $kaldi_root/tools/sctk/bin/hubscr.pl (TIMIT scoring): cd \$KALDI_ROOT/tools && make sclite"
  else
    require_binaries lattice-scale lattice-add-penalty lattice-best-path compute-wer
  fi
fi
log "$cmdline"

if [ "$stage" -le 0 ]; then
  comment "decoding $njobs forward ark(s) into $dir"
  step mkdir -p "$dir/log"
  write_text "$dir/num_jobs" "$njobs"
  running=0
  for job in $(seq 1 "$njobs"); do
    # the lattice file is named inside a shell command (Kaldi runs the wspecifier's pipe with sh): quoted
    step_bg "$dir/log/decode.$job.log" "$latgen" ${thread_opts[@]+"${thread_opts[@]}"} "${latgen_opts[@]}" \
      "$ali/final.mdl" "$graph/HCLG.fst" "${feats[$((job - 1))]}" "ark:|gzip -c > $(quote_cmd "$dir/lat.$job.gz")"
    running=$((running + 1))
    if [ "$nj" -gt 0 ] && [ "$running" -ge "$nj" ]; then wait_bg; running=0; fi
  done
  [ "$running" -eq 0 ] || wait_bg
  # Kaldi's scoring reads the model one level above the decode dir.
  step cp "$ali/final.mdl" "$(dirname "$dir")/final.mdl"
fi

if [ "$skip_scoring" = false ]; then
  read -r -a score_opts <<< "$scoring_opts"
  step "$scoring_script" ${score_opts[@]+"${score_opts[@]}"} "$data" "$graph" "$dir"
  step "$common_dir/best_wer.sh" "$dir"
fi
