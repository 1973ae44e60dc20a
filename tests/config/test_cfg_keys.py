"""Every cfg key honoured or refused by name; resolved.cfg reloads; upstream cfgs load or fail
with their documented line; optimiser proto fields reach torch."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from experiment_cfgs import ROOT, fake_corpus, synth_cfg
from upstream_cfgs import LOADS, outcomes, table, upstream_cfgs
from pytorch_kaldi_snn import neural_networks
from pytorch_kaldi_snn.config.experiment import Experiment, Section, load_experiment
from pytorch_kaldi_snn.config.registry import markdown_table, proto_keys
from pytorch_kaldi_snn.errors import ConfigError
from pytorch_kaldi_snn.train.optimizers import make_optimizer

DOC = ROOT / "docs" / "run_exp.md"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return fake_corpus(tmp_path / "corpus")


def _error(cfg: Path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_experiment(cfg, list(overrides))
    return str(info.value)[len(f"{cfg}: "):]


@pytest.mark.parametrize("override,expected", [
    ("architecture1.snn_n_bit=4",
     "[architecture1] snn_n_bit: unknown option; did you mean snn_n_bits?"),
    ("architecture1.arch_patiance=3",
     "[architecture1] arch_patiance: unknown option; did you mean arch_patience?"),
    ("decoding.scoring_folding=48-39",
     "[decoding] scoring_folding: unknown option; did you mean scoring_fold?"),
    ("architecture1.opt_alpha=0.95",
     "[architecture1] opt_alpha: an option of rmsprop, but arch_opt = adam"),
    ("decoding.scoring_opts=--min-lmwt 1 --max-lmwt 10 --mbr",
     "[decoding] scoring_opts: scoring_opts = --min-lmwt 1 --max-lmwt 10 --mbr: unknown option "
     "--mbr (known: --min-lmwt, --max-lmwt, --word-ins-penalty, --decode-mbr)"),
])
def test_typos_and_unhonoured_values_are_refused_by_name(tmp_path, corpus, override, expected):
    assert _error(synth_cfg(tmp_path, corpus), [override]) == expected


def test_unknown_section_and_block_key(tmp_path, corpus):
    cfg = synth_cfg(tmp_path, corpus, text_edit=lambda t: t.replace("[forward]", "[forwards]\n[forward]"))
    assert _error(cfg) == "[forwards] unknown section [forwards]; did you mean [forward]?"
    cfg = synth_cfg(tmp_path, corpus, text_edit=lambda t: t.replace("cw_left=0", "cw_lef=0", 1))
    assert _error(cfg) == "[dataset1] cw_lef: unknown option; did you mean cw_left?"


def test_upstream_only_keys_are_accepted(tmp_path, corpus):
    extra = ["decoding.decoding_script=decode_dnn.sh",
             "architecture1.arch_library=neural_networks", "forward.save_out_file=False",
             "decoding.max_arcs=-1", "decoding.norm_vars=False"]
    load_experiment(synth_cfg(tmp_path, corpus), extra)


def test_docs_key_table_is_generated_from_the_registry():
    assert markdown_table() in DOC.read_text()


class _Reading(Section):
    """A section that notes every key a class asks for."""

    def __init__(self, name, items, seen):
        super().__init__(name, items)
        self.seen = seen

    def __contains__(self, key):
        self.seen.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("cls", ["TraditionalSNN", "ImprovedSNNv1", "ImprovedSNNv2", "UniLSTM",
                                 "UniGRU", "MLP"])
def test_each_proto_lists_exactly_the_options_its_class_reads(cls):
    lay = {"MLP": "dnn_lay", "UniLSTM": "lstm_lay", "UniGRU": "gru_lay"}.get(cls, "snn_lay")
    seen: set = set()
    getattr(neural_networks, cls)(_Reading("a", {lay: "8"}, seen), 4)
    assert seen == set(proto_keys(cls))


def _same(a: Experiment, b: Experiment) -> None:
    skip = {"cfg_path", "architectures"}
    for field in a.__dataclass_fields__:
        if field not in skip:
            assert getattr(a, field) == getattr(b, field), field
    for name, arch in a.architectures.items():
        other = b.architectures[name]
        assert {k: v for k, v in vars(arch).items() if k != "options"} == \
               {k: v for k, v in vars(other).items() if k != "options"}


def test_resolved_cfg_reloads_to_the_same_experiment(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("CORPUS_ROOT", str(corpus))
    text = (ROOT / "cfg" / "synth_snn_v2.cfg").read_text().replace("recipes/synth", "${CORPUS_ROOT}")
    cfg = tmp_path / "env.cfg"
    dropped = ("prepare", "scoring_opts")  # the default of scoring_opts must be written out
    cfg.write_text("\n".join(l for l in text.splitlines() if not l.startswith(dropped)) + "\n")
    exp = load_experiment(cfg, ["exp.n_epochs_tr=3"])
    assert "${CORPUS_ROOT}" not in exp.cfg_text
    assert "scoring_opts = --min-lmwt 1 --max-lmwt 10 --word-ins-penalty 0" in exp.cfg_text
    assert "\tlab_opts=ali-to-pdf" in exp.cfg_text  # continuation lines stay indented
    resolved = tmp_path / "resolved.cfg"
    resolved.write_text(exp.cfg_text)
    monkeypatch.delenv("CORPUS_ROOT")
    again = load_experiment(resolved)
    _same(exp, again)
    assert again.cfg_text == exp.cfg_text


def test_concatenate_of_feature_streams(tmp_path, corpus):
    cfg = synth_cfg(tmp_path, corpus, text_edit=lambda t: t.replace(
        "\tcw_right=0\nlab", "\tcw_right=0\n\t\n\tfea_name=fbank2\n\tfea_lst="
        f"{corpus}/data/train/feats.scp\nlab", 1).replace(
        "model = out_rnn=compute(snn_layers,fbank)",
        "model = conc1=concatenate(fbank,fbank2)\n\tout_rnn=compute(snn_layers,conc1)"))
    text = cfg.read_text()
    for part in ("dev", "test"):  # every dataset defines both streams
        text = re.sub(rf"(fea_lst={corpus}/data/{part}/feats.scp\n(?:\t.*\n)*?\tcw_right=0\n)",
                      lambda m: m.group(1) + f"\t\n\tfea_name=fbank2\n\tfea_lst={corpus}/data/"
                      f"{part}/feats.scp\n", text)
    cfg.write_text(text)
    exp = load_experiment(cfg)
    assert exp.features_used() == ["fbank", "fbank2"]


@pytest.mark.parametrize("opt,fields,expected", [
    ("rmsprop", ["opt_alpha=0.95", "opt_momentum=0.5", "opt_centered=True"],
     {"alpha": 0.95, "momentum": 0.5, "centered": True}),
    ("sgd", ["opt_momentum=0.9", "opt_dampening=0.0", "opt_nesterov=True"],
     {"momentum": 0.9, "dampening": 0.0, "nesterov": True}),
    ("adam", ["opt_amsgrad=True"], {"amsgrad": True}),
])
def test_optimiser_proto_fields_reach_torch(tmp_path, corpus, opt, fields, expected):
    cfg = synth_cfg(tmp_path, corpus, text_edit=lambda t: re.sub(r"^opt_(betas|eps|amsgrad) = .*\n", "",
                                                                    t, flags=re.M))
    exp = load_experiment(cfg, [f"architecture1.arch_opt={opt}"] +
                          [f"architecture1.{f}" for f in fields])
    group = make_optimizer(exp.architectures["snn_layers"], [torch.zeros(1)]).param_groups[0]
    assert {k: group[k] for k in expected} == expected


def test_every_upstream_baseline_cfg_loads_or_fails_as_documented(upstream_dir, tiny_corpus,
                                                                   tmp_path):
    assert len(upstream_cfgs(upstream_dir)) >= 30
    documented = DOC.read_text().split("## Upstream baseline cfgs", 1)[1].split("\n## ", 1)[0]
    assert table(upstream_dir, tiny_corpus, tmp_path) in documented
    loading = [name for name, _, folded in outcomes(upstream_dir, tiny_corpus, tmp_path)
               if folded == LOADS]
    assert len(loading) >= 5


def test_arch_pretrain_file_and_arch_freeze(tmp_path, corpus):
    import dataclasses
    import logging
    from pytorch_kaldi_snn.train.pretrain import apply_pretrain_and_freeze
    saved = torch.nn.Linear(3, 2)
    torch.save({"model_par": saved.state_dict()}, tmp_path / "arch.pkl")
    exp = load_experiment(synth_cfg(tmp_path, corpus),
                          [f"architecture1.arch_pretrain_file={tmp_path / 'arch.pkl'}",
                           "architecture1.arch_freeze=True"])
    arch = exp.architectures["snn_layers"]
    assert (arch.pretrain_file, arch.freeze) == (tmp_path / "arch.pkl", True)
    net = torch.nn.Linear(3, 2)
    apply_pretrain_and_freeze({"snn_layers": net}, exp.architectures, logging.getLogger("t"))
    assert torch.equal(net.weight, saved.weight) and not net.weight.requires_grad
    wrong = {"snn_layers": torch.nn.Linear(4, 2)}
    with pytest.raises(ConfigError, match=r"\[architecture1\] arch_pretrain_file: .* does not fit"):
        apply_pretrain_and_freeze(wrong, exp.architectures, logging.getLogger("t"))
    unfrozen = dataclasses.replace(arch, pretrain_file=None, freeze=False)
    other = torch.nn.Linear(3, 2)
    apply_pretrain_and_freeze({"snn_layers": other}, {"snn_layers": unfrozen}, logging.getLogger("t"))
    assert other.weight.requires_grad


def test_upstream_per_epoch_learning_rates(tmp_path, corpus):
    exp = load_experiment(synth_cfg(tmp_path, corpus),
                          ["exp.n_epochs_tr=4", "architecture1.arch_lr=0.08*3|0.04"])
    assert exp.architectures["snn_layers"].lr_per_epoch == (0.08, 0.08, 0.08, 0.04)
    assert _error(synth_cfg(tmp_path, corpus), ["architecture1.arch_lr=0.08*3|0.04"]) == (
        "[architecture1] arch_lr: arch_lr = 0.08*3|0.04 gives 4 rates for n_epochs_tr = 8 epochs")


def test_resolved_cfg_of_the_upstream_schedule_reloads(tmp_path, corpus):
    drop = ("arch_lr_schedule = consecutive\n", "arch_patience = 3\n")
    cfg = synth_cfg(tmp_path, corpus, text_edit=lambda t: t.replace(drop[0], "").replace(drop[1], ""))
    exp = load_experiment(cfg)
    assert "arch_lr_schedule = upstream" in exp.cfg_text and "arch_patience" not in exp.cfg_text
    resolved = tmp_path / "resolved.cfg"
    resolved.write_text(exp.cfg_text)
    assert load_experiment(resolved).cfg_text == exp.cfg_text


def test_resolved_cfg_expands_upstream_only_keys(tmp_path, corpus, monkeypatch):
    """``scoring_script = ${KALDI_ROOT}/...`` (upstream only) is expanded in resolved.cfg as in
    every other value; where KALDI_ROOT is unset (the built-in path) it stays as written with a
    comment saying so, and the resolved cfg still reloads to the same text."""
    script = "decoding.scoring_script=${KALDI_ROOT}/egs/timit/s5/local/score.sh"
    monkeypatch.setenv("KALDI_ROOT", "/opt/kaldi")
    exp = load_experiment(synth_cfg(tmp_path, corpus), [script])
    assert "scoring_script = /opt/kaldi/egs/timit/s5/local/score.sh" in exp.cfg_text
    assert "${" not in exp.cfg_text and "$KALDI_ROOT" not in exp.cfg_text
    monkeypatch.delenv("KALDI_ROOT")
    exp = load_experiment(synth_cfg(tmp_path, corpus), [script])
    lines = exp.cfg_text.splitlines()
    at = lines.index("scoring_script = ${KALDI_ROOT}/egs/timit/s5/local/score.sh")
    assert lines[at - 1] == ("# ${KALDI_ROOT} is not set: scoring_script is left as written "
                             "(an upstream-only key, not used by this runner)")
    assert [line for line in lines if "${" in line] == lines[at - 1:at + 1]
    resolved = tmp_path / "resolved.cfg"
    resolved.write_text(exp.cfg_text)
    assert load_experiment(resolved).cfg_text == exp.cfg_text


def test_unset_variable_in_an_honoured_key_is_refused(tmp_path, corpus, monkeypatch):
    monkeypatch.delenv("NO_SUCH_ROOT", raising=False)
    cfg = synth_cfg(tmp_path, corpus)
    assert _error(cfg, ["exp.out_folder=${NO_SUCH_ROOT}/exp"]) == (
        "[exp] out_folder: ${NO_SUCH_ROOT} is not set (export it, or pass --var NO_SUCH_ROOT=...)")
    monkeypatch.setenv("NO_SUCH_ROOT", str(tmp_path))
    exp = load_experiment(cfg, ["exp.out_folder=${NO_SUCH_ROOT}/exp"])
    assert exp.exp.out_folder == tmp_path / "exp"
