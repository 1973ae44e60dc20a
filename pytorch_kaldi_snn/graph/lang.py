"""A Kaldi lang dir for phone recognition, where every word is a phone (TIMIT style).

``write_lang`` writes what ``utils/prepare_lang.sh`` would for a lexicon ``p p`` per phone
with no optional silence: ``sil`` is an ordinary word because the transcripts (``text``)
carry it explicitly, as Kaldi's TIMIT recipe does. Phone ids: ``<eps>`` 0, ``sil`` 1, the
other 38 classes in the corpus's order, then ``#0`` and ``#1``. Word ids equal phone ids, then
``#0``, ``<s>``, ``</s>``. ``#0`` is the one symbol in use (G's backoff arcs carry it); ``#1`` is
declared because prepare_lang.sh always adds one phone-level symbol beyond the lexicon's
homophone count (0 for an identity lexicon), and ``utils/validate_lang.pl`` expects both. The
tree files (``roots``, ``sets``, ``extra_questions``) are written in both ``.txt`` and ``.int``
forms, as validate_lang.pl requires.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytorch_kaldi_snn.errors import DataError
from pytorch_kaldi_snn.gmm.topology import identity_lexicon_fst, topology_text
from pytorch_kaldi_snn.io.tables import atomic_outputs
from pytorch_kaldi_snn.kaldi_ports import kaldifst

SIL = "sil"
DISAMBIG = "#0"
PHONE_DISAMBIG = (DISAMBIG, "#1")  # phones.txt / phones/disambig.*; words.txt has only #0
SPECIAL_WORDS = ("<s>", "</s>")


@dataclass(frozen=True)
class PhoneSet:
    """The phones of a lang dir; ``phones[i]`` has id ``i + 1`` (id 0 is ``<eps>``)."""

    phones: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.phones or self.phones[0] != SIL:
            raise DataError(f"the phone set must start with {SIL!r}")
        if len(set(self.phones)) != len(self.phones):
            raise DataError("the phone set has a repeated phone")

    @classmethod
    def from_inventory(cls, phones: Sequence[str]) -> "PhoneSet":
        """Put ``sil`` first (id 1, as prepare_lang does for silence) and keep the others' order."""
        if SIL not in phones:
            raise DataError(f"the phone inventory has no {SIL!r}")
        return cls((SIL,) + tuple(p for p in phones if p != SIL))

    @property
    def ids(self) -> list[int]:
        """Phone ids, 1-based."""
        return list(range(1, len(self.phones) + 1))

    @property
    def disambig_id(self) -> int:
        """The id of ``#0`` in both phones.txt and words.txt."""
        return len(self.phones) + 1

    def _symbols(self) -> dict[str, int]:
        return {"<eps>": 0, **{p: i for i, p in zip(self.ids, self.phones)}}

    def phone_table(self) -> dict[str, int]:
        """phones.txt: ``<eps>``, the phones, ``#0``, ``#1``."""
        table = self._symbols()
        for offset, symbol in enumerate(PHONE_DISAMBIG):
            table[symbol] = self.disambig_id + offset
        return table

    def word_table(self) -> dict[str, int]:
        """words.txt: ``<eps>``, the phones, ``#0``, ``<s>`` and ``</s>`` (arpa2fst needs them)."""
        table = {**self._symbols(), DISAMBIG: self.disambig_id}
        for word in SPECIAL_WORDS:
            table[word] = len(table)
        return table


def read_inventory(path: Path) -> list[str]:
    """The corpus's phone list: the first field of each non-empty line of ``phones.txt``."""
    lines = [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    phones = [fields[0] for fields in lines if fields and fields[0] not in ("<eps>",) and not fields[0].startswith("#")]
    if not phones:
        raise DataError("no phones", file=str(path))
    return phones


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(path) as (temp,):
        Path(temp).write_text(text, encoding="utf-8")


def write_fst(path: Path, fst: kaldifst.StdVectorFst) -> None:
    """Write an OpenFst binary VectorFst atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(path) as (temp,):
        fst.write(temp)


def _table_text(table: dict[str, int]) -> str:
    return "".join(f"{sym} {i}\n" for sym, i in table.items())


def phones_dir_files(phone_set: PhoneSet) -> dict[str, str]:
    """``phones/`` files (name -> content) that mkgraph.sh, the scoring and alignment scripts read."""
    sil, nonsil = [SIL], list(phone_set.phones[1:])
    table = phone_set.phone_table()
    files = {}
    for name, syms in (("silence", sil), ("optional_silence", sil), ("nonsilence", nonsil),
                       ("context_indep", sil), ("disambig", list(PHONE_DISAMBIG))):
        files[f"{name}.txt"] = "".join(f"{s}\n" for s in syms)
        files[f"{name}.int"] = "".join(f"{table[s]}\n" for s in syms)
        files[f"{name}.csl"] = ":".join(str(table[s]) for s in syms) + "\n"
    files["wdisambig.txt"] = f"{DISAMBIG}\n"
    files["wdisambig_phones.int"] = files["wdisambig_words.int"] = f"{phone_set.disambig_id}\n"
    files["align_lexicon.txt"] = "".join(f"{p} {p} {p}\n" for p in phone_set.phones)
    files["align_lexicon.int"] = "".join(f"{i} {i} {i}\n" for i in phone_set.ids)
    files["roots.txt"] = "".join(f"shared split {p}\n" for p in phone_set.phones)
    files["roots.int"] = "".join(f"shared split {table[p]}\n" for p in phone_set.phones)
    files["sets.txt"] = "".join(f"{p}\n" for p in phone_set.phones)
    files["sets.int"] = "".join(f"{table[p]}\n" for p in phone_set.phones)
    # prepare_lang.sh's: the dict's extra questions (none here) and no word-position questions
    files["extra_questions.txt"] = files["extra_questions.int"] = ""
    return files


def write_lang(phone_set: PhoneSet, lang_dir: Path) -> None:
    """Write ``lang_dir`` (phones.txt, words.txt, topo, L.fst, L_disambig.fst, oov, phones/)."""
    lang_dir = Path(lang_dir)
    _write_text(lang_dir / "phones.txt", _table_text(phone_set.phone_table()))
    _write_text(lang_dir / "words.txt", _table_text(phone_set.word_table()))
    _write_text(lang_dir / "topo", topology_text(phone_set.ids[1:], phone_set.ids[0]))
    # No OOVs are possible (words are phones); Kaldi scripts still expect oov.{txt,int}.
    _write_text(lang_dir / "oov.txt", f"{SIL}\n")
    _write_text(lang_dir / "oov.int", f"{phone_set.ids[0]}\n")
    for name, content in phones_dir_files(phone_set).items():
        _write_text(lang_dir / "phones" / name, content)
    write_fst(lang_dir / "L.fst", identity_lexicon_fst(phone_set.ids))
    write_fst(lang_dir / "L_disambig.fst", identity_lexicon_fst(phone_set.ids, phone_set.disambig_id))
