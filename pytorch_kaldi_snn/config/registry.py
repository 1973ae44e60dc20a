"""Every cfg key the runner knows, with its status: the one source of truth for key checking.

PyTorch-Kaldi's cfg format has more keys than this runner needs. Each key is one of

* ``honoured``: read here with upstream's meaning;
* ``ours``: this project's addition (upstream would reject it);
* ``upstream only``: accepted and ignored, because only upstream's own scripts read it (the
  ``reason`` says why ignoring it changes nothing here);
* ``only <values>``: accepted with the listed values only; any other value is refused with the
  ``reason`` (``max_arcs``: lattice arc limits are not implemented).

Any other key is an error naming the closest known key (``snn_n_bit: unknown option; did you
mean snn_n_bits?``). Architecture-class options (``snn_*``, ``lstm_*``, ``dnn_*``...) are the
fields of the class's ``.proto`` file in :mod:`pytorch_kaldi_snn.proto`, and optimiser options
the fields of upstream's ``adam``/``sgd``/``rmsprop`` protos, listed in :data:`OPTIMIZER_KEYS`.
``docs/run_exp.md``'s key table is generated from here (``python -m
pytorch_kaldi_snn.config.registry``).
"""
from __future__ import annotations

import configparser
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from pytorch_kaldi_snn.cli import command_parser
from pytorch_kaldi_snn.errors import ConfigError

PROTO_DIR = Path(__file__).resolve().parents[1] / "proto"
HONOURED, OURS, UPSTREAM_ONLY = "honoured", "ours", "upstream only"
# the values of keys whose code lives above config/: train/precision.py, train/scheduler.py,
# gmm/labels.py and layers/baselines.py implement each of them
PRECISIONS = ("float32", "bf16")  # [exp] precision
SCHEDULES = ("upstream", "fork", "consecutive")  # arch_lr_schedule, the first the default
# lstm_act / gru_act / dnn_act; "softmax" (PyTorch-Kaldi's log-softmax) only for dnn_act
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu", "elu", "linear", "softmax")
RECURRENT_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "softmax")
LAB_OPTS = {"ali-to-pdf": "pdf", "ali-to-phones --per-frame=true": "phone"}  # lab_opts -> labels


@dataclass(frozen=True)
class Key:
    name: str
    status: str
    meaning: str
    only: Tuple[str, ...] = ()  # values accepted (compared case-insensitively); () = any
    reason: str = ""  # why other values are refused, or why an upstream-only key is ignored

    def check(self, section: str, value: str) -> None:
        """Refuse a value this runner cannot honour, naming the section, the key and why."""
        if self.only and value.strip().lower() not in {v.lower() for v in self.only}:
            raise ConfigError(f"{self.name} = {value.strip()}: {self.reason}", section=section,
                              key=self.name)

    def status_text(self) -> str:
        if self.only:
            return f"only {' / '.join(self.only)}"
        return self.status


def _keys(*keys: Key) -> Dict[str, Key]:
    return {k.name: k for k in keys}


_SCRIPTS = "names upstream's Kaldi scripts; this runner decodes and scores itself"
_PROTO = "upstream's type-checking proto; this runner checks values itself"

