"""Decode with Kaldi's ``latgen-faster-mapped`` when it is installed, else with the built-in decoder.

The Kaldi path runs what PyTorch-Kaldi's ``decode_dnn.sh`` runs for each job (options from
:mod:`pytorch_kaldi_snn.config.latgen_opts`, which decode_dnn.sh also asks)::

    latgen-faster-mapped --min-active=200 --max-active=7000 --max-mem=50000000 --beam=13 --lattice-beam=8 \\
      --acoustic-scale=0.1 --allow-partial=true --word-symbol-table=GRAPH/words.txt \\
      MODEL GRAPH/HCLG.fst LOGLIKES_RSPECIFIER "ark:|gzip -c > OUT/lat.1.gz" \\
      ark,t:OUT/best_words.txt ark,t:OUT/best_ali.txt

(the two optional 1-best wspecifiers replace decode_dnn.sh's recipe-specific
``local/score.sh``). With ``nj`` > 1 the forward ark is split into ``nj`` contiguous parts,
one latgen per part runs at once, each writes ``lat.J.gz`` and its 1-best is merged in order.
Both paths leave the same files in ``out_dir`` (``lat.1.gz`` .. ``lat.<nj>.gz``, ``num_jobs``,
``best_words.txt``, ``best_ali.txt``, ``hyp.txt``, and ``score.txt`` when a reference is
given, scored by :mod:`pytorch_kaldi_snn.scoring`), and log ``decoder: kaldi`` or
``decoder: builtin``. Kaldi is found on ``PATH`` or under ``$KALDI_ROOT/src/{bin,latbin}``.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

from pytorch_kaldi_snn.decoding.decoder import DecodeOptions, decode_ark, write_hyp_text
from pytorch_kaldi_snn.decoding.jobs import (
    clear_lattices, lattice_archives, lattice_name, merge_int_vectors, split_loglikes,
)
from pytorch_kaldi_snn.config.latgen_opts import latgen_options
from pytorch_kaldi_snn.errors import ConfigError, DataError, OutputError, UserInputError, kaldi_error_line
from pytorch_kaldi_snn.io import as_rspecifier, atomic_outputs, read_int_vectors
from pytorch_kaldi_snn.io.commands import end_group, path_argument, start
from pytorch_kaldi_snn.scoring import ErrorCounts, read_transcripts, score_files
from pytorch_kaldi_snn.scoring.decoded import graph_words, is_phone_graph

log = logging.getLogger(__name__)
LATGEN = "latgen-faster-mapped"
PathLike = Union[str, os.PathLike]
# Kaldi's Output::Close when the ``|gzip -c > lat.J.gz`` of a job fails (disk full)
_LATTICE_PIPE_FAILED = re.compile(r"WARNING \(.*Pipe \|gzip .* had nonzero return status.*")


@dataclass(frozen=True)
class DecodeRun:
    """Which decoder ran (``"kaldi"`` or ``"builtin"``), where its outputs are, the score and
    the lattice archives."""

    decoder: str
    out_dir: Path
    counts: Optional[ErrorCounts]
    lattices: tuple[Path, ...] = ()  # lat.1.gz .. lat.<nj>.gz; none when save_lattices was False


def kaldi_search_path(environ: Mapping[str, str] = os.environ) -> str:
    """``PATH`` with ``$KALDI_ROOT/src/bin`` and ``src/latbin`` in front when KALDI_ROOT is set."""
    parts = [environ.get("PATH", "")]
    root = environ.get("KALDI_ROOT")
    if root:
        parts[:0] = [str(Path(root) / "src" / "latbin"), str(Path(root) / "src" / "bin")]
    return os.pathsep.join(p for p in parts if p)


def latgen_command(
    latgen: str, loglikes: str, graph_dir: Path, model_path: Path, out_dir: Path, opts: DecodeOptions,
    job: int = 1, save_lattices: bool = True, one_best_dir: Optional[Path] = None,
) -> list[str]:
    """The ``latgen-faster-mapped`` argv of job ``job`` (decode_dnn.sh's options, from
    :func:`~pytorch_kaldi_snn.config.latgen_opts.latgen_options`, plus the 1-best outputs).

    Lattices go to ``out_dir/lat.<job>.gz``, or to ``/dev/null`` without ``save_lattices``
    (latgen always writes some); the 1-best to ``one_best_dir`` (default ``out_dir``).
    """
    best = one_best_dir or out_dir
    lattices = f"ark:|gzip -c > {shlex.quote(str(out_dir / lattice_name(job)))}" if save_lattices else "ark:/dev/null"
    return [
        latgen,
        *latgen_options(opts, str(graph_dir / "words.txt")),
        path_argument(model_path),
        path_argument(graph_dir / "HCLG.fst"),
        as_rspecifier(loglikes),
        lattices,
        f"ark,t:{best / 'best_words.txt'}",
        f"ark,t:{best / 'best_ali.txt'}",
    ]


def _start_job(argv: list[str], log_file: Path, path: str) -> subprocess.Popen:
    """Start one latgen in a process group of its own, which its lattice pipe (``sh``, ``gzip``)
    joins, so that :func:`_end_jobs` can end them all, as does the kernel when the runner is
    killed (io/commands.py)."""
    with open(log_file, "w", encoding="utf-8") as stderr:
        stderr.write(" ".join(shlex.quote(a) for a in argv) + "\n")
        stderr.flush()
        return start(argv, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, "PATH": path})


def _wait_job(job: subprocess.Popen, log_file: Path, lattices: Optional[Path]) -> None:
    """Wait for a job; DataError with Kaldi's ERROR line when it failed, OutputError when its
    lattice pipe failed (latgen only warns about that and exits 0: disk full loses lattices)."""
    status = job.wait()
    text = log_file.read_text(encoding="utf-8", errors="replace")
    if status != 0:
        raise DataError(f"{LATGEN} failed with exit status {status}: {kaldi_error_line(text)}", file=str(log_file))
    warning = _LATTICE_PIPE_FAILED.search(text)
    if lattices is not None and warning:
        said = [line for line in text.splitlines() if line.startswith("gzip:")] or [warning[0]]
        raise OutputError(f"cannot write: {said[-1]} (see {log_file})", file=str(lattices))


def _end_jobs(jobs: list[subprocess.Popen]) -> None:
    """End the process group of every job still running (latgen and its lattice pipe) and wait
    until none of its processes is left: on an interrupt or a failed start, no job outlives the
    run and writes into the decode dir after the out_folder lock is released. (A job that has
    ended closed its pipe first: its group is empty.)"""
    for job in jobs:
        end_group(job)


def _run_latgen_jobs(
    latgen: str, parts: list[str], graph_dir: Path, model_path: Path, out: Path, opts: DecodeOptions,
    path: str, save_lattices: bool, one_best_dirs: list[Path],
) -> None:
    """One latgen-faster-mapped per part, all at once (decode_dnn.sh's ``--nj 0``), logs in
    ``out/log/decode.J.log``; the first failure raises after every job has ended."""
    (out / "log").mkdir(parents=True, exist_ok=True)
    logs = [out / "log" / f"decode.{j}.log" for j in range(1, len(parts) + 1)]
    running: list[subprocess.Popen] = []
    errors: list[UserInputError] = []
    try:
        for j, (part, best, log_file) in enumerate(zip(parts, one_best_dirs, logs), start=1):
            argv = latgen_command(latgen, part, graph_dir, model_path, out, opts, j, save_lattices, best)
            running.append(_start_job(argv, log_file, path))
        for j, (job, log_file) in enumerate(zip(running, logs), start=1):
            try:
                _wait_job(job, log_file, out / lattice_name(j) if save_lattices else None)
            except (DataError, OutputError) as err:
                errors.append(err)
    finally:
        _end_jobs(running)
    if errors:
        raise errors[0]


def _run_kaldi(
    latgen: str, loglikes: str, graph_dir: Path, model_path: Path, out: Path, opts: DecodeOptions, path: str,
    save_lattices: bool = True, nj: int = 1,
) -> None:
    clear_lattices(out)  # decode_ark does the same for the built-in path
    if nj == 1:
        _run_latgen_jobs(latgen, [loglikes], graph_dir, model_path, out, opts, path, save_lattices, [out])
    else:
        with tempfile.TemporaryDirectory(prefix="split.", dir=out) as tmp:
            parts = split_loglikes(loglikes, nj, Path(tmp))
            best_dirs = [Path(tmp) / str(j) for j in range(1, nj + 1)]
            for d in best_dirs:
                d.mkdir()
            _run_latgen_jobs(latgen, [str(p) for p in parts], graph_dir, model_path, out, opts, path,
                             save_lattices, best_dirs)
            merge_int_vectors(out / "best_words.txt", [d / "best_words.txt" for d in best_dirs])
            merge_int_vectors(out / "best_ali.txt", [d / "best_ali.txt" for d in best_dirs])
    with atomic_outputs(out / "num_jobs") as (temp,):
        Path(temp).write_text(f"{nj}\n", encoding="utf-8")
    words = dict(read_int_vectors(out / "best_words.txt"))
    write_hyp_text(out / "hyp.txt", words, graph_dir / "words.txt")


def check_phone_reference(ref_text: Path, graph_dir: Path) -> None:
    """On a phone graph (every word of ``words.txt`` is a phone), refuse a reference that is not
    in phones: a word transcript would otherwise be scored as a PER of several hundred percent."""
    if not is_phone_graph(graph_dir):
        return  # a word graph: out-of-vocabulary reference words are normal there
    words = graph_words(graph_dir)
    for utt, tokens in read_transcripts(ref_text).items():
        unknown = [t for t in tokens if t not in words]
        if unknown:
            raise DataError(f"{unknown[0]!r} is not a phone of {graph_dir / 'words.txt'}: the reference "
                            "must be a phone transcript, not words", file=str(ref_text), utt=utt)


def decode_and_score(
    loglikes: PathLike,
    graph_dir: PathLike,
    model_path: PathLike,
    out_dir: PathLike,
    opts: DecodeOptions = DecodeOptions(),
    ref_text: Optional[PathLike] = None,
    use_kaldi: Optional[bool] = None,
    mode: str = "sclite",
    phone_map: Optional[Mapping[str, Optional[str]]] = None,
    save_lattices: bool = True,
    nj: int = 1,
) -> DecodeRun:
    """Decode ``loglikes`` (pdf log-likelihood ark/scp/rspecifier) and score against ``ref_text``.

    ``use_kaldi``: None picks Kaldi when ``latgen-faster-mapped`` is found, True requires it
    (ConfigError if missing), False forces the built-in decoder. ``mode``/``phone_map`` are
    passed to :func:`pytorch_kaldi_snn.scoring.score_files`; the Kaldi-format report goes to
    ``out_dir/score.txt``. ``save_lattices`` False writes no ``lat.*.gz`` (1-best only);
    ``nj`` splits ``loglikes`` into that many parallel jobs, one ``lat.J.gz`` each. Lattice
    archives of an earlier decode in ``out_dir`` are removed first.
    """
    graph_dir, model_path, out = Path(graph_dir), Path(model_path), Path(out_dir)
    path = kaldi_search_path()
    latgen = shutil.which(LATGEN, path=path) if use_kaldi is not False else None
    if use_kaldi and latgen is None:
        raise ConfigError(f"{LATGEN} not found on PATH or under $KALDI_ROOT/src/latbin")
    if nj < 1:
        raise ConfigError(f"nj must be at least 1, got {nj}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = f"{nj} job{'s' if nj > 1 else ''}, " + ("lattices" if save_lattices else "1-best only, no lattices")
    if latgen:
        log.info("decoder: kaldi (%s; %s)", latgen, jobs)
        _run_kaldi(latgen, os.fspath(loglikes), graph_dir, model_path, out, opts, path, save_lattices, nj)
    else:
        log.info("decoder: builtin (%s)", jobs)
        decode_ark(loglikes, graph_dir, model_path, out, opts, save_lattices, nj)
    counts = None
    if ref_text is not None:
        if phone_map is None:
            check_phone_reference(Path(ref_text), graph_dir)
        counts = score_files(ref_text, out / "hyp.txt", mode, phone_map)
        with atomic_outputs(out / "score.txt") as (temp,):
            Path(temp).write_text(counts.kaldi_report(), encoding="utf-8")
        log.info("%s", counts.kaldi_report().splitlines()[0])
    return DecodeRun("kaldi" if latgen else "builtin", out, counts, tuple(lattice_archives(out)))
