#!/usr/bin/env bash
# Usage: best_wer.sh <decode-dir>
# The best score over the LM weights (and word insertion penalties) of a scored Kaldi decode
# dir: sclite's Sum/Avg lines of score_*/*.sys (TIMIT) or compute-wer's %WER lines of wer_*
# (LibriSpeech), as one "%WER ..." line (Kaldi's utils/best_wer.sh). Printed, and written to
# <decode-dir>/best_wer. Run in a Kaldi egs dir (it calls utils/best_wer.sh from there).
set -euo pipefail
[ $# -eq 1 ] || { echo "Usage: $0 <decode-dir>" >&2; exit 1; }
dir=$1
[ -x utils/best_wer.sh ] || { echo "$0: error: run it in a Kaldi egs dir (no utils/best_wer.sh in $PWD)" >&2; exit 1; }
shopt -s nullglob
wer_files=("$dir"/wer_*)
sys_files=("$dir"/score_*/*.sys)
best=$( { [ ${#wer_files[@]} -eq 0 ] || grep -H WER "${wer_files[@]}" || true
          [ ${#sys_files[@]} -eq 0 ] || grep -H Sum/Avg "${sys_files[@]}" || true; } | utils/best_wer.sh)
[ -n "$best" ] || { echo "$0: error: no scores in $dir (wer_* or score_*/*.sys)" >&2; exit 1; }
printf '%s\n' "$best" > "$dir/best_wer"
printf '%s\n' "$best"
