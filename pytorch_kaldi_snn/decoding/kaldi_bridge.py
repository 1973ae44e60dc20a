"""Decode with Kaldi's ``latgen-faster-mapped`` when it is installed, else with the built-in decoder.

The Kaldi path runs what PyTorch-Kaldi's ``decode_dnn.sh`` runs for one job::

    latgen-faster-mapped --min-active=200 --max-active=7000 --max-mem=50000000 --beam=13 --lattice-beam=8 \\
      --acoustic-scale=0.1 --allow-partial=true --word-symbol-table=GRAPH/words.txt \\
      MODEL GRAPH/HCLG.fst LOGLIKES_RSPECIFIER "ark:|gzip -c > OUT/lat.1.gz" \\
      ark,t:OUT/best_words.txt ark,t:OUT/best_ali.txt

(the two optional 1-best wspecifiers replace decode_dnn.sh's recipe-specific
``local/score.sh``). Both paths leave the same files in ``out_dir`` (``lat.1.gz``,
``best_words.txt``, ``best_ali.txt``, ``hyp.txt``, and ``score.txt`` when a reference is
given, scored by :mod:`pytorch_kaldi_snn.scoring`), and log ``decoder: kaldi`` or
``decoder: builtin``. Kaldi is found on ``PATH`` or under ``$KALDI_ROOT/src/{bin,latbin}``.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

from pytorch_kaldi_snn.decoding.decoder import DecodeOptions, decode_ark, write_hyp_text
from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.io import as_rspecifier, atomic_outputs, read_int_vectors
from pytorch_kaldi_snn.scoring import ErrorCounts, read_transcripts, score_files

log = logging.getLogger(__name__)
LATGEN = "latgen-faster-mapped"
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class DecodeRun:
    """Which decoder ran (``"kaldi"`` or ``"builtin"``), where its outputs are, and the score."""

    decoder: str
    out_dir: Path
    counts: Optional[ErrorCounts]


def kaldi_search_path(environ: Mapping[str, str] = os.environ) -> str:
    """``PATH`` with ``$KALDI_ROOT/src/bin`` and ``src/latbin`` in front when KALDI_ROOT is set."""
    parts = [environ.get("PATH", "")]
    root = environ.get("KALDI_ROOT")
    if root:
        parts[:0] = [str(Path(root) / "src" / "latbin"), str(Path(root) / "src" / "bin")]
    return os.pathsep.join(p for p in parts if p)


def latgen_command(
    latgen: str, loglikes: str, graph_dir: Path, model_path: Path, out_dir: Path, opts: DecodeOptions
) -> list[str]:
    """The ``latgen-faster-mapped`` argv (decode_dnn.sh's options plus the 1-best outputs)."""
    return [
        latgen,
        f"--min-active={opts.min_active}",
        f"--max-active={opts.max_active}",
        f"--max-mem={opts.max_mem}",
        f"--beam={opts.beam:g}",
        f"--lattice-beam={opts.lattice_beam:g}",
        f"--acoustic-scale={opts.acoustic_scale:g}",
        f"--allow-partial={'true' if opts.allow_partial else 'false'}",
        f"--word-symbol-table={graph_dir / 'words.txt'}",
        str(model_path),
        str(graph_dir / "HCLG.fst"),
        as_rspecifier(loglikes),
        f"ark:|gzip -c > {shlex.quote(str(out_dir / 'lat.1.gz'))}",
        f"ark,t:{out_dir / 'best_words.txt'}",
        f"ark,t:{out_dir / 'best_ali.txt'}",
    ]


def _run_kaldi(
    latgen: str, loglikes: str, graph_dir: Path, model_path: Path, out: Path, opts: DecodeOptions, path: str
) -> None:
    (out / "log").mkdir(parents=True, exist_ok=True)
    log_file = out / "log" / "decode.1.log"
    argv = latgen_command(latgen, loglikes, graph_dir, model_path, out, opts)
    with open(log_file, "w", encoding="utf-8") as stderr:
        stderr.write(" ".join(shlex.quote(a) for a in argv) + "\n")
        stderr.flush()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, "PATH": path})
    if done.returncode != 0:
        last = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise DataError(f"{LATGEN} failed with exit status {done.returncode}: {' '.join(last)}", file=str(log_file))
    words = dict(read_int_vectors(out / "best_words.txt"))
    write_hyp_text(out / "hyp.txt", words, graph_dir / "words.txt")


def _symbols(table: Path) -> set[str]:
    return {line.split()[0] for line in table.read_text(encoding="utf-8").splitlines() if line.strip()}


def check_phone_reference(ref_text: Path, graph_dir: Path) -> None:
    """On a phone graph (every word of ``words.txt`` is a phone), refuse a reference that is not
    in phones: a word transcript would otherwise be scored as a PER of several hundred percent."""
    words = _symbols(graph_dir / "words.txt") - {"<eps>", "<s>", "</s>", "#0"}
    if not (graph_dir / "phones.txt").is_file() or not words <= _symbols(graph_dir / "phones.txt"):
        return  # a word graph: out-of-vocabulary reference words are normal there
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
) -> DecodeRun:
    """Decode ``loglikes`` (pdf log-likelihood ark/scp/rspecifier) and score against ``ref_text``.

    ``use_kaldi``: None picks Kaldi when ``latgen-faster-mapped`` is found, True requires it
    (ConfigError if missing), False forces the built-in decoder. ``mode``/``phone_map`` are
    passed to :func:`pytorch_kaldi_snn.scoring.score_files`; the Kaldi-format report goes to
    ``out_dir/score.txt``.
    """
    graph_dir, model_path, out = Path(graph_dir), Path(model_path), Path(out_dir)
    path = kaldi_search_path()
    latgen = shutil.which(LATGEN, path=path) if use_kaldi is not False else None
    if use_kaldi and latgen is None:
        raise ConfigError(f"{LATGEN} not found on PATH or under $KALDI_ROOT/src/latbin")
    out.mkdir(parents=True, exist_ok=True)
    if latgen:
        log.info("decoder: kaldi (%s)", latgen)
        _run_kaldi(latgen, os.fspath(loglikes), graph_dir, model_path, out, opts, path)
    else:
        log.info("decoder: builtin")
        decode_ark(loglikes, graph_dir, model_path, out, opts)
    counts = None
    if ref_text is not None:
        if phone_map is None:
            check_phone_reference(Path(ref_text), graph_dir)
        counts = score_files(ref_text, out / "hyp.txt", mode, phone_map)
        with atomic_outputs(out / "score.txt") as (temp,):
            Path(temp).write_text(counts.kaldi_report(), encoding="utf-8")
        log.info("%s", counts.kaldi_report().splitlines()[0])
    return DecodeRun("kaldi" if latgen else "builtin", out, counts)
