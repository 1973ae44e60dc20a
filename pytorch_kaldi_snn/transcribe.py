"""Transcribe new audio with a finished experiment: phones per utterance, optionally CTM and lattices::

    python -m pytorch_kaldi_snn.transcribe exp/synth_snn_v2 a.wav b.wav
    python -m pytorch_kaldi_snn.transcribe exp/synth_snn_v2 --wav-scp wav.scp --utt2spk utt2spk \\
        --ctm out.ctm --lattices lat.1.gz

Prints ``utt phone phone ...`` per utterance, in the order the wavs were given (or of the
``wav.scp`` lines); the utterance id is the wav's file name without extension, or the
``wav.scp`` key. Wav files given on the command line are always files, read
with soundfile and converted to 16-bit PCM (24-bit, float, FLAC); lines of a ``wav.scp`` that end
in ``|`` are commands run by the shell, as in Kaldi. Everything is the experiment's: features with the training
set's Kaldi conf (``conf/<kind>.conf`` that make_feats left in its data dir), CMVN per speaker
(``--utt2spk``; without it every utterance is its own speaker), the test set's ``fea_opts``
pipe, the checkpoint, the priors, the graph and the ``[decoding]`` settings; the decoder is
Kaldi's ``latgen-faster-mapped`` when installed, else the built-in one, as in ``run_exp.sh``.
``--ctm`` writes ``utt 1 start duration phone`` from the best path's alignment; ``--lattices``
a Kaldi lattice archive (gzipped binary; the ``lat.J.gz`` of all ``[decoding] nj`` jobs in one).
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile
import torch
from torch import Tensor

from pytorch_kaldi_snn.cli import command_parser, run_reporting_errors
from pytorch_kaldi_snn.data.streamed import eval_plan, open_source, plan_batches
from pytorch_kaldi_snn.decoding import decode_and_score, read_transition_model
from pytorch_kaldi_snn.decoding.jobs import concatenate_archives
from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.features.audio import check_wav_table, pcm16_samples
from pytorch_kaldi_snn.features.extract import KINDS, FeatureConf, make_pytorch_kaldi_feats
from pytorch_kaldi_snn.forward.decode import decode_options
from pytorch_kaldi_snn.forward.posteriors import batch_scores
from pytorch_kaldi_snn.io.tables import read_symbol_table
from pytorch_kaldi_snn.io import read_int_vectors, read_kaldi_map, write_kaldi_map, write_mat_ark
from pytorch_kaldi_snn.io.atomic import atomic_write
from pytorch_kaldi_snn.trained import TrainedExperiment, load_trained, moved_feature

log = logging.getLogger("transcribe")


def converted_wavs(wavs: Sequence[Path], folder: Path, rate: int) -> Dict[str, str]:
    """Utterance id (file name without extension) -> a 16-bit PCM copy of the wav in ``folder``.

    The user's file name never reaches a ``wav.scp``, where Kaldi would run a name ending in
    ``|`` as a command and read ``name:123`` as an offset: each wav is read here (naming it in
    any error) and written under a number.
    """
    folder.mkdir()
    table: Dict[str, str] = {}
    for number, wav in enumerate(wavs):
        utt = Path(wav).stem
        if any(c.isspace() or not c.isprintable() for c in utt):
            raise DataError("the file name (without extension) is the utterance id, and Kaldi's "
                            "tables cannot hold spaces or control characters in it; rename the "
                            "file or give --wav-scp", file=str(wav))
        if utt in table:
            raise DataError("two wavs with this utterance id (file name)", file=str(wav))
        copy = folder / f"{number}.wav"
        soundfile.write(copy, pcm16_samples(str(wav), rate), rate, subtype="PCM_16")
        table[utt] = str(copy)
    return table


def input_dir(work: Path, wavs: Sequence[Path], wav_scp: Optional[Path], utt2spk: Optional[Path],
              rate: int) -> Tuple[Path, List[str]]:
    """A Kaldi data dir (wav.scp, utt2spk, spk2utt, sorted as Kaldi needs) for the audio to
    transcribe, and its utterance ids in the user's order (the wavs as given, or the
    ``wav.scp``'s lines)."""
    if wav_scp is not None:
        table = read_kaldi_map(wav_scp)
        check_wav_table(table, str(wav_scp), rate)
    else:
        table = converted_wavs(wavs, work / "wav", rate)
    if not table:
        raise DataError("no audio given (wav files or --wav-scp)")
    speakers = read_kaldi_map(utt2spk) if utt2spk is not None else {u: u for u in table}
    missing = [u for u in table if u not in speakers]
    if missing:
        raise DataError("has no speaker", file=str(utt2spk), utt=missing[0])
    data = work / "data"
    data.mkdir()
    order = sorted(table, key=lambda u: u.encode())
    write_kaldi_map(data / "wav.scp", {u: table[u] for u in order})
    write_kaldi_map(data / "utt2spk", {u: speakers[u] for u in order})
    spk2utt: Dict[str, List[str]] = {}
    for utt in order:
        spk2utt.setdefault(speakers[utt], []).append(utt)
    write_kaldi_map(data / "spk2utt", {s: " ".join(spk2utt[s]) for s in sorted(spk2utt, key=str.encode)})
    return data, list(table)


