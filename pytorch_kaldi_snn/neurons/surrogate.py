"""Surrogate derivatives dŶ/dV of the multi-bit quantiser (Eq. 22), chosen by name per layer.

Between the threshold γ and the membrane maximum b the staircase of Eq. 22 follows the identity
Ŷ ≈ V, so every surrogate is 1 there. Outside, it depends on the distance from that range in
units of b::

    d = max(γ − V, V − b, 0) / b

=============== ===================== ===============================================
name            dŶ/dV                 note
=============== ===================== ===============================================
``ste``         1                     straight-through estimator (default, Fig. 1)
``ste_clip``    1 if V ≤ b, else 0    straight-through, no gradient above the top level
``pwl``         max(0, 1 − 2d)        piecewise linear: zero half a range away
``fast_sigmoid`` 1 / (1 + 10 d)²       derivative of a fast sigmoid centred on the range
=============== ===================== ===============================================

``ste_clip`` is the straight-through estimator of a quantiser that clamps V at b before
quantising (as the authors' code does): above b the output is constant, so no gradient passes.

:data:`SURROGATES` is the one table of surrogates: name, PyTorch function and the integer code
the C and Triton kernels branch on (the C source gets the codes as generated ``#define``s, the
Triton kernels as ``constexpr``s). A back end that lacks a surrogate refuses it by name
(:func:`~pytorch_kaldi_snn.neurons.variants.require`).

The functions are written with tensor operators and methods only: this module imports no torch,
so that the options (:mod:`.options`) and the cfg reader take :data:`SURROGATE_NAMES` from this
one table without loading PyTorch (``tests/project/test_import_graph.py``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, NamedTuple, Tuple

if TYPE_CHECKING:
    from torch import Tensor


def _distance(v: Tensor, gamma: Tensor, b: Tensor) -> Tensor:
    """d = max(γ − V, V − b, 0) / b: how far V lies outside [γ, b], in units of b."""
    return (gamma - v).maximum(v - b).maximum(v.new_zeros(())) / b


def _ste(v: Tensor, gamma: Tensor, b: Tensor) -> Tensor:
    return v.new_ones(v.shape)


def _ste_clip(v: Tensor, gamma: Tensor, b: Tensor) -> Tensor:
    return (v <= b).to(v.dtype)


def _pwl(v: Tensor, gamma: Tensor, b: Tensor) -> Tensor:
    return (1.0 - 2.0 * _distance(v, gamma, b)).clamp(min=0.0)


def _fast_sigmoid(v: Tensor, gamma: Tensor, b: Tensor) -> Tensor:
    return (1.0 + 10.0 * _distance(v, gamma, b)).pow(-2)


SurrogateFn = Callable[["Tensor", "Tensor", "Tensor"], "Tensor"]


class Surrogate(NamedTuple):
    """One surrogate: its name (cfg ``snn_surrogate``), dŶ/dV as PyTorch operators, and the
    integer code of the compiled kernels (C ``SURROGATE_<NAME>``, Triton ``KIND``)."""

    name: str
    fn: SurrogateFn
    code: int


SURROGATES: Dict[str, Surrogate] = {s.name: s for s in (
    Surrogate("ste", _ste, 0),
    Surrogate("ste_clip", _ste_clip, 3),
    Surrogate("pwl", _pwl, 1),
    Surrogate("fast_sigmoid", _fast_sigmoid, 2),
)}

SURROGATE_NAMES: Tuple[str, ...] = tuple(SURROGATES)


def check_surrogate(name: str) -> str:
    """Return ``name`` if it is a known surrogate; raise ``ValueError`` listing the valid ones."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; valid names: {', '.join(SURROGATE_NAMES)}")
    return name


def surrogate_code(name: str) -> int:
    """The kernels' integer code of surrogate ``name`` (raises by name when unknown)."""
    return SURROGATES[check_surrogate(name)].code


def surrogate_grad(name: str, v: Tensor, gamma: Tensor, b: Tensor) -> Tensor:
    """dŶ/dV of surrogate ``name`` at membrane potentials ``v`` (threshold γ, maximum b)."""
    return SURROGATES[check_surrogate(name)].fn(v, gamma, b)
