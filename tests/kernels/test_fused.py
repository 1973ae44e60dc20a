"""Fused spiking recurrences (kernels.fused) against the step-by-step reference (layers.recurrence).

Every comparison runs in float64: the quantiser's floor() turns a last-bit difference in V into a
whole output level, which float32 makes likely over thousands of neurons and float64 does not.
Both step back ends are checked: the native C kernels and the PyTorch-operator fallback.
"""
from __future__ import annotations

import itertools
from typing import Callable, Dict, List, Optional

import pytest
import torch
from torch import Tensor

from pytorch_kaldi_snn.kernels import fused
from pytorch_kaldi_snn.layers import recurrence, spiking
from pytorch_kaldi_snn.layers.recurrence import SpikingState

DT = torch.float64
T, B, N = 9, 4, 6
REFERENCE = {"lif": recurrence.lif_loop, "v1": recurrence.v1_loop, "v2": recurrence.v2_loop}
FUSED = {"lif": fused.lif_fused, "v1": fused.v1_fused, "v2": fused.v2_fused}


def _inputs(kind: str, seed: int, with_mask: bool, with_state: bool) -> Dict[str, object]:
    """Random inputs on the scale the layers produce (BN output ~ N(0, 1))."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, scale: float = 1.0) -> Tensor:
        return (scale * torch.randn(*shape, generator=gen, dtype=DT)).requires_grad_()

    width = N if kind == "lif" else 2 * N
    args: Dict[str, object] = {
        "inp": randn(T, B, width, scale=1.5),
        "alpha": (0.5 + 0.5 * torch.rand(N, generator=gen, dtype=DT)).requires_grad_(),
        "beta": (0.5 + 0.5 * torch.rand(N, generator=gen, dtype=DT)).requires_grad_(),
        "w_rec": randn(N, 2 * N, scale=0.5),
        "mask": None,
        "state": None,
    }
    if with_mask:
        args["mask"] = (torch.rand(B, N, generator=gen, dtype=DT) > 0.3).to(DT) / 0.7
    if with_state:
        args["state"] = SpikingState(randn(B, N), randn(B, N),
                                     torch.rand(B, N, generator=gen, dtype=DT).requires_grad_())
    return args


def _call(fn: Callable, kind: str, args: Dict[str, object], n_bits: int, k: int, surrogate: str):
    lead = {"lif": (args["inp"], args["alpha"], args["beta"]), "v1": (args["inp"], args["alpha"]),
            "v2": (args["inp"], args["w_rec"], args["alpha"])}[kind]
    b = torch.tensor(2.0, dtype=DT)
    return fn(*lead, b, n_bits, k, surrogate, args["mask"], args["state"])


def _leaves(kind: str, args: Dict[str, object]) -> List[Tensor]:
    names = {"lif": ["inp", "alpha", "beta"], "v1": ["inp", "alpha"],
             "v2": ["inp", "w_rec", "alpha"]}
    leaves = [args[name] for name in names[kind] if args[name].requires_grad]
    return leaves + (list(args["state"]) if args["state"] is not None else [])


def _run(fn: Callable, kind: str, args: Dict[str, object], *quant) -> List[Tensor]:
    """Outputs, v_max, final state and the gradients of a loss touching all of them."""
    y, v_max, state = _call(fn, kind, args, *quant)
    weights = torch.linspace(-1.0, 2.0, y.numel(), dtype=DT).view_as(y)
    loss = (weights * y).sum() + (0.3 * state.i + 0.7 * state.v - 1.1 * state.y).sum()
    grads = torch.autograd.grad(loss, _leaves(kind, args))
    return [y, v_max, *state, *grads]


def _assert_same(ref: List[Tensor], got: List[Tensor]) -> None:
    for index, (a, b) in enumerate(zip(ref, got)):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-10, msg=f"result {index} differs")


CASES = [  # (kind, n_bits, k, surrogate): each kind meets every N/k and surrogate
    (kind, n_bits, k, surrogate)
    for kind, (n_bits, k), surrogate in itertools.product(
        ["lif", "v1", "v2"], [(1, 0), (2, 1), (6, 4)],
        ["ste", "pwl", "fast_sigmoid", "ste_clip"])
]


@pytest.mark.parametrize("kind,n_bits,k,surrogate", CASES)
@pytest.mark.parametrize("with_mask", [False, True], ids=["nodrop", "dropout"])
def test_fused_equals_reference(backend, kind, n_bits, k, surrogate, with_mask):
    args = _inputs(kind, seed=n_bits * 10 + k, with_mask=with_mask, with_state=False)
    quant = (n_bits, k, surrogate)
    ref = _run(REFERENCE[kind], kind, args, *quant)
    got = _run(FUSED[kind], kind, args, *quant)
    y = ref[0]
    assert 0 < (y != 0).double().mean() < 1, "inputs should give a mix of zero and non-zero outputs"
    _assert_same(ref, got)


@pytest.mark.parametrize("kind", ["lif", "v1", "v2"])
def test_fused_initial_state_and_its_gradient(backend, kind):
    args = _inputs(kind, seed=7, with_mask=True, with_state=True)
    quant = (3, 2, "pwl")
    _assert_same(_run(REFERENCE[kind], kind, args, *quant), _run(FUSED[kind], kind, args, *quant))


def test_fused_lif_with_fixed_beta_saves_less_and_agrees(backend):
    """With β fixed the synaptic currents are not kept for BPTT; results are unchanged."""
    args = _inputs("lif", seed=5, with_mask=True, with_state=False)
    args["beta"] = args["beta"].detach()
    quant = (4, 2, "pwl")
    ref = _run(REFERENCE["lif"], "lif", args, *quant)
    _assert_same(ref, _run(FUSED["lif"], "lif", args, *quant))
    saved: List[Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        _call(FUSED["lif"], "lif", args, *quant)
    assert sum(t.numel() >= T * B * N for t in saved) == 1  # V only


def test_fused_chained_calls_equal_one_call(backend):
    """Carrying the returned state into a second call equals one call over both halves."""
    args = _inputs("v2", seed=3, with_mask=False, with_state=False)
    inp, w_rec, alpha, b = args["inp"], args["w_rec"], args["alpha"], torch.tensor(2.0, dtype=DT)
    whole, _, _ = fused.v2_fused(inp, w_rec, alpha, b, 4, 3, "ste", None)
    first, _, state = fused.v2_fused(inp[:4], w_rec, alpha, b, 4, 3, "ste", None)
    second, _, _ = fused.v2_fused(inp[4:], w_rec, alpha, b, 4, 3, "ste", None, state)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=0, atol=0)
    grad_whole = torch.autograd.grad(whole.sum(), w_rec)[0]
    grad_split = torch.autograd.grad(torch.cat([first, second]).sum(), w_rec)[0]
    torch.testing.assert_close(grad_split, grad_whole, rtol=1e-9, atol=1e-10)


def test_fused_rejects_bad_arguments():
    gates, alpha, b = torch.zeros(3, 2, 8), torch.ones(4), torch.tensor(1.0)
    with pytest.raises(ValueError, match="surrogate"):
        fused.v1_fused(gates, alpha, b, 2, 1, "tanh", None)
    with pytest.raises(ValueError, match="threshold k"):
        fused.v1_fused(gates, alpha, b, 2, 4, "ste", None)
    with pytest.raises(ValueError, match="input"):
        fused.lif_fused(gates, alpha, alpha, b, 2, 1, "ste", None)


def test_fused_float32_matches_reference_up_to_rare_level_flips(backend):
    """float32 runs through the same kernels; a V within an ulp of a level may round either way."""
    torch.manual_seed(0)
    gates, w_rec = torch.randn(20, 8, 64), 0.1 * torch.randn(32, 64)
    alpha, b = torch.full((32,), 0.9), torch.tensor(2.0)
    ref, _, _ = recurrence.v2_loop(gates, w_rec, alpha, b, 6, 3, "ste", None)
    got, _, _ = fused.v2_fused(gates, w_rec, alpha, b, 6, 3, "ste", None)
    assert got.dtype == torch.float32
    assert ((got - ref).abs() > 1e-4).double().mean() < 0.01


def _layer_pair(variant: str, **kwargs) -> List[torch.nn.Module]:
    """Two float64 layers with identical parameters and buffers: impl=loop and impl=fused."""
    cls = spiking.SPIKING_LAYERS[variant]
    torch.manual_seed(11)
    loop = cls(5, N, impl="loop", **kwargs).double()
    fast = cls(5, N, impl="fused", **kwargs).double()
    fast.load_state_dict(loop.state_dict())
    return [loop, fast]


@pytest.mark.parametrize("variant", ["traditional", "v1", "v2"])
@pytest.mark.parametrize("use_batchnorm,dropout",
                         [(True, 0.0), (False, 0.0), (True, 0.3), (False, 0.3)])
def test_layer_fused_equals_loop(backend, variant, use_batchnorm, dropout):
    """Layer level: outputs, b's EMA and the gradients of every parameter (BN, projection too)."""
    kwargs = dict(use_batchnorm=use_batchnorm, dropout=dropout, n_bits=4, threshold=2,
                  surrogate="pwl", learn_decay=True, b_init=2.0)
    if variant == "traditional":
        kwargs["beta"] = 0.8
    layers = _layer_pair(variant, **kwargs)
    x = torch.randn(T, B, 5, dtype=DT, generator=torch.Generator().manual_seed(5))
    results = []
    for layer in layers:
        layer.train()
        torch.manual_seed(123)  # same dropout mask
        y = layer(x)
        (torch.linspace(-1.0, 1.0, y.numel(), dtype=DT).view_as(y) * y).sum().backward()
        grads = {name: p.grad for name, p in layer.named_parameters()}
        results.append((y, layer.tracker.b.clone(), grads))
    (y_ref, b_ref, g_ref), (y_got, b_got, g_got) = results
    assert (y_ref != 0).any()
    torch.testing.assert_close(y_got, y_ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(b_got, b_ref, rtol=1e-12, atol=0)
    assert g_ref.keys() == g_got.keys() and len(g_ref) >= 2
    for name in g_ref:
        torch.testing.assert_close(g_got[name], g_ref[name], rtol=1e-9, atol=1e-10, msg=name)


def test_saved_state_for_backward_is_bounded():
    """BPTT keeps I, V, Ŷ (+F, C for v1/v2): (T+1)·B·n values each, saved through autograd."""
    saved: List[Optional[Tensor]] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(t)
        return t

    gates = torch.randn(T, B, 2 * N, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fused.v2_fused(gates, torch.randn(N, 2 * N), torch.ones(N), torch.tensor(1.0), 4, 2,
                       "ste", None)
    big = [t for t in saved if t.numel() >= T * B * N]
    assert len(big) == 5 and all(t.numel() <= (T + 1) * B * N for t in big)
