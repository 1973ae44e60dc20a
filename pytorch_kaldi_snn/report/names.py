"""How reports name a counted layer: as the cfg does, not by its module path."""
from __future__ import annotations

import re


def layer_label(name: str) -> str:
    """A counted layer's module path ``nets.<arch_name>.net.<i>`` as the cfg names it:
    ``<arch_name> layer <i + 1>`` (``arch_name`` of its ``[architectureN]``); other paths as
    they are."""
    match = re.fullmatch(r"nets\.(\w+)\.net\.(\d+)", name)
    return f"{match.group(1)} layer {int(match.group(2)) + 1}" if match else name