def feature_conf(trained: TrainedExperiment) -> tuple[str, Path]:
    """The kind and Kaldi conf the training set's features were made with."""
    conf_dir = trained.exp.train_set.features[0].scp.parent / "conf"
    found = [(kind, conf_dir / f"{kind}.conf") for kind in KINDS if (conf_dir / f"{kind}.conf").is_file()]
    if len(found) != 1:
        raise DataError("expected one of fbank.conf, mfcc.conf (left by make_feats)", file=str(conf_dir))
    return found[0]


def posteriors(trained: TrainedExperiment, data_dir: Path,
               onnx: Optional[Path] = None) -> Dict[str, np.ndarray]:
    """Log-posteriors minus log-priors per utterance, batched exactly as the forward stage; with
    ``onnx``, the exported model (export/onnx.py) streams each utterance instead."""
    exp = trained.exp
    test = trained.test_set
    # one chunk: the whole input batched as the forward stage batches a set read in one chunk
    spec = dataclasses.replace(test, name="transcribe", labels=(), n_chunks=1,
                               features=tuple(moved_feature(f, data_dir) for f in test.features))
    frames = {u: int(n) for u, n in read_kaldi_map(data_dir / "utt2num_frames").items()}
    data = open_source(spec, exp.features_used(), [], log, num_frames=frames)
    batches = plan_batches(data, eval_plan(data, sys.maxsize, exp.batches.batch_size_valid))
    offset = torch.as_tensor(trained.offsets, device=trained.device)
    scores: Dict[str, np.ndarray] = {}
    output = (onnx_output(trained, onnx) if onnx is not None else
              lambda features: trained.model.output(features, exp.forward.forward_out))
    with torch.no_grad():
        for batch in batches:
            batch = batch.to(trained.device)
            scores.update(batch_scores(batch, output(batch.features), offset))
    return scores


def onnx_output(trained: TrainedExperiment, onnx: Path) -> Callable[[Dict[str, Tensor]], Tensor]:
    """(T, B, classes) log-posteriors of a padded batch from the exported model, each sequence
    streamed from a zero state (padding at the end never reaches a real frame)."""
    from pytorch_kaldi_snn.export.onnx import OnnxStreamer, model_chain

    feature, layers, _ = model_chain(trained.model, trained.exp.forward.forward_out)
    runner = OnnxStreamer(onnx)
    if runner.frame_size != layers[0].input_size:
        raise DataError(f"takes {runner.frame_size} features per frame, the experiment "
                        f"{layers[0].input_size}: exported from another model", file=str(onnx))

    def output(features: Dict[str, Tensor]) -> Tensor:
        frames = features[feature].cpu().numpy()
        posts = [runner.run(frames[:, b])[0] for b in range(frames.shape[1])]
        return torch.from_numpy(np.stack(posts, axis=1)).to(trained.device)
    return output


