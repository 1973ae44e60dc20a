"""Non-spiking baselines of the paper: unidirectional LSTM and GRU stacks, and the MLP readout.

Same options as the spiking stacks: batch norm (or layer norm) of the weighted sums of inputs,
recurrent dropout with one mask per sequence on the candidate, Glorot input weights and
orthogonal recurrent weights. Shapes are time-major: (T, B, m) → (T, B, n).

Parameters without biases/norms: LSTM 4(m·n + n²), GRU 3(m·n + n²) (paper, Section 2).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_kaldi_snn.config.registry import ACTIVATIONS, RECURRENT_ACTIVATIONS
from pytorch_kaldi_snn.layers.common import (
    InputNorm,
    InputProjection,
    recurrent_dropout_mask,
    recurrent_weight,
)
from pytorch_kaldi_snn.layers.cost import CountedLayer

# one function per name of config/registry.py's ACTIVATIONS (the cfg reader checks names there)
_FUNCTIONS: Dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "elu": F.elu,
    "linear": lambda x: x,
    "softmax": lambda x: F.log_softmax(x, dim=-1),  # log-softmax, as PyTorch-Kaldi's "softmax"
}


def _activation(name: str, valid: Sequence[str]) -> Callable[[Tensor], Tensor]:
    if name not in valid:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(valid)}")
    return _FUNCTIONS[name]


class _GatedRecurrentLayer(CountedLayer):
    """Shared constructor of the LSTM and GRU layers (``n_gates`` input/recurrent blocks)."""

    n_gates: int = 1
    state_names: Tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, *, act: str = "tanh",
                 use_batchnorm: bool = True, use_layernorm: bool = False, dropout: float = 0.0,
                 bias: bool = True, orthinit: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout {dropout} is outside [0, 1)")
        self.hidden_size = hidden_size
        self.act_name = act
        self.act = _activation(act, RECURRENT_ACTIVATIONS)
        self.dropout = dropout
        self.projection = InputProjection(input_size, hidden_size, self.n_gates,
                                          use_batchnorm=use_batchnorm,
                                          use_layernorm=use_layernorm, bias=bias)
        self.w_rec = recurrent_weight(hidden_size, self.n_gates, orthinit)

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, m) → h (T, B, n), starting from zero state."""
        gates = self.projection(x)
        mask = recurrent_dropout_mask(x, self.hidden_size, self.dropout, self.training)
        h = self.recur(gates, mask)
        self.count(x, h)
        return h

    def recur(self, gates: Tensor, mask: Optional[Tensor]) -> Tensor:
        """h (T, B, n) of the projected inputs, from a zero state."""
        state = tuple(gates.new_zeros(gates.shape[1], self.hidden_size) for _ in self.state_names)
        weights = self.recurrent_views()
        outputs = []
        for g_t in gates:
            state = self.step(g_t, state, mask, weights)
            outputs.append(state[0])
        return torch.stack(outputs)

    def recurrent_views(self) -> Tuple[Tensor, ...]:
        """The parts of ``w_rec`` a step multiplies by, made once per sequence: a view made in
        every step would add a full-size zero gradient per step to the backward pass."""
        return (self.w_rec,)

    def step(self, g_t: Tensor, state: Tuple[Tensor, ...], mask: Optional[Tensor],
             weights: Optional[Tuple[Tensor, ...]] = None) -> Tuple[Tensor, ...]:
        """One frame: the projected input (B, gates·n) and the state (h first) → the new state
        (also what the ONNX export runs per frame); ``weights``: :meth:`recurrent_views`."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, act={self.act_name}, dropout={self.dropout}"


class LSTMLayer(_GatedRecurrentLayer):
    """Unidirectional LSTM: gates [f | i | o | c] = BN(X W) + h U; c = f⊙c + i⊙(mask⊙act(c̃))."""

    kind = "lstm"
    n_gates = 4
    state_names = ("h", "c")

    def step(self, g_t: Tensor, state: Tuple[Tensor, ...], mask: Optional[Tensor],
             weights: Optional[Tuple[Tensor, ...]] = None) -> Tuple[Tensor, ...]:
        n = self.hidden_size
        h, c = state
        (w_rec,) = weights or self.recurrent_views()
        g = g_t + h @ w_rec
        f, i, o = torch.sigmoid(g[:, :3 * n]).split(n, dim=1)
        cand = self.act(g[:, 3 * n:])
        if mask is not None:
            cand = cand * mask
        c = f * c + i * cand
        return o * self.act(c), c


class GRULayer(_GatedRecurrentLayer):
    """Unidirectional GRU: z, r = σ(·); h̃ = act(X W_h + (r⊙h) U_h); h = z⊙h + (1−z)⊙(mask⊙h̃)."""

    kind = "gru"
    n_gates = 3
    state_names = ("h",)

    def recurrent_views(self) -> Tuple[Tensor, ...]:
        n = self.hidden_size
        return self.w_rec[:, :2 * n], self.w_rec[:, 2 * n:]

    def step(self, g_t: Tensor, state: Tuple[Tensor, ...], mask: Optional[Tensor],
             weights: Optional[Tuple[Tensor, ...]] = None) -> Tuple[Tensor, ...]:
        n = self.hidden_size
        (h,) = state
        w_gates, w_cand = weights or self.recurrent_views()
        z, r = torch.sigmoid(g_t[:, :2 * n] + h @ w_gates).split(n, dim=1)
        cand = self.act(g_t[:, 2 * n:] + (r * h) @ w_cand)
        if mask is not None:
            cand = cand * mask
        return (z * h + (1.0 - z) * cand,)


RECURRENT_LAYERS = {"lstm": LSTMLayer, "gru": GRULayer}


def recurrent_stack(kind: str, input_size: int, sizes: Sequence[int], *, acts: Sequence[str],
                    dropouts: Sequence[float], batchnorms: Sequence[bool],
                    layernorms: Sequence[bool], use_batchnorm_inp: bool = False,
                    use_layernorm_inp: bool = False, bias: bool = True,
                    orthinit: bool = True) -> nn.Sequential:
    """L unidirectional ``lstm`` or ``gru`` layers, optionally after a norm of the input features."""
    cls = RECURRENT_LAYERS[kind]
    return nn.Sequential(*_stacked(
        input_size, sizes, use_batchnorm_inp, use_layernorm_inp,
        lambda i, m, n: cls(m, n, act=acts[i], use_batchnorm=batchnorms[i], use_layernorm=layernorms[i],
                            dropout=dropouts[i], bias=bias, orthinit=orthinit)))


def _stacked(input_size: int, sizes: Sequence[int], use_batchnorm_inp: bool, use_layernorm_inp: bool,
             make_layer: Callable[[int, int, int], nn.Module]) -> List[nn.Module]:
    """An optional norm of the input features, then ``make_layer(index, m, n)`` per size, each
    layer fed by the previous one's output."""
    layers: List[nn.Module] = []
    if use_batchnorm_inp or use_layernorm_inp:
        layers.append(InputNorm(input_size, use_batchnorm=use_batchnorm_inp,
                                use_layernorm=use_layernorm_inp))
    inputs = [input_size, *sizes[:-1]]
    layers += [make_layer(i, m, n) for i, (m, n) in enumerate(zip(inputs, sizes))]
    return layers


