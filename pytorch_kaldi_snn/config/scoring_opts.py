"""``[decoding] scoring_opts``: the LM weights, word insertion penalties and MBR switch of
Kaldi-style scoring (:mod:`pytorch_kaldi_snn.scoring.lm_sweep` runs them)."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Dict, List, Tuple

from pytorch_kaldi_snn.errors import ConfigError


@dataclass(frozen=True)
class ScoringOptions:
    """``scoring_opts``; the LM weights are Kaldi TIMIT ``local/score.sh``'s. ``decode_mbr`` is
    off by default (score_basic.sh's 1-best, what this package reported before MBR existed),
    although TIMIT's score.sh decodes MBR: a cfg says ``--decode-mbr true`` to get it."""

    min_lmwt: int = 1
    max_lmwt: int = 10
    word_ins_penalties: Tuple[float, ...] = (0.0,)
    decode_mbr: bool = False

    def as_opts(self) -> str:
        """The ``scoring_opts`` value that parses back to these options."""
        wips = ",".join(f"{w:g}" for w in self.word_ins_penalties)
        return (f"--min-lmwt {self.min_lmwt} --max-lmwt {self.max_lmwt} --word-ins-penalty {wips}"
                f" --decode-mbr {str(self.decode_mbr).lower()}")

    def grid(self) -> List[Tuple[int, float]]:
        return [(lmwt, wip) for wip in self.word_ins_penalties
                for lmwt in range(self.min_lmwt, self.max_lmwt + 1)]


_FLAGS = {"min-lmwt": "min_lmwt", "max-lmwt": "max_lmwt", "word-ins-penalty": "word_ins_penalties",
          "decode-mbr": "decode_mbr"}
_BOOLS = {"true": True, "false": False}  # Kaldi's parse_options.sh booleans


def parse_scoring_opts(text: str, section: str = "decoding") -> ScoringOptions:
    """``"--min-lmwt 1 --max-lmwt 10 [--word-ins-penalty 0.0,0.5,1.0] [--decode-mbr true]"``
    (quotes optional)."""
    def fail(message: str) -> ConfigError:
        return ConfigError(f"scoring_opts = {text.strip()}: {message}", section=section,
                           key="scoring_opts")

    words = [part for word in shlex.split(text.strip().strip("\"'"))
             for part in word.split("=", 1)]  # --min-lmwt=4 as --min-lmwt 4
    values: Dict[str, object] = {}
    while words:
        flag = words.pop(0)
        name = _FLAGS.get(flag[2:].replace("_", "-")) if flag.startswith("--") else None
        if name is None:
            raise fail(f"unknown option {flag} (known: --{', --'.join(_FLAGS)})")
        value = words.pop(0) if words else ""
        if name == "decode_mbr":
            if value not in _BOOLS:
                raise fail(f"{flag} needs true or false, got {value!r}")
            values[name] = _BOOLS[value]
            continue
        try:
            values[name] = (tuple(float(v) for v in value.split(",")) if name == "word_ins_penalties"
                            else int(value))
        except ValueError:
            raise fail(f"{flag} needs a number, got {value!r}") from None
    opts = ScoringOptions(**values)  # type: ignore[arg-type]
    if not 1 <= opts.min_lmwt <= opts.max_lmwt:
        raise fail("need 1 <= --min-lmwt <= --max-lmwt")
    return opts
