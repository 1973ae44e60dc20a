"""Folders this project made, and the only ones it writes its outputs into or cleans.

A run writes ``results.md``, ``log.log``, ``.lock`` and more into its ``out_folder`` and, on a
rerun, removes what its own interrupted writes left there. Pointed at a folder of the user's
(their home, a project, ``/``, ``.``) that would overwrite and delete their files. So an output
folder must be new, empty, or carry :data:`MARKER`, the file this module writes when the project
takes a folder; a folder that holds anything else is refused before the first write.
Experiment folders of versions before the marker are recognised by their ``resolved.cfg``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from pytorch_kaldi_snn.errors import UserInputError
from pytorch_kaldi_snn.io.atomic import atomic_write

MARKER = ".pytorch_kaldi_snn"
_MARKER_TEXT = ("This folder was made by pytorch-kaldi-snn ({what}). The project writes, replaces\n"
                "and cleans up its own files here; keep files of your own elsewhere.\n")


class NotOurFolder(UserInputError):
    """``folder`` holds files this project did not make (the message says which)."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(f"{folder} {reason}")


def is_ours(folder: Path, legacy: Sequence[str] = ()) -> bool:
    """Whether ``folder`` carries the marker, or one of the ``legacy`` files that the project
    wrote into such folders before the marker existed."""
    return any((folder / name).is_file() for name in (MARKER, *legacy))


def maker(folder: Path) -> Optional[str]:
    """Which command made ``folder``, as its marker says (``prepare_set`` of ``prepare_set, from
    /data/x``: the text before a comma), or None without a marker."""
    try:
        text = (folder / MARKER).read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    head, tail = _MARKER_TEXT.split("{what}")
    end = text.find(tail)
    return text[len(head):end].split(",")[0] if text.startswith(head) and end > 0 else None


def removal_refused(folder: Path, command: str) -> Optional[str]:
    """Why ``command`` may not remove ``folder`` whole (None: it made it): its marker is
    missing or names another command, or it is a symbolic link (which points at something the
    project did not make where it stands, even when that is a marked folder)."""
    made_by = None if folder.is_symlink() or not folder.is_dir() else maker(folder)
    if made_by is None:
        return f"no {MARKER} in it"
    return None if made_by == command else f"its {MARKER} says {made_by} made it"


def check_may_take(folder: Path, legacy: Sequence[str] = ()) -> None:
    """Raise :class:`NotOurFolder` unless ``folder`` is missing, empty or already ours."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise NotOurFolder(folder, "is a broken symbolic link")
    if not folder.exists() or is_ours(folder, legacy):
        return
    if not folder.is_dir():
        raise NotOurFolder(folder, "exists and is not a folder")
    try:
        first = next(iter(sorted(p.name for p in folder.iterdir())), None)
    except PermissionError:
        raise NotOurFolder(folder, "cannot be listed (permission denied)") from None
    if first is not None:
        raise NotOurFolder(folder, f"already holds files that pytorch-kaldi-snn did not make "
                                   f"(e.g. {first}); name a new or empty folder")


def mark(folder: Path, what: str) -> None:
    """Mark the existing ``folder`` as made by the project (for ``what``, said in the marker)."""
    if not (folder / MARKER).is_file():
        atomic_write(folder / MARKER, lambda t: t.write_text(_MARKER_TEXT.format(what=what)))


def take(folder: Path, what: str, legacy: Sequence[str] = ()) -> None:
    """Create ``folder`` (and its parents) if needed and mark it as the project's; refused
    (:class:`NotOurFolder`) for a folder that holds files of someone else's."""
    folder = Path(folder)
    check_may_take(folder, legacy)
    folder.mkdir(parents=True, exist_ok=True)
    mark(folder, what)
