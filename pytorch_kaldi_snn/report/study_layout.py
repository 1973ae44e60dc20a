"""Where the study keeps its runs, ``OUT/<study>/<point>/seed<i>``: named here once, for the
study that writes them (:mod:`pytorch_kaldi_snn.study`) and the reports that read them back
(``python -m pytorch_kaldi_snn.report.energy --study-dir OUT``)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

TABLE1 = "table1"
STUDIES = (TABLE1, "fig5a", "fig5b")
DENSE_ARCHS = ("lstm", "gru")  # no output bits or threshold: their point names say neither
# a point folder's name, as point_name writes it (an arch has no underscore)
_POINT = re.compile(r"(?P<arch>[a-z0-9]+)(_N\d+_k\d+)?_h\d+")


def point_name(arch: str, n_bits: int, k: int, hidden: int) -> str:
    """The folder of one point: ``lstm_h550``, ``v2_N6_k4_h550``."""
    if arch in DENSE_ARCHS:
        return f"{arch}_h{hidden}"
    return f"{arch}_N{n_bits}_k{k}_h{hidden}"


def arch_of(point: str) -> Optional[str]:
    """The architecture a point folder was named for by :func:`point_name`; None for any
    other name (a folder the study did not make)."""
    match = _POINT.fullmatch(point)
    if match is None or (match.group(2) is None) != (match["arch"] in DENSE_ARCHS):
        return None
    return match["arch"]


def seed_folder(out: Path, study: str, point: str, seed: int) -> Path:
    """The run folder (``out_folder``) of one seed of one point of a study in ``out``."""
    return Path(out) / study / point / f"seed{seed}"


def console_log(out: Path, study: str, point: str, seed: int) -> Path:
    """That run's console output when runs go in parallel, beside its folder."""
    return seed_folder(out, study, point, seed).with_name(f"seed{seed}.console.log")


def finished_runs(out: Path, study: str, seed: int) -> Dict[str, List[Path]]:
    """arch -> the ``seed`` folders of its points that finished (a ``results.json``), by point
    name; points of no arch (folders the study did not make) are left out."""
    found: Dict[str, List[Path]] = {}
    points = Path(out) / study
    for point in sorted(p.name for p in points.iterdir()) if points.is_dir() else ():
        arch = arch_of(point)
        run = seed_folder(out, study, point, seed)
        if arch is not None and (run / "results.json").is_file():
            found.setdefault(arch, []).append(run)
    return found