SECTION_KEYS: Dict[str, Dict[str, Key]] = {
    "cfg_proto": _keys(
        Key("cfg_proto", UPSTREAM_ONLY, "proto of the whole cfg", reason=_PROTO),
        Key("cfg_proto_chunk", UPSTREAM_ONLY, "proto of a chunk cfg", reason=_PROTO),
    ),
    "exp": _keys(
        Key("cmd", UPSTREAM_ONLY, "job launcher prefix", reason="this runner runs in-process"),
        Key("run_nn_script", UPSTREAM_ONLY, "upstream's training function",
            reason="this runner has one training loop"),
        Key("out_folder", HONOURED, "experiment directory"),
        Key("seed", HONOURED, "seed of weights, data order and dropout"),
        Key("use_cuda", HONOURED, "CUDA when present, else CPU (logged)"),
        Key("multi_gpu", HONOURED, "data-parallel training over the processes torchrun starts "
            "(docs/distributed.md; upstream's DataParallel is not offered)"),
        Key("sync_batchnorm", OURS, "with multi_gpu: batch-norm statistics over all processes' "
            "frames (True) or per process"),
        Key("save_gpumem", UPSTREAM_ONLY, "upstream frees GPU memory between chunks",
            reason="chunks are read on the CPU here; the GPU holds one batch"),
        Key("n_epochs_tr", HONOURED, "training epochs"),
        Key("pretrain_file", HONOURED, "upstream's whole-model pretraining", only=("none",),
            reason="use arch_pretrain_file per architecture"),
        Key("prepare", OURS, "shell command that builds missing data (built-in corpus)"),
        Key("on_nonfinite", OURS, "stop, or skip (counted), a training batch with NaN/Inf"),
        Key("checkpoint_every_batches", OURS, "also write the checkpoint after every N-th batch "
            "of an epoch (0: only at its end; not training-relevant)"),
        Key("checkpoint_every_minutes", OURS, "also write the checkpoint when M minutes passed "
            "since the last one (0: off; not training-relevant)"),
        Key("data_workers", OURS, "background processes reading the next chunks (0: none); "
            "the batches are the same for any value"),
        Key("precision", OURS, "float32 (default), or bf16: autocast for the projections and "
            "the readout, the neuron state and quantiser in float32 (train/precision.py); "
            "refused where bfloat16 cannot run"),
    ),
    "dataset": _keys(
        Key("data_name", HONOURED, "dataset name used by [data_use]"),
        Key("fea", HONOURED, "feature streams (fea_name= blocks)"),
        Key("lab", HONOURED, "label sets (lab_name= blocks)"),
        Key("n_chunks", HONOURED, "parts of the utterance list read and trained one at a time "
            "per epoch: memory O(set / n_chunks); 1 gives one global shuffle"),
    ),
    "fea": _keys(
        Key("fea_name", HONOURED, "stream name used by the model"),
        Key("fea_lst", HONOURED, "feats.scp"),
        Key("fea_opts", HONOURED, "Kaldi pipe applied to the features"),
        Key("cw_left", HONOURED, "left context frames spliced"),
        Key("cw_right", HONOURED, "right context frames spliced"),
    ),
    "lab": _keys(
        Key("lab_name", HONOURED, "label set name used by the model"),
        Key("lab_folder", HONOURED, "alignment dir (ali.*.gz, final.mdl)"),
        Key("lab_opts", HONOURED, "ali-to-pdf or ali-to-phones --per-frame=true"),
        Key("lab_count_file", HONOURED, "priors: auto, none or a counts file"),
        Key("lab_data_folder", HONOURED, "data dir with the reference text"),
        Key("lab_graph", HONOURED, "graph dir (HCLG.fst, words.txt)"),
    ),
    "data_use": _keys(
        Key("train_with", HONOURED, "training dataset"),
        Key("valid_with", HONOURED, "validation dataset"),
        Key("forward_with", HONOURED, "test dataset (forward, decode, score)"),
    ),
    "batches": _keys(
        Key("batch_size_train", HONOURED, "training batch size"),
        Key("max_seq_length_train", HONOURED, "longest training piece"),
        Key("increase_seq_length_train", HONOURED, "sequence-length curriculum"),
        Key("start_seq_len_train", HONOURED, "first epoch's piece length"),
        Key("multply_factor_seq_len_train", HONOURED, "piece length growth per epoch"),
        Key("batch_size_valid", HONOURED, "validation batch size"),
        Key("max_seq_length_valid", HONOURED, "longest validation piece"),
    ),
    "architecture": _keys(
        Key("arch_name", HONOURED, "name used by compute()"),
        Key("arch_proto", UPSTREAM_ONLY, "the class's proto", reason=_PROTO),
        Key("arch_library", UPSTREAM_ONLY, "module of arch_class",
            reason="this runner always uses pytorch_kaldi_snn.neural_networks"),
        Key("arch_class", HONOURED, "network class"),
        Key("arch_pretrain_file", HONOURED, "state dict loaded before training (none: off)"),
        Key("arch_freeze", HONOURED, "no training for this architecture"),
        Key("arch_seq_model", HONOURED, "sequence model (True) or frame model"),
        Key("arch_lr", HONOURED, "learning rate"),
        Key("arch_halving_factor", HONOURED, "learning-rate factor on a slow epoch"),
        Key("arch_improvement_threshold", HONOURED, "relative dev improvement that counts"),
        Key("arch_opt", HONOURED, "adam, sgd or rmsprop"),
        Key("arch_lr_schedule", OURS, "upstream, fork or consecutive (train/scheduler.py)"),
        Key("arch_patience", OURS, "slow epochs before halving (fork, consecutive)"),
        Key("arch_min_lr", OURS, "learning-rate floor"),
    ),
    "model": _keys(
        Key("model_proto", UPSTREAM_ONLY, "proto of the model language", reason=_PROTO),
        Key("model", HONOURED, "model language"),
    ),
    "forward": _keys(
        Key("forward_out", HONOURED, "model output forwarded"),
        Key("normalize_posteriors", HONOURED, "subtract log-priors"),
        Key("normalize_with_counts_from", HONOURED, "label set of the priors and the graph"),
        Key("save_out_file", UPSTREAM_ONLY, "keep the forward ark",
            reason="forward_test.ark is always kept: the decode stage re-decodes from it"),
        Key("require_decoding", HONOURED, "decode and score the test set"),
    ),
    "decoding": _keys(
        Key("decoding_script_folder", UPSTREAM_ONLY, "upstream's decoding scripts",
            reason=_SCRIPTS),
        Key("decoding_script", UPSTREAM_ONLY, "upstream's decode_dnn.sh", reason=_SCRIPTS),
        Key("decoding_proto", UPSTREAM_ONLY, "proto of [decoding]", reason=_PROTO),
        Key("scoring_script", UPSTREAM_ONLY, "egs' local/score.sh", reason=_SCRIPTS),
        Key("min_active", HONOURED, "latgen --min-active"),
        Key("max_active", HONOURED, "latgen --max-active"),
        Key("max_mem", HONOURED, "latgen --max-mem (Kaldi path; the built-in decoder has no "
            "such limit)"),
        Key("beam", HONOURED, "latgen --beam"),
        Key("latbeam", HONOURED, "latgen --lattice-beam"),
        Key("acwt", HONOURED, "latgen --acoustic-scale"),
        Key("max_arcs", HONOURED, "decode_dnn.sh's lattice arc limit", only=("-1",),
            reason="lattice arc limits are not implemented; use -1"),
        Key("skip_scoring", HONOURED, "decode only"),
        Key("scoring_opts", HONOURED,
            "--min-lmwt/--max-lmwt/--word-ins-penalty sweep, --decode-mbr true for MBR"),
        Key("norm_vars", HONOURED, "decode_dnn.sh's variance normalisation", only=("False",),
            reason="the forward ark is used as it is; use False"),
        Key("scoring_mode", OURS, "sclite (NIST alignment) or kaldi (compute-wer)"),
        Key("scoring_fold", OURS, "none, 61-39 or 48-39 (required for TIMIT phone graphs)"),
        Key("save_lattices", OURS, "write lat.*.gz (False: 1-best only, scored at acwt, no "
            "LM-weight sweep)"),
        Key("nj", OURS, "parallel decoding jobs (forward ark split, one lat.J.gz per job)"),
    ),
}