class MLPLayer(CountedLayer):
    """One readout layer: ``dropout(act(norm(x W + bias)))``; cost s·m·n_out multiplications.

    ``act="softmax"`` is a log-softmax (PyTorch-Kaldi's convention for the output layer).
    """

    kind = "mlp"
    recurrent = False

    def __init__(self, input_size: int, output_size: int, *, act: str = "softmax",
                 use_batchnorm: bool = False, use_layernorm: bool = False, dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__(input_size, output_size)
        self.act_name = act
        self.act = _activation(act, ACTIVATIONS)
        self.linear = nn.Linear(input_size, output_size,
                                bias=bias and not (use_batchnorm or use_layernorm))
        nn.init.xavier_uniform_(self.linear.weight)
        if self.linear.bias is not None:
            nn.init.zeros_(self.linear.bias)
        self.layernorm = nn.LayerNorm(output_size) if use_layernorm else None
        self.batchnorm = nn.BatchNorm1d(output_size, momentum=0.05) if use_batchnorm else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(N, m) → (N, n_out)."""
        out = self.linear(x)
        if self.layernorm is not None:
            out = self.layernorm(out)
        if self.batchnorm is not None:
            out = self.batchnorm(out)
        out = self.drop(self.act(out))
        self.count(x, out)
        return out

    def extra_repr(self) -> str:
        return f"act={self.act_name}"


class MLP(nn.Sequential):
    """Readout stack; flattens a time-major (T, B, m) input to (T·B, m) frames first."""

    def __init__(self, input_size: int, sizes: Sequence[int], *, acts: Sequence[str],
                 dropouts: Sequence[float], batchnorms: Sequence[bool],
                 layernorms: Sequence[bool], use_batchnorm_inp: bool = False,
                 use_layernorm_inp: bool = False, bias: bool = True) -> None:
        super().__init__(*_stacked(
            input_size, sizes, use_batchnorm_inp, use_layernorm_inp,
            lambda i, m, n: MLPLayer(m, n, act=acts[i], use_batchnorm=batchnorms[i],
                                     use_layernorm=layernorms[i], dropout=dropouts[i], bias=bias)))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(-1, x.shape[-1]))
