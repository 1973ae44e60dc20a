# shellcheck shell=bash
# How Kaldi's steps run their parallel jobs. run.pl runs them on this machine; on a grid use
# queue.pl or slurm.pl as in $KALDI_ROOT/egs/<corpus>/s5/cmd.sh, e.g. train_cmd="queue.pl --mem 4G".
export train_cmd="run.pl --mem 4G"
export decode_cmd="run.pl --mem 4G"
