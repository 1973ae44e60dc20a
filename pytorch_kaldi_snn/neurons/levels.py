"""The integer output levels of the multi-bit quantiser (Eq. 22), without PyTorch.

N output bits give the levels 0 … 2^N − 1; N lies in [:data:`MIN_BITS`, :data:`MAX_BITS`]. The
options (:mod:`.options`, read by the cfg reader) and the quantiser (:mod:`.quantizer`) both take
these from here; this module imports nothing, so that reading a cfg does not load PyTorch.
"""
from __future__ import annotations

MIN_BITS = 1
MAX_BITS = 16


def top_level(n_bits: int) -> int:
    """The largest output level 2^N − 1."""
    return 2 ** n_bits - 1
