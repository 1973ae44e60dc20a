"""Bad inputs for tests/commands/test_fault_injection.py: cfg edits and corrupted tiny-corpus data.

A cfg case is ``(id, overrides, text_edit, expected)``: ``--set`` overrides and/or a function
of the cfg text, and the exact error line after ``error: <cfg>: ``. A data case is a function
that corrupts a private copy of the training features or alignments and returns the cfg text
edit that points the experiment at it.
"""
from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from pytorch_kaldi_snn.io import read_matrices, write_mat_ark

Edit = Optional[Callable[[str], str]]


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


CFG_CASES: List[Tuple[str, List[str], Edit, str]] = [
    ("epochs_zero", ["exp.n_epochs_tr=0"], None,
     '[exp] n_epochs_tr: n_epochs_tr = 0 is below the minimum 1'),
    ("epochs_word", ["exp.n_epochs_tr=abc"], None,
     "[exp] n_epochs_tr: n_epochs_tr = 'abc' is not an integer"),
    ("seed_negative", ["exp.seed=-1"], None, '[exp] seed: seed = -1 is below the minimum 0'),
    ("use_cuda_word", ["exp.use_cuda=maybe"], None,
     "[exp] use_cuda: use_cuda = 'maybe' is not a boolean (True/False)"),
    ("on_nonfinite_unknown", ["exp.on_nonfinite=ignore"], None,
     "[exp] on_nonfinite: on_nonfinite = 'ignore' is not one of stop, skip"),
    ("checkpoint_batches_negative", ["exp.checkpoint_every_batches=-1"], None,
     '[exp] checkpoint_every_batches: checkpoint_every_batches = -1 is below the minimum 0'),
    ("checkpoint_minutes_word", ["exp.checkpoint_every_minutes=hourly"], None,
     "[exp] checkpoint_every_minutes: checkpoint_every_minutes = 'hourly' is not a number"),
    ("checkpoint_minutes_negative", ["exp.checkpoint_every_minutes=-5"], None,
     '[exp] checkpoint_every_minutes: checkpoint_every_minutes = -5 is below the minimum 0.0'),
    ("batch_zero", ["batches.batch_size_train=0"], None,
     '[batches] batch_size_train: batch_size_train = 0 is below the minimum 1'),
    ("max_len_negative", ["batches.max_seq_length_train=-5"], None,
     '[batches] max_seq_length_train: max_seq_length_train = -5 is below the minimum 1'),
    ("increase_word", ["batches.increase_seq_length_train=perhaps"], None,
     "[batches] increase_seq_length_train: increase_seq_length_train = 'perhaps' is not a boolean (True/False)"),
    ("start_len_zero", ["batches.start_seq_len_train=0"], None,
     '[batches] start_seq_len_train: start_seq_len_train = 0 is below the minimum 1'),
    ("factor_zero", ["batches.multply_factor_seq_len_train=0"], None,
     '[batches] multply_factor_seq_len_train: multply_factor_seq_len_train = 0 is below the minimum 1'),
    ("valid_batch_word", ["batches.batch_size_valid=x"], None,
     "[batches] batch_size_valid: batch_size_valid = 'x' is not an integer"),
    ("valid_len_zero", ["batches.max_seq_length_valid=0"], None,
     '[batches] max_seq_length_valid: max_seq_length_valid = 0 is below the minimum 1'),
    ("lr_inf", ["architecture1.arch_lr=inf"], None,
     '[architecture1] arch_lr: arch_lr = inf must be a finite number above 0'),
    ("lr_zero", ["architecture1.arch_lr=0"], None,
     '[architecture1] arch_lr: arch_lr = 0.0 must be a finite number above 0'),
    ("lr_nan", ["architecture1.arch_lr=nan"], None,
     '[architecture1] arch_lr: arch_lr = nan is not a number'),
    ("lr_negative", ["architecture1.arch_lr=-1"], None,
     '[architecture1] arch_lr: arch_lr = -1 is below the minimum 0.0'),
    ("opt_unknown", ["architecture1.arch_opt=adagrad"], None,
     "[architecture1] arch_opt: arch_opt = 'adagrad' is not one of adam, sgd, rmsprop"),
    ("betas_one", ["architecture1.opt_betas=0.9"], None,
     '[architecture1] opt_betas: opt_betas needs two values, got 1'),
    ("betas_range", ["architecture1.opt_betas=0.9,1.5"], None,
     '[architecture1] opt_betas: opt_betas = 1.5 is above the maximum 1.0'),
    ("halving_range", ["architecture1.arch_halving_factor=2"], None,
     '[architecture1] arch_halving_factor: arch_halving_factor = 2 is above the maximum 1.0'),
    ("patience_zero", ["architecture1.arch_patience=0"], None,
     '[architecture1] arch_patience: arch_patience = 0 is below the minimum 1'),
    ("opt_eps_negative", ["architecture1.opt_eps=-1"], None,
     '[architecture1] opt_eps: opt_eps = -1 is below the minimum 0.0'),
    ("class_unknown", ["architecture1.arch_class=Nope"], None,
     "[architecture1] arch_class: unknown architecture class 'Nope' (known: TraditionalSNN, ImprovedSNNv1, ImprovedSNNv2, UniLSTM, UniGRU, MLP)"),
    ("class_private", ["architecture1.arch_class=_private"], None,
     "[architecture1] arch_class: unknown architecture class '_private' (known: TraditionalSNN, ImprovedSNNv1, ImprovedSNNv2, UniLSTM, UniGRU, MLP)"),
    ("seq_model_word", ["architecture1.arch_seq_model=sometimes"], None,
     "[architecture1] arch_seq_model: arch_seq_model = 'sometimes' is not a boolean (True/False)"),
    ("snn_lay_word", ["architecture1.snn_lay=16,x"], None,
     "[architecture1] snn_lay: 'x' is not an integer (in snn_lay = 16,x)"),
    ("snn_bits_zero", ["architecture1.snn_n_bits=0"], None,
     '[architecture1] snn_n_bits: snn_n_bits = 0 is below the minimum 1'),
    ("snn_threshold_high", ["architecture1.snn_threshold=100"], None,
     '[architecture1] snn_threshold: snn_threshold = 100 is above 2^N - 1 = 63 for snn_n_bits = 6'),
    ("snn_surrogate_unknown", ["architecture1.snn_surrogate=foo"], None,
     "[architecture1] snn_surrogate: snn_surrogate = 'foo' is not one of ste, ste_clip, pwl, fast_sigmoid"),
    ("snn_drop_range", ["architecture1.snn_drop=1.5,0.1"], None,
     '[architecture1] snn_drop: snn_drop = 1.5 is above the maximum 0.99'),
    ("snn_momentum_zero", ["architecture1.snn_ema_momentum=0"], None,
     '[architecture1] snn_ema_momentum: snn_ema_momentum = 0 would never update b; use a value in (0, 1]'),
    ("n_out_unknown", ["architecture2.dnn_lay=N_out_lab_xx"], None,
     '[architecture2] dnn_lay: dnn_lay = N_out_lab_xx: N_out_lab_xx names no label set (defined: lab_cd, lab_mono)'),
    ("arch_name_twice", ["architecture2.arch_name=snn_layers"], None,
     "[architecture2] arch_name: architecture 'snn_layers' is already defined in [architecture1]"),
    ("train_with_unknown", ["data_use.train_with=nope"], None,
     "[data_use] train_with: dataset 'nope' is not defined (defined: synth_dev, synth_test, synth_tr)"),
    ("valid_with_unknown", ["data_use.valid_with=nope"], None,
     "[data_use] valid_with: dataset 'nope' is not defined (defined: synth_dev, synth_test, synth_tr)"),
    ("forward_with_unknown", ["data_use.forward_with=nope"], None,
     "[data_use] forward_with: dataset 'nope' is not defined (defined: synth_dev, synth_test, synth_tr)"),
    ("forward_out_unknown", ["forward.forward_out=nope"], None,
     "[forward] forward_out: forward_out 'nope' is not a model output"),
    ("counts_from_unknown", ["forward.normalize_with_counts_from=nope"], None,
     "[forward] normalize_with_counts_from: label set 'nope' is not defined"),
    ("normalize_word", ["forward.normalize_posteriors=x"], None,
     "[forward] normalize_posteriors: normalize_posteriors = 'x' is not a boolean (True/False)"),
    ("beam_zero", ["decoding.beam=0"], None,
     '[decoding] beam: beam = 0 is below the minimum 0.001'),
    ("min_above_max_active", ["decoding.min_active=8000"], None,
     '[decoding] min_active: min_active is above max_active'),
    ("scoring_mode_unknown", ["decoding.scoring_mode=bleu"], None,
     "[decoding] scoring_mode: scoring_mode = 'bleu' is not one of sclite, kaldi"),
    ("scoring_fold_unknown", ["decoding.scoring_fold=61-40"], None,
     "[decoding] scoring_fold: scoring_fold = '61-40' is not one of none, 61-39, 48-39"),
    ("model_undefined_output", [],
     _replace("loss_final=cost_nll(out_cd,lab_cd)", "loss_final=cost_nll(out_xx,lab_cd)"),
     "[model] model: output 'out_xx' is not defined"),
    ("loss_final_twice", [],
     _replace("err_final=cost_err(out_cd,lab_cd)",
              "err_final=cost_err(out_cd,lab_cd)\n\tloss_final=cost_nll(out_rnn,lab_cd)"),
     '[model] model: loss_final is defined twice'),
    ("model_unknown_operation", [],
     _replace("err_final=cost_err(out_cd,lab_cd)", "err_final=cost_foo(out_cd,lab_cd)"),
     "[model] model: unknown operation 'cost_foo' (known: compute, cost_nll, cost_err, sum, mult_constant, concatenate)"),
    ("model_argument_count", [],
     _replace("err_final=cost_err(out_cd,lab_cd)", "err_final=cost_err(out_cd)"),
     "[model] model: cost_err takes 2 arguments: 'err_final=cost_err(out_cd)'"),
    ("model_malformed_line", [],
     _replace("err_final=cost_err(out_cd,lab_cd)", "err_final cost_err out_cd"),
     "[model] model: 'err_final cost_err out_cd' is not of the form out=operation(a,b)"),
    ("model_no_err_final", [],
     _replace("err_final=cost_err(out_cd,lab_cd)", "err_x=cost_err(out_cd,lab_cd)"),
     "[model] model: output 'err_final' is not defined"),
    ("model_unknown_arch", [],
     _replace("out_rnn=compute(snn_layers,fbank)", "out_rnn=compute(nosuch,fbank)"),
     "[model] model: architecture 'nosuch' is not defined"),
    ("model_unknown_labels", [],
     _replace("loss_final=cost_nll(out_cd,lab_cd)", "loss_final=cost_nll(out_cd,lab_xx)"),
     "[model] model: label set 'lab_xx' is not defined"),
    ("mult_constant_word", [],
     _replace("loss_final=cost_nll(out_cd,lab_cd)",
              "loss_a=cost_nll(out_cd,lab_cd)\n\tloss_final=mult_constant(loss_a,half)"),
     "[model] model: mult_constant constant 'half' is not a number"),
    ("missing_section", [], _replace("[decoding]", "[decodings]"),
     '[decoding] missing section [decoding]'),
    ("no_section_header", [], lambda text: "seed = 1\n" + text,
     "cannot parse cfg: File contains no section headers. file: '{cfg}', line: 1 'seed = 1\\n'"),
    ("duplicate_data_name", [], _replace("data_name = synth_dev", "data_name = synth_tr"),
     "[dataset2] data_name: dataset 'synth_tr' is defined twice"),
    ("lab_opts_unknown", [], _replace("lab_opts=ali-to-pdf", "lab_opts=ali-to-foo"),
     "[dataset1] lab_opts: lab_opts = 'ali-to-foo' is not one of ali-to-pdf, ali-to-phones --per-frame=true"),
    ("fea_lst_missing", [], _replace("train/feats.scp", "train/nosuch.scp"),
     '[dataset1] fea_lst: {corpus}/data/train/nosuch.scp does not exist'),
    ("set_malformed", ["nonsense"], None, "--set 'nonsense' is not of the form section.key=value"),
    ("set_unknown_section", ["nosuch.key=1"], None,
     "[nosuch] --set 'nosuch.key=1': no such section"),
]