OPTIMIZER_KEYS: Dict[str, Tuple[str, ...]] = {  # upstream's proto/{adam,sgd,rmsprop}.proto
    "adam": ("opt_betas", "opt_eps", "opt_weight_decay", "opt_amsgrad"),
    "sgd": ("opt_momentum", "opt_weight_decay", "opt_dampening", "opt_nesterov"),
    "rmsprop": ("opt_momentum", "opt_alpha", "opt_eps", "opt_centered", "opt_weight_decay"),
}

# Upstream's arch_class names that this library does not provide, with what to use instead.
UPSTREAM_CLASSES: Dict[str, str] = {
    "LSTM": "use UniLSTM (unidirectional: the paper targets streaming)",
    "GRU": "use UniGRU (unidirectional: the paper targets streaming)",
    "LSTM_cudnn": "use UniLSTM", "GRU_cudnn": "use UniGRU",
    "liGRU": "not implemented here (light GRU)", "minimalGRU": "not implemented here",
    "RNN": "not implemented here (vanilla RNN)", "RNN_cudnn": "not implemented here",
    "CNN": "not implemented here (convolutional front end)",
    "SincNet": "not implemented here (raw waveform)", "SRU": "not implemented here",
    "QLSTM": "not implemented here (quaternion)", "PASE": "not implemented here",
    "channel_averaging": "not implemented here", "logMelFb": "not implemented here",
}


