"""Event-driven, frame-by-frame inference of a trained spiking stack (batch 1, edge use).

A spiking layer's input to the next layer and to its own v2 recurrence (Eq. 19-20) is the
quantised output Ŷ, mostly zeros in a trained model (84 % for v2 on TIMIT, Table 1). The cost
model of Eq. 10 counts only the multiplications by non-zero inputs; :class:`StreamingSNN` does
exactly that: per frame it adds, for each non-zero input, that input's row of the weight matrix
(the projection W, and v2's W_r), then runs one step of the layer's dynamics (Eq. 7-8, 16-22).

In eval mode batch norm is the affine map ``(z − μ)·s + shift`` with s = weight/√(var + ε), so it
is folded into the projection once: ``W' = W·s``, ``bias' = (bias − μ)·s + shift``. The result
equals the layer's dense eval-mode forward (up to float rounding), frame by frame.

The kernel that :func:`.backend.streaming_kernel` picks (and logs) runs each frame: on CUDA
tensors one Triton launch per layer (:mod:`.triton_streaming`, the weight rows of zero inputs
masked off the loads, nothing synchronises with the host); on the CPU one call of the native C
kernel ``stream_frame`` (:mod:`.native`) for all layers, on one thread or, on request, with its
neurons shared between threads, with the same result on any number; otherwise, or
with ``PYTORCH_KALDI_SNN_KERNEL=torch``, the same computation as PyTorch operators
(``index_select`` of the active rows).

A layer's dynamics come from its registered neuron (``layer.neuron``,
:mod:`pytorch_kaldi_snn.neurons.variants`); each of the three streaming back ends declares the
neurons it implements (:data:`TORCH_NEURONS`, ``native.NEURONS``, ``triton_streaming.NEURONS``)
and refuses any other by name.

Example::

    >>> from pytorch_kaldi_snn.layers import spiking_stack
    >>> stack = spiking_stack("v2", 40, [550, 550], n_bits=[6, 6], thresholds=[3, 3],
    ...                       surrogates=["ste"] * 2, alphas=[1.0] * 2, dropouts=[0.0] * 2,
    ...                       batchnorms=[True] * 2)
    >>> stream = StreamingSNN(stack)
    >>> stream.step(torch.randn(40)).shape
    torch.Size([550])
"""
from __future__ import annotations

import ctypes
from typing import Iterable, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from pytorch_kaldi_snn.kernels import backend, fused, kernel_args, native
from pytorch_kaldi_snn.neurons.dynamics import (
    RESET_SCALE, SpikingState, gated_current, lif_current, membrane,
)
from pytorch_kaldi_snn.neurons.quantizer import delivered, kernel_scalars
from pytorch_kaldi_snn.neurons.variants import Neuron, require

TORCH_NEURONS = kernel_args.NEURONS  # what _step_torch implements


