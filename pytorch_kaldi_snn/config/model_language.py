"""The ``[model]`` section's language, parsed once into typed operations.

One operation per line, ``out=operation(a,b)``: ``compute(arch_name,input)``,
``cost_nll(out,lab)``, ``cost_err(out,lab)``, ``sum(a,b)``, ``mult_constant(a,k)``,
``concatenate(a,b)``; ``loss_final`` and ``err_final`` must be defined. An unknown operation, a
wrong argument count and a name used before it is defined are refused here, naming the line;
``train/acoustic_model.py`` runs each operation from its own table, keyed by these names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Set, Tuple

from pytorch_kaldi_snn.config.options import Section, get_str
from pytorch_kaldi_snn.errors import ConfigError

# What each argument of an operation names: (its word in messages, where the name must be
# defined). ARCH: an [architectureN]; FEATURE_OR_VALUE: a feature stream or an earlier output;
# VALUE: an earlier output; LABEL: a label set; NUMBER: a constant. train/acoustic_model.py runs
# each operation from its own table, with the same names.
ARCH, FEATURE_OR_VALUE, VALUE, LABEL, NUMBER = "arch", "feature_or_value", "value", "label", "number"
OPERATIONS: Dict[str, Tuple[Tuple[str, str], Tuple[str, str]]] = {
    "compute": (("architecture", ARCH), ("input", FEATURE_OR_VALUE)),
    "cost_nll": (("output", VALUE), ("label set", LABEL)),
    "cost_err": (("output", VALUE), ("label set", LABEL)),
    "sum": (("value", VALUE), ("value", VALUE)),
    "mult_constant": (("value", VALUE), ("constant", NUMBER)),
    "concatenate": (("value", FEATURE_OR_VALUE), ("value", FEATURE_OR_VALUE)),
}
_OPERATION_RE = re.compile(r"^(\w+)\s*=\s*(\w+)\s*\(([^()]*)\)$")


@dataclass(frozen=True)
class Operation:
    out: str
    op: str
    args: Tuple[str, str]


@dataclass(frozen=True)
class ModelSpec:
    """The ``[model]`` section: operations in order, each reading names defined before it."""

    operations: Tuple[Operation, ...]

    def producer(self, name: str) -> Optional[Operation]:
        return next((o for o in self.operations if o.out == name), None)

    def arguments(self, *kinds: str) -> List[str]:
        """Every argument of the operations that names one of ``kinds`` (ARCH, LABEL...)."""
        return [arg for o in self.operations for arg, (_, kind) in zip(o.args, OPERATIONS[o.op])
                if kind in kinds]


def parse_model(sec: Section) -> ModelSpec:
    operations = []
    for line in get_str(sec, "model").splitlines():
        if not line.strip():
            continue
        match = _OPERATION_RE.match(line.strip())
        if not match:
            raise ConfigError(f"{line.strip()!r} is not of the form out=operation(a,b)",
                              section=sec.name, key="model")
        out, op, args = match.groups()
        if op not in OPERATIONS:
            raise ConfigError(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})",
                              section=sec.name, key="model")
        parts = tuple(a.strip() for a in args.split(","))
        if len(parts) != len(OPERATIONS[op]):
            raise ConfigError(f"{op} takes {len(OPERATIONS[op])} arguments: {line.strip()!r}",
                              section=sec.name, key="model")
        operations.append(Operation(out, op, parts))  # type: ignore[arg-type]
    return ModelSpec(tuple(operations))


def check_model(model: ModelSpec, architectures: Iterable[str], features: Set[str],
                labels: Set[str], model_sec: Section) -> Set[str]:
    """Every name the model language reads must be defined before it is used; returns the
    names it defines."""
    defined: Set[str] = set()

    def need(name: str, kinds: set, what: str) -> None:
        if name not in kinds:
            raise ConfigError(f"{what} {name!r} is not defined", section=model_sec.name,
                              key="model")

    namespaces = {ARCH: set(architectures), LABEL: labels, VALUE: defined}
    for op in model.operations:
        for arg, (what, kind) in zip(op.args, OPERATIONS[op.op]):
            if kind == NUMBER:
                _check_number(arg, what, op.op, model_sec)
            else:
                need(arg, features | defined if kind == FEATURE_OR_VALUE else namespaces[kind],
                     what)
        defined.add(op.out)
    for final in ("loss_final", "err_final"):
        need(final, defined, "output")
    return defined


def _check_number(text: str, what: str, op: str, model_sec: Section) -> None:
    try:
        float(text)
    except ValueError:
        raise ConfigError(f"{op} {what} {text!r} is not a number", section=model_sec.name,
                          key="model") from None