# ---------------------------------------------------------------------------------------------
# Bad data: each case corrupts a private copy and returns the cfg edit that uses it. The third
# training utterance (in scp order) is the broken one unless the case says otherwise.

BROKEN = 2  # index of the corrupted utterance


def _scp(corpus: Path) -> Path:
    return corpus / "data" / "train" / "feats.scp"


def _train_features(corpus: Path) -> Dict[str, np.ndarray]:
    return dict(read_matrices(f"scp:{_scp(corpus)}"))


def broken_utt(corpus: Path) -> str:
    return _scp(corpus).read_text().splitlines()[BROKEN].split()[0]


def _use_scp(corpus: Path, scp: Path) -> Callable[[str], str]:
    return _replace(f"fea_lst={_scp(corpus)}", f"fea_lst={scp}")


def _features_with(tmp: Path, corpus: Path, change: Callable[[np.ndarray], np.ndarray]):
    feats = _train_features(corpus)
    utt = broken_utt(corpus)
    feats[utt] = change(feats[utt])
    ark, scp = tmp / "feats.ark", tmp / "feats.scp"
    write_mat_ark(ark, scp, feats.items())
    return _use_scp(corpus, scp)


def _raw_ark(tmp: Path, feats: Dict[str, np.ndarray]) -> Path:
    """Kaldi's binary ``FM`` records written by hand (its writer refuses a 0 x N matrix)."""
    ark, lines, data = tmp / "feats.ark", [], b""
    for utt, m in feats.items():
        data += utt.encode() + b" "
        lines.append(f"{utt} {ark}:{len(data)}\n")
        rows, cols = m.shape
        data += b"\0BFM \4" + struct.pack("<i", rows) + b"\4" + struct.pack("<i", cols)
        data += np.ascontiguousarray(m, np.float32).tobytes()
    ark.write_bytes(data)
    (tmp / "feats.scp").write_text("".join(lines))
    return tmp / "feats.scp"


