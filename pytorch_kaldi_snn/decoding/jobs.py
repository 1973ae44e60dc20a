"""Parallel decoding jobs the Kaldi way: split the forward ark, one lattice archive per job.

Kaldi's ``steps/decode*.sh`` split the data into ``nj`` contiguous parts (``split_data.sh``),
run one decoder per part and leave ``lat.1.gz .. lat.<nj>.gz`` (and ``num_jobs``) in the decode
dir; everything that reads lattices afterwards reads all of them. This module does the same for
both decoders: :func:`split_loglikes` writes the parts, :func:`lattice_archives` lists a decode
dir's archives in job order, :func:`clear_lattices` removes those of an earlier decode and
:func:`concatenate_archives` joins them into one.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.io import read_int_vectors, read_matrices, write_int_vectors, write_mat_ark

_LATTICE = re.compile(r"^lat\.([1-9][0-9]*)\.gz$")
PathLike = Union[str, os.PathLike]
LoglikeSource = Union[PathLike, Iterable[Tuple[str, np.ndarray]]]


def lattice_name(job: int) -> str:
    """``lat.<job>.gz``, the name Kaldi's decoding scripts give job ``job``'s lattices."""
    return f"lat.{job}.gz"


def lattice_archives(decode_dir: PathLike) -> list[Path]:
    """The ``lat.N.gz`` of ``decode_dir`` in job order (``lat.2.gz`` before ``lat.10.gz``)."""
    found = [(int(m.group(1)), p) for p in Path(decode_dir).iterdir() if (m := _LATTICE.match(p.name))]
    return [p for _, p in sorted(found)]


def clear_lattices(decode_dir: PathLike) -> None:
    """Remove the lattice archives of an earlier decode, so that none is read with the new ones."""
    if Path(decode_dir).is_dir():
        for path in lattice_archives(decode_dir):
            path.unlink()


def part_sizes(count: int, nj: int) -> list[int]:
    """Utterances per job: contiguous parts whose sizes differ by at most one (split_scp.pl)."""
    return [count // nj + (1 if j < count % nj else 0) for j in range(nj)]


def split_loglikes(source: LoglikeSource, nj: int, work_dir: Path) -> list[Path]:
    """Copy the matrices of ``source`` into ``nj`` contiguous arks ``work_dir/loglikes.J.ark``.

    ``source`` is an rspecifier or path (read twice: to count, then to copy; a pipe runs twice)
    or an iterable of ``(utt, matrix)``. DataError when it has fewer utterances than jobs
    (Kaldi refuses that split too).
    """
    if isinstance(source, (str, os.PathLike)):
        count, items = sum(1 for _ in read_matrices(source)), read_matrices(source)
        name: Optional[str] = os.fspath(source)
    else:
        listed = list(source)
        count, items, name = len(listed), iter(listed), None
    if count < nj:
        raise DataError(f"{count} utterance(s) cannot be split into nj = {nj} decoding jobs", file=name)
    work_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for job, size in enumerate(part_sizes(count, nj), start=1):
        part = work_dir / f"loglikes.{job}.ark"
        write_mat_ark(part, None, itertools.islice(items, size))
        parts.append(part)
    return parts


def merge_int_vectors(out: Path, parts: Sequence[Path]) -> None:
    """Concatenate the per-job int-vector text arks (best words, alignments) in job order."""
    write_int_vectors(out, itertools.chain.from_iterable(read_int_vectors(p) for p in parts), text=True)


def concatenate_archives(archives: Sequence[Path], out: Path) -> None:
    """One gzipped archive holding every ``lat.J.gz`` in job order: gzip members concatenated
    are one gzip stream (``cat lat.*.gz`` as Kaldi users do)."""
    with open(out, "wb") as sink:
        for archive in archives:
            with open(archive, "rb") as source:
                shutil.copyfileobj(source, sink)
