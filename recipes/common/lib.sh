# shellcheck shell=bash
# shellcheck disable=SC2154  # dry_run, stage, stop_stage, done_dir: set by the calling script
# Helpers shared by the recipe scripts (recipes/timit/run.sh, recipes/librispeech/run.sh,
# recipes/common/decode_dnn.sh). Sourced, never run.
#
# The scripts call every Kaldi step through `step`, which either runs it or, with
# dry_run=true, prints it on stdout as one shell-quoted command line: the dry run of a
# script is then a bash script that does what the real run would do. Logs go to stderr
# with a timestamp and the caller's file:line, so stdout stays the list of steps.
#
# Variables the caller defines: dry_run (true|false); for stages also stage, stop_stage and
# done_dir (where the .done markers go).

# The script's name in messages: its folder and file (timit/run.sh, common/decode_dnn.sh).
if [[ $0 == */* ]]; then prog=${0%/*}; prog=${prog##*/}/${0##*/}; else prog=$0; fi

# log MESSAGE...: timestamped progress line on stderr.
log() {
  local where="${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}"
  printf '%s (%s) %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$where" "$*" >&2
}

# die MESSAGE...: the one line a user sees when something is missing; exits 1.
die() {
  printf '%s: error: %s\n' "$prog" "$*" >&2
  exit 1
}

# quote_cmd ARG...: the arguments as one line that bash reads back as the same words.
quote_cmd() {
  local out="" arg
  for arg in "$@"; do
    if [[ -n $arg && $arg =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
      out+=" $arg"
    else
      out+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  printf '%s\n' "${out# }"
}

# step CMD ARG...: run one step (or print it, in a dry run). A failing step stops the script
# with one line naming the step and its log.
step() {
  if [ "$dry_run" = true ]; then
    quote_cmd "$@"
    return 0
  fi
  log "run: $(quote_cmd "$@")"
  local rc=0
  "$@" || rc=$?
  [ "$rc" -eq 0 ] || die "step failed with exit code $rc: $(quote_cmd "$@")"
}

# step_bg LOG CMD ARG...: start one step in the background with its output in LOG (printed as
# "CMD ARG... > LOG 2>&1 &" in a dry run); wait_bg waits for all of them ("wait").
bg_pids=()
bg_logs=()
step_bg() {
  local logfile=$1
  shift
  if [ "$dry_run" = true ]; then
    printf '%s > %s 2>&1 &\n' "$(quote_cmd "$@")" "$(quote_cmd "$logfile")"
    return 0
  fi
  log "run: $(quote_cmd "$@") > $(quote_cmd "$logfile")"
  "$@" > "$logfile" 2>&1 &
  bg_pids+=($!)
  bg_logs+=("$logfile")
}

wait_bg() {
  if [ "$dry_run" = true ]; then echo wait; return 0; fi
  local i failed=""
  for i in "${!bg_pids[@]}"; do
    wait "${bg_pids[$i]}" || failed+=" ${bg_logs[$i]}"
  done
  bg_pids=()
  bg_logs=()
  [ -z "$failed" ] || die "background step failed, see${failed}"
}

# comment TEXT...: a "# ..." line in the dry-run script (and a log line in a real run).
comment() {
  if [ "$dry_run" = true ]; then printf '# %s\n' "$*"; else log "$*"; fi
}

# enter_dir DIR: cd into DIR; the dry-run script gets the same cd.
enter_dir() {
  [ "$dry_run" = true ] && quote_cmd cd "$1"
  cd "$1" || die "cannot cd into $1"
}

# write_text FILE TEXT: write one line to FILE (printed as "echo TEXT > FILE" in a dry run).
write_text() {
  if [ "$dry_run" = true ]; then
    printf '%s > %s\n' "$(quote_cmd echo "$2")" "$(quote_cmd "$1")"
    return 0
  fi
  printf '%s\n' "$2" > "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
}

# in_stage_range N: true when stage N is in [stage, stop_stage].
in_stage_range() {
  [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]
}

# begin_stage N NAME: true when stage N is in [stage, stop_stage] and its .done marker is
# absent; prints the stage banner. Pair with `end_stage N NAME` at the end of the stage.
begin_stage() {
  local n=$1 name=$2
  in_stage_range "$n" || return 1
  if [ -f "$done_dir/stage$n.$name.done" ]; then
    comment "stage $n ($name): already done, skipped (remove $done_dir/stage$n.$name.done to redo it)"
    return 1
  fi
  comment "stage $n: $name"
  return 0
}

end_stage() {
  [ "$dry_run" = true ] && return 0
  mkdir -p "$done_dir"
  touch "$done_dir/stage$1.$2.done"
  log "stage $1 ($2) done"
}

# check_bool NAME VALUE: VALUE must be true or false.
check_bool() {
  case "$2" in true|false) ;; *) die "--${1//_/-} takes true or false, got '$2'" ;; esac
}

# check_int NAME VALUE: VALUE must be a non-negative integer.
check_int() {
  [[ $2 =~ ^[0-9]+$ ]] || die "--${1//_/-} takes a non-negative integer, got '$2'"
}

# abspath PATH: PATH made absolute against the current directory (the path need not exist).
abspath() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/${1#./}" ;;
  esac
}
