"""The stages of one experiment after its inputs are checked: the data sets, the model and its
trainer, training, the forward pass of the test set, decoding and scoring (kept in
``decode.json``), and the report (``results.json``, ``results.md``, the plots)."""
from __future__ import annotations

import logging
import time
from typing import Dict, List

import torch

from pytorch_kaldi_snn.config.experiment import Experiment
from pytorch_kaldi_snn.config.resolved import same_results
from pytorch_kaldi_snn.data.loading import label_sizes
from pytorch_kaldi_snn.data.streamed import DataSource, open_source
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.forward import ForwardResult, forward_test
from pytorch_kaldi_snn.forward.decode import decode_test
from pytorch_kaldi_snn.forward.posteriors import prior_offsets
from pytorch_kaldi_snn.io.chatter import captured_stderr
from pytorch_kaldi_snn.kernels import backend
from pytorch_kaldi_snn.kernels.fused import triton_check
from pytorch_kaldi_snn.layers.spiking import SpikingLayer
from pytorch_kaldi_snn.pipeline.logs import to_log_file
from pytorch_kaldi_snn.report import (
    plot_layer_sparsity, plot_learning_curves, results_dict, write_results,
)
from pytorch_kaldi_snn.report.energy_model import from_model as energy_estimate
from pytorch_kaldi_snn.scoring.decoded import NOT_DECODED, DecodeResult
from pytorch_kaldi_snn.threads import apply_threads
from pytorch_kaldi_snn.train.acoustic_model import AcousticModel, check_readout_sizes
from pytorch_kaldi_snn.train.checkpoint import load_json, save_json
from pytorch_kaldi_snn.train.distributed import World
from pytorch_kaldi_snn.train.loop import Trainer
from pytorch_kaldi_snn.train.precision import check_precision
from pytorch_kaldi_snn.train.pretrain import apply_pretrain_and_freeze

DECODE_JSON = "decode.json"


def pick_device(exp: Experiment, log: logging.Logger) -> torch.device:
    if exp.exp.use_cuda and torch.cuda.is_available():
        log.info(f"device: cuda ({torch.cuda.get_device_name()})")
        return torch.device("cuda")
    reason = "use_cuda = False" if not exp.exp.use_cuda else "no CUDA device available"
    log.info(f"device: cpu ({reason}, {torch.get_num_threads()} threads)")
    return torch.device("cpu")


def announce_kernels(model: torch.nn.Module, device: torch.device) -> None:
    """Choose (and log) the kernel of the fused spiking layers before the first batch, so that
    a Triton launch that fails on this machine is found, and replaced, before training."""
    fused = [m for m in model.modules() if isinstance(m, SpikingLayer) and m.impl == "fused"]
    if fused:
        backend.announce(device, fused[0].alpha.dtype, triton_check)


def labels_read(exp: Experiment) -> List[str]:
    """The label sets a run reads: the model's, and the one the forward stage's priors count."""
    return sorted(set(exp.labels_used()) | {exp.forward.normalize_with_counts_from})


def load_sets(exp: Experiment, log: logging.Logger,
              with_test: bool = True) -> List[DataSource]:
    """Train, dev and (unless ``with_test`` is False) test sets with the features and labels the
    model reads, streamed (labels read now, features chunk by chunk as they are used; Kaldi's
    chatter goes to the log)."""
    features = exp.features_used()
    labels = labels_read(exp)
    use = exp.data_use
    names = (use.train_with, use.valid_with) + ((use.forward_with,) if with_test else ())
    chatter = to_log_file(log)
    with captured_stderr(chatter):
        return [open_source(exp.datasets[name], features, labels, log, chatter)
                for name in names]


def main_arch(exp: Experiment) -> str:
    """The class of the first architecture the model computes (the recurrent stack)."""
    first = next(op for op in exp.model.operations if op.op == "compute")
    return exp.architectures[first.args[0]].arch_class


def decode_stage(exp: Experiment, forwarded: ForwardResult, log: logging.Logger) -> DecodeResult:
    """Decode and score; ``decode.json`` keeps the result for reruns of the same resolved cfg
    (a changed ``[decoding]`` or ``[forward]`` key re-decodes)."""
    out = exp.exp.out_folder
    saved = load_json(out / DECODE_JSON)
    if saved is not None and same_results(saved.get("cfg"), exp.cfg_text):
        return DecodeResult.from_json(saved)
    if not exp.forward.require_decoding:
        log.info("decoding: skipped (require_decoding = False)")
        return NOT_DECODED
    decoded = decode_test(exp.decoding, exp.test_set, exp.forward.normalize_with_counts_from,
                          forwarded.ark, out, log)
    save_json(out / DECODE_JSON, {**decoded.to_json(), "cfg": exp.cfg_text})
    return decoded


def make_trainer(exp: Experiment, train: DataSource, n_out: Dict[str, int],
                 log: logging.Logger, world: World) -> Trainer:
    """The model (seeded, pretrained and frozen as the cfg says) on its device, with its
    optimisers: the same in every process of a world."""
    log.info(f"threads: {apply_threads()}")
    device = world.device or pick_device(exp, log)
    check_precision(exp.exp.precision, device, str(exp.cfg_path))
    torch.manual_seed(exp.exp.seed)
    model = AcousticModel(exp, n_out, train.feature_dims())
    try:
        apply_pretrain_and_freeze(model.nets, exp.architectures, log)
    except ConfigError as err:
        raise err.with_file(str(exp.cfg_path)) from None
    model = model.to(device)
    check_readout_sizes(exp, model, n_out)
    announce_kernels(model, device)
    world.prepare_model(model, log)
    return Trainer(exp, model, device, exp.exp.out_folder, log, world)


def run(exp: Experiment, log: logging.Logger, world: World = World()) -> dict:
    out = exp.exp.out_folder
    start = time.monotonic()
    n_out = label_sizes(exp.train_set)
    train, dev, test = load_sets(exp, log)
    trainer = make_trainer(exp, train, n_out, log, world)
    model, device = trainer.model, trainer.device
    history = trainer.fit(train, dev)

    offsets = prior_offsets(exp, train, n_out[exp.forward.normalize_with_counts_from])
    forwarded = forward_test(exp, model, test, offsets, device, out)
    log.info(f"forward: {forwarded.ark} (test frame accuracy "
             f"{100 * (1 - forwarded.frame_err):.2f}%, zero outputs "
             f"{forwarded.report.zero_output_pct:.2f}%)")
    decoded = decode_stage(exp, forwarded, log)
    results = results_dict(
        arch=main_arch(exp), frame_err=forwarded.frame_err, report=forwarded.report,
        decoded=decoded, history=history,
        wall_s=trainer.wall_s_before + time.monotonic() - start,
        extra={"cfg": str(exp.cfg_path), "test_loss": forwarded.loss,
               "params_weights": forwarded.report.params_weights,
               "energy": energy_estimate(model),  # the test set's counters, as the report
               **decoded.results_fields()})
    plot_learning_curves(history, out / "learning_curves.png", out.name)
    plot_layer_sparsity(results["zero_outputs_pct_per_layer"], out / "sparsity_per_layer.png",
                        out.name)
    write_results(out, results)
    rate = decoded.error_rate
    score = "not scored" if rate is None else f"{decoded.metric} {rate:.2f}%"
    log.info(f"done: {score} ({results['decoder']} decoder), frame accuracy "
             f"{results['frame_acc']:.2f}%, zero outputs {results['zero_outputs_pct']:.2f}% "
             f"-> {out / 'results.json'}")
    return results
