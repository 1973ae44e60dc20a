"""ctypes binding to the eSpeak NG library shipped in the pinned ``espeakng-loader`` wheel.

eSpeak NG is global-state C: one voice, one parameter set and one callback per process, so this
module keeps a single process-wide :class:`Espeak` (see :func:`engine`).

Measured on wheel 0.2.4 (libespeak-ng 1.52): the output is **not** a function of the arguments
alone. Static library state carries over from one synthesis to the next and survives
``espeak_Terminate``/``espeak_Initialize``: the same sentence and voice again moved the sample
count by up to ~220 samples. The engine's own noise generator is seeded from the clock at
initialisation. Hence the rules the corpus generator follows:

* every speaker is synthesized in a fresh process whose engine has never run, its utterances
  in a fixed order, so the state sequence is the same on every run and for any ``nj``. Reading
  text into phonemes (``espeak_TextToPhonemes``, the G2P of :mod:`pytorch_kaldi_snn.words`)
  changes that state as well: a process that read words and then forked a synthesizer gave
  no phones for 'a' (found when the test order changed). So the fresh processes come from
  :func:`pristine_context`, never from a fork of the process that asks for them;
* every synthesis reseeds the engine's noise (``espeak_ng_SetRandSeed``), which makes the
  breathy variants (f2, steph, ...) reproducible across processes.

:func:`has_been_used` tells a worker whether it inherited a used engine.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import threading
from multiprocessing.context import BaseContext
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError

SAMPLE_RATE = 22050  # the rate of every eSpeak NG voice; checked against espeak_Initialize

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_PHONEMES_SPACED = ord(" ") << 8  # espeak_TextToPhonemes: ASCII names, a space between phonemes
# ... a '|' between a word's phonemes and a space between words ('|' is in no phoneme name)
_PHONEMES_BY_WORD = ord("|") << 8
G2P_VOICE = "en-us"


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Voice:
    """What eSpeak NG is told for one speaker: ``en-us+<variant>`` and the prosody parameters."""

    variant: str
    rate: int  # words per minute, 80..450
    pitch: int  # 0..100
    pitch_range: int  # 0..100


@dataclass(frozen=True)
class Synthesis:
    """Raw engine output: int16 samples at 22.05 kHz and (sample index, phoneme name) events.

    Phoneme names are as the engine reports them, stress marks included (``'A@``).
    """

    samples: np.ndarray
    events: Tuple[Tuple[int, str], ...]


class Espeak:
    """The process-wide eSpeak NG instance. Use :func:`engine` rather than constructing it."""

    def __init__(self) -> None:
        import espeakng_loader  # the pinned wheel: library and data travel together

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lock = threading.Lock()
        self._chunks: List[np.ndarray] = []
        self._events: List[Tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept referenced: C holds the pointer
        data_path = espeakng_loader.get_data_path().encode()
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_PHONEME_EVENTS
        )
        if rate != SAMPLE_RATE:
            raise DataError(f"eSpeak NG initialisation returned {rate}, expected {SAMPLE_RATE} Hz")
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
        ]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]

    def _on_audio(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                name = events[i].id.string.decode("ascii", errors="replace")
                self._events.append((int(events[i].sample), name))
            i += 1
        return 0

    def _configure(self, voice: Voice, seed: int) -> None:
        name = f"en-us+{voice.variant}".encode()
        if self._lib.espeak_SetVoiceByName(name) != 0:
            raise DataError(f"eSpeak NG has no voice {name.decode()!r}")
        for param, value in ((_PARAM_RATE, voice.rate), (_PARAM_PITCH, voice.pitch),
                             (_PARAM_RANGE, voice.pitch_range), (_PARAM_VOLUME, 100)):
            self._lib.espeak_SetParameter(param, value, 0)
        self._lib.espeak_ng_SetRandSeed(seed)

    def synthesize(self, text: str, voice: Voice, seed: int) -> Synthesis:
        """Speak ``text`` with ``voice``; ``seed`` seeds the engine's noise (breathy variants)."""
        global _USED
        with self._lock:  # the callback fills per-call buffers: one synthesis at a time
            _USED = True
            self._configure(voice, seed)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            err = self._lib.espeak_Synth(
                data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if err != 0:
                raise DataError(f"eSpeak NG failed (error {err}) on text {text!r}")
            chunks, events = self._chunks, tuple(self._events)
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return Synthesis(samples.astype(np.int16), events)


    def _text_to_phonemes(self, text: str, mode: int) -> List[str]:
        """espeak_TextToPhonemes over every clause of ``text``, one string per clause."""
        global _USED
        with self._lock:
            _USED = True  # the translator's state changes, as in a synthesis
            if self._lib.espeak_SetVoiceByName(G2P_VOICE.encode()) != 0:
                raise DataError(f"eSpeak NG has no voice {G2P_VOICE!r}")
            buffer = ctypes.c_char_p(text.encode("utf-8") + b"\0")
            clauses: List[str] = []
            while buffer.value:  # one clause per call; the pointer moves past it
                clause = self._lib.espeak_TextToPhonemes(ctypes.byref(buffer), _CHARS_UTF8, mode)
                clauses.append((clause or b"").decode("ascii", errors="replace"))
        return clauses

    def phonemes(self, text: str) -> List[str]:
        """eSpeak's own en-us phoneme names for ``text`` (stress marks kept), without speaking it.

        This is the pronunciation the synthesizer would speak: the same rules and dictionary.
        """
        return [name for clause in self._text_to_phonemes(text, _PHONEMES_SPACED) for name in clause.split()]

    def word_phonemes(self, text: str) -> List[List[str]]:
        """The phoneme names of ``text`` as eSpeak reads it whole, in its words: connected-speech
        forms ('the' before a vowel, weak forms, linking). eSpeak joins some unstressed words to
        a neighbour, so there can be fewer words than in ``text``."""
        return [word.split("|") for clause in self._text_to_phonemes(text, _PHONEMES_BY_WORD)
                for word in clause.split()]


_ENGINE: Optional[Espeak] = None
_ENGINE_LOCK = threading.Lock()
_USED = False


def has_been_used() -> bool:
    """True once this process (or the parent it was forked from) has synthesized or read any
    text with eSpeak NG."""
    return _USED


def pristine_context(preload: Sequence[str] = ()) -> BaseContext:
    """A multiprocessing context whose processes start with an engine that has never run,
    whatever this process did: they fork from a fork server, a fresh interpreter that imports
    ``preload`` (so each process does not import them again) and never uses eSpeak NG.
    (``fork`` would copy this process's engine; ``spawn`` would pay the imports per process.)"""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *preload])
    return context


def engine() -> Espeak:
    """Return the process-wide eSpeak NG instance, initialising the library on first use."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Espeak()
        return _ENGINE