def matrix_0xn(tmp: Path, corpus: Path):
    feats = _train_features(corpus)
    utt = broken_utt(corpus)
    feats[utt] = np.zeros((0, feats[utt].shape[1]), np.float32)
    return _use_scp(corpus, _raw_ark(tmp, feats))


def _set(value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(m: np.ndarray) -> np.ndarray:
        m = m.copy()
        m[5, 2] = value
        return m
    return change


def _copied_ark(tmp: Path, corpus: Path) -> Tuple[Path, List[List[str]]]:
    """A private ark+scp copy; returns the scp path and its entries [utt, ark, offset]."""
    ark, scp = tmp / "feats.ark", tmp / "feats.scp"
    write_mat_ark(ark, scp, _train_features(corpus).items())
    entries = [[u, *loc.rsplit(":", 1)] for u, loc in
               (line.split() for line in scp.read_text().splitlines())]
    return scp, entries


def _write_scp(scp: Path, entries: List[List[str]]) -> None:
    scp.write_text("".join(f"{u} {a}:{o}\n" for u, a, o in entries))


def truncated_ark(tmp: Path, corpus: Path):
    scp, entries = _copied_ark(tmp, corpus)
    ark = Path(entries[BROKEN][1])
    with open(ark, "r+b") as handle:
        handle.truncate(int(entries[BROKEN][2]) + 100)
    return _use_scp(corpus, scp)


def corrupt_header(tmp: Path, corpus: Path):
    scp, entries = _copied_ark(tmp, corpus)
    ark = Path(entries[BROKEN][1])
    data = bytearray(ark.read_bytes())
    data[int(entries[BROKEN][2]) + 2] = ord("X")  # "\0B" then the "FM " type token
    ark.write_bytes(bytes(data))
    return _use_scp(corpus, scp)


def wrong_offset(tmp: Path, corpus: Path):
    scp, entries = _copied_ark(tmp, corpus)
    entries[BROKEN][2] = str(int(entries[BROKEN][2]) + 3)
    _write_scp(scp, entries)
    return _use_scp(corpus, scp)


def missing_ark(tmp: Path, corpus: Path):
    scp, entries = _copied_ark(tmp, corpus)
    entries[BROKEN][1] = str(tmp / "nosuch.ark")
    _write_scp(scp, entries)
    return _use_scp(corpus, scp)


def empty_scp(tmp: Path, corpus: Path):
    scp = tmp / "feats.scp"
    scp.write_text("")
    return _use_scp(corpus, scp)


def _ali_dir(tmp: Path, corpus: Path) -> Path:
    ali = tmp / "ali"
    shutil.copytree(corpus / "exp" / "mono_ali_train", ali)
    return ali


def _use_ali(corpus: Path, ali: Path) -> Callable[[str], str]:
    old = f"lab_folder={corpus / 'exp' / 'mono_ali_train'}"
    return lambda text: text.replace(old, f"lab_folder={ali}")


def no_alignments(tmp: Path, corpus: Path):
    ali = _ali_dir(tmp, corpus)
    (ali / "ali.1.gz").unlink()
    return _use_ali(corpus, ali)


def ali_not_gzip(tmp: Path, corpus: Path):
    ali = _ali_dir(tmp, corpus)
    (ali / "ali.1.gz").write_bytes(b"not gzip at all\n")
    return _use_ali(corpus, ali)


def ali_truncated(tmp: Path, corpus: Path):
    ali = _ali_dir(tmp, corpus)
    data = gzip.decompress((ali / "ali.1.gz").read_bytes())
    (ali / "ali.1.gz").write_bytes(gzip.compress(data[: len(data) // 2]))
    return _use_ali(corpus, ali)


def transition_id_out_of_range(tmp: Path, corpus: Path):
    from pytorch_kaldi_snn.io import read_int_vectors, write_int_vectors

    ali = _ali_dir(tmp, corpus)
    vectors = dict(read_int_vectors(ali / "ali.1.gz"))
    utt = broken_utt(corpus)
    vectors[utt] = vectors[utt].copy()
    vectors[utt][3] = 100000
    write_int_vectors(tmp / "ali.1", vectors.items())
    (ali / "ali.1.gz").write_bytes(gzip.compress((tmp / "ali.1").read_bytes()))
    return _use_ali(corpus, ali)


def missing_model(tmp: Path, corpus: Path):
    ali = _ali_dir(tmp, corpus)
    (ali / "final.mdl").unlink()
    return _use_ali(corpus, ali)


def corrupt_model(tmp: Path, corpus: Path):
    ali = _ali_dir(tmp, corpus)
    (ali / "final.mdl").write_bytes(b"\0B<TransitionModel> garbage")
    return _use_ali(corpus, ali)


def unknown_speaker(tmp: Path, corpus: Path):
    old = corpus / "data" / "train" / "utt2spk"
    lines = old.read_text().splitlines()
    utt = lines[BROKEN].split()[0]
    lines[BROKEN] = f"{utt} nosuchspeaker"
    new = tmp / "utt2spk"
    new.write_text("\n".join(lines) + "\n")
    return _replace(f"--utt2spk=ark:{old}", f"--utt2spk=ark:{new}")


DATA_CASES = {
    "nan_feature": lambda tmp, corpus: _features_with(tmp, corpus, _set(float("nan"))),
    "inf_feature": lambda tmp, corpus: _features_with(tmp, corpus, _set(float("inf"))),
    "matrix_0x0": lambda tmp, corpus: _features_with(tmp, corpus, lambda m: np.zeros((0, 0))),
    "matrix_0x40": matrix_0xn,
    "fewer_frames_than_labels": lambda tmp, corpus: _features_with(tmp, corpus,
                                                                    lambda m: m[:-10]),
    "wrong_dimension": lambda tmp, corpus: _features_with(tmp, corpus, lambda m: m[:, :-1]),
    "truncated_ark": truncated_ark,
    "corrupt_header_byte": corrupt_header,
    "wrong_scp_offset": wrong_offset,
    "scp_names_missing_ark": missing_ark,
    "empty_scp": empty_scp,
    "no_alignments": no_alignments,
    "alignments_not_gzip": ali_not_gzip,
    "alignments_truncated": ali_truncated,
    "transition_id_out_of_range": transition_id_out_of_range,
    "missing_final_mdl": missing_model,
    "corrupt_final_mdl": corrupt_model,
    "utterance_of_unknown_speaker": unknown_speaker,
}
