"""The built-in synthetic TIMIT-like corpus: eSpeak NG speech with frame-level phone labels.

Generate it with ``python -m pytorch_kaldi_snn.corpus.generate --out DIR`` (docs/corpus.md);
read the frame-level phone reference of it, or of any data dir in the same form, with
:func:`read_phone_alignment`.
"""
from .alignment import read_phone_alignment
from .phones import PHONES

__all__ = ["PHONES", "read_phone_alignment"]
