#!/usr/bin/env bash
# Make data/<set>/text the 39-class phone transcript, as in Kaldi's TIMIT recipe: the
# reference for PER scoring and the LM/alignment transcripts. The word transcript is kept
# as text.words. Running it twice is harmless.
# Usage: local/phone_text.sh <data-dir>   e.g. local/phone_text.sh data/train
set -euo pipefail
[ $# -eq 1 ] || { sed -n 5p "$0" >&2; exit 1; }
d=$1
[ -f "$d/text.phn" ] || { echo "$0: missing $d/text.phn" >&2; exit 1; }
if [ ! -f "$d/text.words" ]; then
  mv "$d/text" "$d/text.words"
fi
cp "$d/text.phn" "$d/text.tmp" && mv "$d/text.tmp" "$d/text"
