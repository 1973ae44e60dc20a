#!/usr/bin/env python3
"""Features for one data dir, like ``steps/make_{fbank,mfcc}.sh`` + ``compute_cmvn_stats.sh``.

Usage: local/make_feats.py <kind> <conf> <data-dir> <ark-dir>
  e.g. local/make_feats.py fbank conf/fbank.conf data/train data/ark/fbank

Writes <data-dir>/{feats.scp,cmvn.scp,utt2num_frames} (arks in <ark-dir>) and copies the
per-speaker CMVN stats to <data-dir>/cmvn_speaker.ark, the file PyTorch-Kaldi's fea_opts
(``apply-cmvn --utt2spk=ark:utt2spk ark:cmvn_speaker.ark ...``) read.
"""
import sys
from pathlib import Path

from pytorch_kaldi_snn.errors import UserInputError
from pytorch_kaldi_snn.features.extract import make_pytorch_kaldi_feats


def main(argv: list) -> int:
    if len(argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 1
    kind, conf, data_dir, ark_dir = argv[0], Path(argv[1]), Path(argv[2]), Path(argv[3])
    try:
        make_pytorch_kaldi_feats(data_dir, kind, conf, ark_dir)
    except (UserInputError, OSError) as err:  # one line for the shell, no traceback
        print(f"make_feats: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
