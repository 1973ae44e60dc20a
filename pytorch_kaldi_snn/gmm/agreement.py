"""Agreement between GMM alignments and the synthesizer's frame labels.

Agreement is the share of frames whose GMM-aligned phone equals the synthesizer's phone.
Utterances the GMM could not align count as disagreeing on all their frames, so a failed
alignment lowers the number instead of hiding.

CLI (recipe stage 5)::

    python -m pytorch_kaldi_snn.gmm.agreement --data data --exp exp --sets train,dev,test \\
        --out exp/mono/agreement.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pytorch_kaldi_snn.decoding.transition_model import read_transition_model
from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.gmm.labels import frame_labels, read_alignments
from pytorch_kaldi_snn.io.tables import read_symbol_table
from pytorch_kaldi_snn.io.tables import atomic_outputs, read_kaldi_map


def read_reference(ali_txt: Path, phone_ids: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The synthesizer's ``ali.txt`` (one phone symbol per frame) as lang phone ids."""
    reference = {}
    for utt, labels in read_kaldi_map(ali_txt).items():
        try:
            reference[utt] = np.array([phone_ids[p] for p in labels.split()], dtype=np.int64)
        except KeyError as err:
            message = f"phone {err.args[0]!r} is not in the lang's phones.txt"
            raise DataError(message, file=str(ali_txt), utt=utt) from None
    return reference


def agreement(gmm_phones: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Frame agreement over all reference utterances, plus counts."""
    agree = total = 0
    for utt, ref in reference.items():
        total += len(ref)
        hyp = gmm_phones.get(utt)
        if hyp is None:
            continue
        if len(hyp) != len(ref):
            raise DataError(f"GMM alignment has {len(hyp)} frames, the synthesizer's {len(ref)}", utt=utt)
        agree += int(np.sum(hyp == ref))
    aligned = sum(1 for utt in reference if utt in gmm_phones)
    return {"agreement": agree / max(total, 1), "frames": total, "utts": len(reference), "utts_aligned": aligned}


def set_agreement(ali_dir: Path, ali_txt: Path, phones_txt: Path) -> dict[str, float]:
    """Agreement of one alignment dir (``exp/mono_ali_<set>``) with a data dir's ``ali.txt``."""
    model = read_transition_model(Path(ali_dir) / "final.mdl")
    gmm_phones = frame_labels(read_alignments(ali_dir), model, "phone")
    return agreement(gmm_phones, read_reference(ali_txt, read_symbol_table(phones_txt)))


def main(argv: Sequence[str] | None = None) -> int:
    """Write the per-set agreement as JSON and print it."""
    parser = command_parser("pytorch_kaldi_snn.gmm.agreement", __doc__)
    parser.add_argument("--data", type=Path, required=True, help="data dir with <set>/ali.txt")
    parser.add_argument("--exp", type=Path, required=True, help="exp dir with mono_ali_<set>/")
    parser.add_argument("--lang", type=Path, required=True, help="lang dir (phones.txt)")
    parser.add_argument("--sets", default="train,dev,test", help="comma-separated sets")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    return run_reporting_errors("agreement", lambda: _report(args))


def _report(args: argparse.Namespace) -> None:
    report = {
        name: set_agreement(args.exp / f"mono_ali_{name}", args.data / name / "ali.txt", args.lang / "phones.txt")
        for name in args.sets.split(",")
    }
    with atomic_outputs(args.out) as (temp,):
        Path(temp).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, values in report.items():
        print(f"{name}: {100 * values['agreement']:.2f}% of {values['frames']} frames "
              f"({values['utts_aligned']}/{values['utts']} utterances aligned)")


if __name__ == "__main__":
    sys.exit(main())