class _FrozenLayer:
    """One layer's eval-mode constants (BN folded), its batch-1 state and the kernel it runs.

    ``use(kernel, args)`` picks ``triton``, ``native`` or ``torch``
    (:func:`.backend.streaming_kernel`); ``args`` is the layer's C struct (native only) in the
    stack's array, which ``stream_frame`` reads. ``outputs()`` counts the non-zero outputs since
    the last reset: ``active``, a Python int (torch), an int64 tensor on the device that the
    Triton kernel adds to, so no frame waits for the host, or the C struct's counter (native).
    """

    def __init__(self, layer: nn.Module) -> None:
        # A spiking layer (layers.spiking.SpikingLayer) names its registered neuron.
        self.neuron: Neuron = getattr(layer, "neuron", None)
        if not isinstance(self.neuron, Neuron) or layer.reading != "paper":
            raise ValueError("streaming runs spiking layers of the paper reading only "
                             f"(got {type(layer).__name__})")
        if layer.projection.layernorm is not None:
            raise ValueError("layer norm depends on the frame and cannot be folded for streaming")
        self.weight, self.bias = fold_projection(layer.projection)
        self.n = layer.hidden_size
        self.alpha = layer.alpha.detach().contiguous()
        params = [getattr(layer, name).detach().contiguous() for name in self.neuron.params]
        self.w_rec, self.beta = kernel_args.recurrent_and_decay("streaming", self.neuron, params)
        self.b = layer.tracker.b.detach().clone()
        self.n_bits, self.k = layer.n_bits, layer.k
        self.delta, self.gamma, self.qmax = kernel_scalars(self.b, self.n_bits, self.k)
        self.c = RESET_SCALE

    def use(self, kernel: str, args: Optional[ctypes.Structure] = None) -> None:
        """Run frames with ``kernel`` from a zero state (``args``: the native kernel's struct)."""
        self.kernel, self.args = kernel, args
        self.lib = native.load(self.weight.dtype) if kernel == "native" else None
        if kernel == "native":
            require("the native C streaming kernel", native.NEURONS, (), self.neuron)
        elif kernel == "torch":
            require("the PyTorch-operator streaming", TORCH_NEURONS, (), self.neuron)
        else:
            from pytorch_kaldi_snn.kernels import triton_streaming  # imports triton

            require("the Triton streaming kernel", triton_streaming.NEURONS, (), self.neuron)

            self.scal = triton_streaming.scalars(self.c, self.delta, self.gamma, self.qmax,
                                                 self.weight)
        self.reset()

    def reset(self) -> None:
        """Zero state, as the layers start every utterance."""
        self.i, self.v, self.y = (self.bias.new_zeros(self.n) for _ in range(3))
        # Triton writes Ŷ[n] here (double buffer); the C kernel copies Ŷ[n-1] here
        self.y_next = self.bias.new_zeros(self.n)
        # the C kernel aligns the candidate sums on a 64-byte line after the first n
        self.acc = self.bias.new_empty(self.bias.numel() + 64 // self.bias.element_size())
        self.active: Union[int, Tensor] = 0
        if self.kernel == "triton":
            self.active = torch.zeros((), dtype=torch.int64, device=self.bias.device)
        if self.kernel == "native":
            self._fill_args()

    def _fill_args(self) -> None:
        """The layer's constants, state and scratch in its C struct (new tensors each reset)."""
        args, ptr = self.args, native.ptr
        args.neuron, args.m, args.n = self.neuron.code, self.weight.shape[0], self.n
        args.W, args.bias, args.w_rec, args.alpha, args.beta = map(
            ptr, (self.weight, self.bias, self.w_rec, self.alpha, self.beta))
        args.i, args.v, args.y, args.y_prev, args.acc = map(
            ptr, (self.i, self.v, self.y, self.y_next, self.acc))
        args.c, args.delta, args.gamma, args.qmax = self.c, self.delta, self.gamma, self.qmax
        args.active = 0

    def outputs(self) -> int:
        """The non-zero outputs since the last reset."""
        return self.args.active if self.kernel == "native" else int(self.active)

    def step(self, x: Tensor) -> None:
        """One frame with this layer's kernel (the C one on one thread): I, V, Ŷ (``self.y``)
        and the count of non-zero outputs updated."""
        if self.kernel == "triton":
            self._step_triton(x)
        elif self.kernel == "native":
            native_frame(self.lib, self.args, 1, x, self.neuron.name)
        else:
            self.active += self._step_torch(x)

    def _step_triton(self, x: Tensor) -> None:
        from pytorch_kaldi_snn.kernels import triton_streaming

        triton_streaming.launch(x, self.weight, self.bias, self.w_rec, self.alpha, self.beta,
                                self.scal, self.i, self.v, self.y, self.y_next, self.active)
        self.y, self.y_next = self.y_next, self.y

    def _step_torch(self, x: Tensor) -> int:
        """The same frame as PyTorch operators."""
        acc = _active_rows(x, self.weight) + self.bias
        if self.w_rec is not None:
            acc += _active_rows(self.y, self.w_rec)
        if self.beta is not None:
            self.i = lif_current(acc, self.i, self.beta)
        else:
            self.i = gated_current(acc, self.i, None)
        self.v = membrane(self.i, SpikingState(self.i, self.v, self.y), self.alpha)
        self.y = delivered(self.v, self.b, self.n_bits, self.k)
        return int(torch.count_nonzero(self.y))


def native_frame(lib: ctypes.CDLL, args: ctypes.Structure, count: int, x: Tensor,
                 what: str, threads: Optional[int] = None,
                 timing: Optional[native.StreamTiming] = None) -> None:
    """One frame of ``count`` layers from ``args`` on in the C ``stream_frame``, on up to
    ``threads`` threads (None: torch's intra-op threads; ``timing``, the stream's, is needed
    for more than one); ``what`` names the neuron in a refusal."""
    threads = 1 if timing is None else threads or torch.get_num_threads()
    status = lib.stream_frame(count, ctypes.addressof(args), native.ptr(x), threads,
                              None if timing is None else ctypes.addressof(timing))
    native.check_status(status, what)


def _active_rows(x: Tensor, weight: Tensor) -> Tensor:
    """x @ weight using only the rows of ``weight`` whose input is non-zero."""
    active = x.nonzero().squeeze(1)
    return x.index_select(0, active) @ weight.index_select(0, active)


def fold_projection(projection: nn.Module) -> Tuple[Tensor, Tensor]:
    """(W', bias') with eval-mode batch norm folded in: BN(x W + bias) = x W' + bias'."""
    weight = projection.weight.detach()
    bias = weight.new_zeros(weight.shape[1])
    if projection.bias is not None:
        bias = projection.bias.detach()
    norm = projection.batchnorm
    if norm is not None:
        scale = torch.rsqrt(norm.running_var + norm.eps)
        shift = -norm.running_mean * scale
        if norm.affine:
            gain = norm.weight.detach()
            scale, shift = scale * gain, shift * gain + norm.bias.detach()
        weight, bias = weight * scale, bias * scale + shift
    return weight.contiguous(), bias.contiguous()


class StreamingSNN:
    """A trained spiking stack run one frame at a time, keeping its state between calls.

    Args:
        layers: the stack's spiking layers in order (an ``nn.Sequential`` from
            :func:`~pytorch_kaldi_snn.layers.spiking.spiking_stack` works). Their current
            parameters, batch-norm statistics and membrane maxima b are copied (eval mode).
        readout: optional ``nn.Linear`` on the last layer's output, also event-driven.
        threads: at most this many threads for the native C kernel's frame (``None``:
            ``torch.get_num_threads()`` at each frame). One by default: on the shared 2-core
            machine a second thread paid only while the other core was free
            (docs/performance.md, "Streaming on several threads"). With more, the kernel shares
            a frame between threads only while that has been faster than one thread; the
            results are the same, bit for bit, on any number. Also the attribute ``threads``.

    ``step(frame)`` takes one (m,) feature frame and returns the last layer's Ŷ (n,) or the
    readout's (out,) scores; ``reset()`` starts a new utterance. ``active_outputs`` counts, per
    layer, the non-zero outputs since the last reset: the rows of the next layer's W (and of
    the layer's own W_r) that were used; reading it synchronises a CUDA stream, stepping does
    not. ``kernel`` names the kernel that runs every layer's frame (logged when chosen).
    """

    def __init__(self, layers: Iterable[nn.Module], readout: Optional[nn.Linear] = None,
                 threads: Optional[int] = 1) -> None:
        self.threads = threads
        self.layers: List[_FrozenLayer] = [_FrozenLayer(layer) for layer in layers]
        if not self.layers:
            raise ValueError("StreamingSNN needs at least one spiking layer")
        self.kernel = backend.streaming_kernel(self.layers[0].weight, fused.triton_check)
        # native: every layer's struct in one array, so that one C call runs a whole frame
        self.args = (native.stream_layers(self.layers[0].weight.dtype, len(self.layers))
                     if self.kernel == "native" else None)
        self.timing = native.StreamTiming()  # whether its frames go faster on several threads
        for index, layer in enumerate(self.layers):
            layer.use(self.kernel, None if self.args is None else self.args[index])
        self.readout_t = None if readout is None else readout.weight.detach().t().contiguous()
        self.readout_b = None if readout is None or readout.bias is None else readout.bias.detach()
        self.frames = 0

    @property
    def active_outputs(self) -> List[int]:
        """Per layer, the non-zero outputs since the last reset."""
        return [layer.outputs() for layer in self.layers]

    def reset(self) -> None:
        """Forget the state: the next frame starts a new utterance."""
        for layer in self.layers:
            layer.reset()
        self.frames = 0

    def step(self, frame: Tensor) -> Tensor:
        """One (m,) frame in, the last layer's Ŷ (n,) or the readout's (out,) scores out."""
        # Every constant is detached, so with the frame detached no graph is built: cheaper per
        # frame than torch.no_grad() (about 2 us, 3 % of a trained v2 frame on the CPU).
        x = frame.detach().to(self.layers[0].weight).contiguous()  # its dtype and device
        if self.kernel == "native":
            first = self.layers[0]
            native_frame(first.lib, self.args, len(self.layers), x, first.neuron.name,
                         self.threads, self.timing)
            x = self.layers[-1].y
        else:
            for layer in self.layers:
                layer.step(x)
                x = layer.y
        self.frames += 1
        if self.readout_t is None:
            return x.clone()
        scores = _active_rows(x, self.readout_t)
        return scores if self.readout_b is None else scores + self.readout_b

    def run(self, frames: Tensor) -> Tensor:
        """Stream a (T, m) utterance from the current state: (T, n) or (T, out)."""
        return torch.stack([self.step(frame) for frame in frames])
