"""The ``[datasetN]`` and ``[data_use]`` sections: feature streams, label sets, which set does what.

``fea``/``lab`` options hold blocks of ``name=value`` lines, one block per feature stream or label
set, each starting with ``fea_name=`` / ``lab_name=``; ``$VAR`` in a value is expanded from the
environment as in every other value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Tuple

from pytorch_kaldi_snn.config.localize import expand_vars
from pytorch_kaldi_snn.config.options import Section, get_int, get_str
from pytorch_kaldi_snn.config.registry import LAB_OPTS, SECTION_KEYS, check_keys
from pytorch_kaldi_snn.config.resolved import Recorder
from pytorch_kaldi_snn.errors import ConfigError


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    scp: Path
    opts: str  # Kaldi pipe, e.g. "apply-cmvn ... ark:- ark:- | add-deltas ... |"
    cw_left: int
    cw_right: int


@dataclass(frozen=True)
class LabelSpec:
    name: str
    folder: Path  # alignment dir: ali.*.gz and final.mdl
    opts: str  # "ali-to-pdf" or "ali-to-phones --per-frame=true"
    count_file: str  # "auto", "none" or a path
    data_folder: Path
    graph: Path

    @property
    def is_phones(self) -> bool:
        return self.opts.split()[0] == "ali-to-phones"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    section: str
    features: Tuple[FeatureSpec, ...]
    labels: Tuple[LabelSpec, ...]
    n_chunks: int  # parts read and trained one at a time per epoch (data/streamed.py)

    def label_set(self, name: str) -> LabelSpec:
        """The label set ``name`` (the cfg's checks make sure every set the model reads exists)."""
        return next(lab for lab in self.labels if lab.name == name)


@dataclass(frozen=True)
class DataUse:
    train_with: str
    valid_with: str
    forward_with: str


def _blocks(sec: Section, key: str, first: str, rec: Recorder) -> List[Section]:
    """Split a multi-line ``fea``/``lab`` value into one Section per ``<first>=`` block."""
    blocks: List[Dict[str, str]] = []
    for line in get_str(sec, key).splitlines():
        line = line.strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"line {line!r} of {key} is not name=value", section=sec.name,
                              key=key)
        if name.strip() == first or not blocks:
            blocks.append({})
        # paths and pipes may name $KALDI_ROOT and the like, as Kaldi's path.sh does; the same
        # expansion as `localize` (an unset variable is an error, not a literal path)
        blocks[-1][name.strip()] = expand_vars(value.strip(), os.environ, section=sec.name,
                                               key=f"{key} {name.strip()}")
    for block in blocks:
        if first not in block:
            raise ConfigError(f"missing option {first}", section=sec.name, key=first)
        check_keys(sec.name, block, SECTION_KEYS[key])
    return [Section(sec.name, b, rec.block(sec.name, key, b)) for b in blocks]


def _parse_feature(block: Section) -> FeatureSpec:
    return FeatureSpec(
        name=get_str(block, "fea_name"),
        scp=Path(get_str(block, "fea_lst")),
        opts=get_str(block, "fea_opts", default=""),
        cw_left=get_int(block, "cw_left", min=0, default=0),
        cw_right=get_int(block, "cw_right", min=0, default=0),
    )


def _parse_label(block: Section) -> LabelSpec:
    if get_str(block, "lab_name").lower() == "none":
        raise ConfigError("lab_name = none is upstream's production mode (forward without "
                          "labels), not supported: every dataset needs alignments",
                          section=block.name, key="lab_name")
    opts = " ".join(get_str(block, "lab_opts").split())
    if opts not in LAB_OPTS:
        raise ConfigError(f"lab_opts = {opts!r} is not one of {', '.join(sorted(LAB_OPTS))}",
                          section=block.name, key="lab_opts")
    return LabelSpec(
        name=get_str(block, "lab_name"),
        folder=Path(get_str(block, "lab_folder")),
        opts=opts,
        count_file=get_str(block, "lab_count_file", default="auto"),
        data_folder=Path(get_str(block, "lab_data_folder")),
        graph=Path(get_str(block, "lab_graph")),
    )


def parse_dataset(sec: Section, rec: Recorder) -> DatasetSpec:
    check_keys(sec.name, sec, SECTION_KEYS["dataset"])
    features = tuple(_parse_feature(b) for b in _blocks(sec, "fea", "fea_name", rec))
    labels = tuple(_parse_label(b) for b in _blocks(sec, "lab", "lab_name", rec))
    return DatasetSpec(name=get_str(sec, "data_name"), section=sec.name, features=features,
                       labels=labels, n_chunks=get_int(sec, "n_chunks", min=1, default=1))


def parse_data_use(sec: Section, datasets: Mapping[str, DatasetSpec]) -> DataUse:
    names = {}
    for key in ("train_with", "valid_with", "forward_with"):
        names[key] = get_str(sec, key)
        if names[key] not in datasets:
            defined = ", ".join(sorted(datasets))
            raise ConfigError(f"dataset {names[key]!r} is not defined (defined: {defined})",
                              section=sec.name, key=key)
    return DataUse(**names)


def check_dataset_names(datasets: Iterable[DatasetSpec], features_used: Iterable[str],
                        labels_used: Iterable[str]) -> None:
    """Every dataset must define the features and labels the model reads."""
    for ds in datasets:
        features = {f.name for f in ds.features}
        labels = {lab.name for lab in ds.labels}
        for name in features_used:
            if name not in features:
                raise ConfigError(f"feature {name!r} is not defined", section=ds.section,
                                  key="fea")
        for name in labels_used:
            if name not in labels:
                raise ConfigError(f"label set {name!r} is not defined", section=ds.section,
                                  key="lab")