def ctm_text(best_ali: Path, mdl: Path, phones: Path, shift_s: float) -> str:
    """``utt 1 start duration phone`` for every phone run of the best paths."""
    model = read_transition_model(mdl)
    names = {i: p for p, i in read_symbol_table(phones).items()}
    lines = []
    for utt, ali in read_int_vectors(best_ali):
        lines += [f"{utt} 1 {start * shift_s:.2f} {(end - start) * shift_s:.2f} {names[phone]}\n"
                  for phone, start, end in model.phone_segments(np.asarray(ali))]
    return "".join(lines)


def transcribe(folder: Path, wavs: Sequence[Path] = (), wav_scp: Optional[Path] = None,
               utt2spk: Optional[Path] = None, ctm: Optional[Path] = None,
               lattices: Optional[Path] = None, onnx: Optional[Path] = None
               ) -> Dict[str, List[str]]:
    """Phones per utterance, in the order of ``wavs`` or of the ``wav_scp`` lines; writes
    ``ctm`` and ``lattices`` (in Kaldi's sorted order) when given; with ``onnx``, the
    posteriors come from that exported model instead of the checkpoint."""
    trained = load_trained(Path(folder), log)
    lab = trained.test_set.label_set(trained.exp.forward.normalize_with_counts_from)
    kind, conf = feature_conf(trained)
    options = FeatureConf.from_file(kind, conf)
    with tempfile.TemporaryDirectory(prefix="transcribe.") as tmp:
        work = Path(tmp)
        data, order = input_dir(work, wavs, wav_scp, utt2spk, options.sample_rate)
        make_pytorch_kaldi_feats(data, kind, conf, work / "ark")
        # in the forward stage's order (evaluation order), so that the lattices are its own
        scores = posteriors(trained, data, onnx)
        write_mat_ark(work / "loglikes.ark", None, scores.items())
        decoded = work / "decode"
        run = decode_and_score(work / "loglikes.ark", lab.graph, lab.folder / "final.mdl", decoded,
                               decode_options(trained.exp.decoding), save_lattices=lattices is not None,
                               nj=min(trained.exp.decoding.nj, len(scores)))
        decoded_hyps = read_kaldi_map(decoded / "hyp.txt", allow_empty=True)
        hyps = {utt: decoded_hyps[utt].split() for utt in order if utt in decoded_hyps}
        if ctm is not None:
            shift = float(options.options.get("frame-shift", "10")) / 1000
            text = ctm_text(decoded / "best_ali.txt", lab.folder / "final.mdl", lab.graph / "phones.txt", shift)
            atomic_write(Path(ctm), lambda t: t.write_text(text, encoding="utf-8"))
        if lattices is not None:
            atomic_write(Path(lattices), lambda t: concatenate_archives(run.lattices, t))
    return hyps


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; bad input prints one line and exits 2."""
    parser = command_parser("pytorch_kaldi_snn.transcribe", __doc__)
    parser.add_argument("exp", type=Path, help="finished experiment folder (its out_folder)")
    parser.add_argument("wavs", type=Path, nargs="*", help="wav files (or give --wav-scp)")
    parser.add_argument("--wav-scp", type=Path, help="Kaldi wav.scp instead of wav files")
    parser.add_argument("--utt2spk", type=Path, help="speakers for per-speaker CMVN (default: one per utterance)")
    parser.add_argument("--ctm", type=Path, help="write a phone CTM here")
    parser.add_argument("--lattices", type=Path, help="write the Kaldi lattice archive (gzipped) here")
    parser.add_argument("--onnx", type=Path, help="decode with this exported model "
                        "(python -m pytorch_kaldi_snn.export.onnx) instead of the checkpoint")
    args = parser.parse_args(argv)
    if bool(args.wavs) == (args.wav_scp is not None):
        parser.error("give wav files or --wav-scp, not both")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    def run() -> None:
        hyps = transcribe(args.exp, args.wavs, args.wav_scp, args.utt2spk, args.ctm, args.lattices,
                          args.onnx)
        sys.stdout.write("".join(f"{utt} {' '.join(phones)}\n" for utt, phones in hyps.items()))
    return run_reporting_errors("transcribe", run)


if __name__ == "__main__":
    sys.exit(main())