def is_upstream_only(section: str, key: str) -> bool:
    """Whether ``[section] key`` (``dataset2`` as ``dataset``) is a key this runner ignores."""
    known = SECTION_KEYS.get(section.rstrip("0123456789"), {}).get(key)
    return known is not None and known.status == UPSTREAM_ONLY


def proto_keys(arch_class: str) -> Tuple[str, ...]:
    """Fields of ``proto/<arch_class>.proto`` (the options the class reads)."""
    proto = configparser.ConfigParser(interpolation=None)
    proto.read(PROTO_DIR / f"{arch_class}.proto")
    return tuple(proto["proto"]) if proto.has_section("proto") else ()


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def check_keys(section: str, items: Mapping[str, str], known: Mapping[str, Key],
               extra: Iterable[str] = (), elsewhere: Mapping[str, str] = {}) -> None:
    """Every key of ``items`` is known (``known`` or ``extra``) and has a value honoured here.

    ``elsewhere`` maps keys that are valid in another context to the reason they are not here
    (an rmsprop option under ``arch_opt = adam``).
    """
    allowed = set(known) | set(extra)
    for key, value in items.items():
        if key in known:
            known[key].check(section, value)
        elif key not in allowed:
            if key in elsewhere:
                raise ConfigError(elsewhere[key], section=section, key=key)
            raise ConfigError(f"unknown option{_suggest(key, allowed)}", section=section, key=key)


def architecture_extra_keys(arch_class: str, opt: str) -> Tuple[List[str], Dict[str, str]]:
    """Keys an architecture section may hold besides :data:`SECTION_KEYS` ``["architecture"]``,
    and the optimiser keys of other optimisers with the reason they are refused."""
    own = OPTIMIZER_KEYS.get(opt, ())
    others = {k: f"an option of {name}, but arch_opt = {opt}"
              for name, keys in OPTIMIZER_KEYS.items() for k in keys if k not in own}
    return [*proto_keys(arch_class), *own], others


def markdown_table() -> str:
    """The key table of ``docs/run_exp.md``: every section key, its status and meaning."""
    rows = ["| section | key | status | meaning |", "|---|---|---|---|"]
    for section, keys in SECTION_KEYS.items():
        shown = {"dataset": "datasetN", "architecture": "architectureN",
                 "fea": "datasetN fea", "lab": "datasetN lab"}.get(section, section)
        for key in keys.values():
            meaning = key.meaning + (f" ({key.reason})" if key.reason else "")
            rows.append(f"| {shown} | `{key.name}` | {key.status_text()} | {meaning} |")
    for opt, keys in OPTIMIZER_KEYS.items():
        rows.append(f"| architectureN | {', '.join(f'`{k}`' for k in keys)} | honoured | "
                    f"arch_opt = {opt} (upstream's {opt}.proto) |")
    rows.append("| architectureN | fields of `proto/<arch_class>.proto` | honoured | "
                "options of the network class |")
    return "\n".join(rows) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    command_parser("pytorch_kaldi_snn.config.registry",
                   "Print the table of every cfg key the runner knows, with its status "
                   "(docs/run_exp.md).").parse_args(argv)
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
