r"""μL2Q as PyTorch operators: ``ul2q::moments``, ``ul2q::encode``, ``ul2q::decode``,
``ul2q::fake_quantize``.

Each is a ``torch.library.custom_op`` with a fake (meta) implementation, so ``torch.compile``
(``fullgraph=True``), ``torch.export`` and FakeTensor shape inference see one opaque node per
call; ``ul2q::fake_quantize`` has the straight-through gradient ∂L/∂w = ∂L/∂ŵ and a vmap rule.

.. math::
    β = μ,\quad α = λ_k^* σ,\quad
    q = \mathrm{clip}\big(\lfloor (w − β)/α \rfloor + 1,\ 1 − 2^{k−1},\ 2^{k−1}\big),\quad
    \hat w = α(q − ½) + β

**Where it runs and how exact it is** (``mode``):

``"auto"`` (default)
    On CPU the project's compiled kernel on the tensor's memory (:mod:`ul2q_ref.torch._cpu`):
    bit for bit :func:`ul2q_ref.fake_quantize`. On any other device torch operations that
    stay on the device (:mod:`ul2q_ref.torch._device`): the statistics within the stated
    bound of torch's reductions, the encode and decode steps bit-exact given (α, β).
``"exact"``
    Bit for bit the reference on every device: NumPy's summation order replayed in torch
    (:mod:`ul2q_ref.torch._exact`; a host round trip per call). On CPU the same as "auto".
``"device"``
    The device path, on any device (so the CPU can test it).

Input checks happen inside the ops: NaN or ±inf weights raise at run time (ValueError on
CPU; on other devices ``torch._assert_async``, a RuntimeError, without a host sync), α must
be finite and ≥ 0 and β finite; the static arguments (bits, axis, mode, dtype) are checked
when the call is made or traced.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .._validate import check_axis, check_bits
from ..codebook import code_range
from ..gaussian import optimal_lambda
from . import _cpu, _device, _exact

MODES = ("auto", "exact", "device")
"""Values of ``mode``: see the module docstring."""

_CODE_DTYPES = ((7, torch.int8), (15, torch.int16), (16, torch.int32))


class TorchQuantized(NamedTuple):
    """Codes and code book from :func:`quantize` (tensors on the input's device).

    ``codes`` has the input's shape and the reference's code dtype (int8 for k ≤ 7, int16 up
    to 15, int32 at 16); ``alpha`` and ``beta`` are float64 with one value per channel
    (shape ``(channels,)``, ``(1,)`` per tensor); ``lam`` is λ_k*.
    """

    codes: Tensor
    alpha: Tensor
    beta: Tensor
    lam: float


def code_dtype(bits: int) -> torch.dtype:
    """The integer dtype of k-bit codes, as :func:`ul2q_ref.codebook.code_dtype`."""
    return next(dtype for top, dtype in _CODE_DTYPES if bits <= top)


# --------------------------------------------------------------------------- argument checks


def check_weights(w: Any, name: str = "w") -> Tensor:
    """`w` if it is a non-empty floating-point tensor; TypeError/ValueError otherwise."""
    if not isinstance(w, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {w.dtype}; "
                        f"convert it first, e.g. {name}.float()")
    if w.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(w.shape)}); it needs at least one value")
    return w


def check_mode(mode: Any) -> str:
    """`mode` if it is one of :data:`MODES`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return mode


def _check(w: Any, bits: int, axis: Any, mode: str = "auto") -> tuple[Tensor, int, int | None]:
    w = check_weights(w)
    return w, check_bits(bits), check_axis(axis, w.dim())


def _channels(w: Tensor, axis: int | None) -> int:
    return 1 if axis is None else w.shape[axis]


def _rows(w: Tensor, axis: int | None) -> Tensor:
    """`w` as ``(channels, values)`` in float64."""
    w = w.detach().to(torch.float64)
    return w.reshape(1, -1) if axis is None else w.movedim(axis, 0).reshape(w.shape[axis], -1)


def _book_shape(ndim: int, axis: int | None) -> list[int]:
    shape = [1] * ndim
    if axis is not None:
        shape[axis] = -1
    return shape


def _use_kernel(w: Tensor, mode: str) -> bool:
    """Whether the CPU implementation runs the compiled kernel (else the device path)."""
    return mode != "device"


def _device_check_finite(w: Tensor, name: str) -> None:
    torch._assert_async(torch.isfinite(w).all(), f"{name} contains NaN or ±inf")


def _device_check_book(alpha: Tensor, beta: Tensor) -> None:
    torch._assert_async((torch.isfinite(alpha) & (alpha >= 0)).all(),
                        "alpha must be finite and >= 0")
    torch._assert_async(torch.isfinite(beta).all(), "beta must be finite")


def _cpu_check_book(alpha: Tensor, beta: Tensor) -> None:
    a, b = alpha.numpy(), beta.numpy()
    if not np.isfinite(a).all():
        raise ValueError("alpha must be finite (a scale), got NaN or ±inf")
    if (a < 0).any():
        raise ValueError("alpha must be >= 0 (a scale), got a negative value")
    if not np.isfinite(b).all():
        raise ValueError("beta must be finite, got NaN or ±inf")


# --------------------------------------------------------------------------- the steps on a device


def _device_moments(w: Tensor, axis: int | None, mode: str) -> tuple[Tensor, Tensor]:
    rows = _rows(w, axis)
    return (_exact if mode == "exact" else _device).row_moments(rows)


def _device_codes(w: Tensor, alpha: Tensor, beta: Tensor, bits: int, axis: int | None
                  ) -> Tensor:
    """Codes as float64 values: a true float64 division, floor, +1, clip; 1 where α = 0."""
    lowest, highest = code_range(bits)
    shape = _book_shape(w.dim(), axis)
    scale, offset = alpha.reshape(shape), beta.reshape(shape)
    steps = (w.detach().to(torch.float64) - offset) / scale
    codes = torch.clamp(torch.floor(steps) + 1.0, lowest, highest)
    # C-contiguous, as the operators' fake kernels promise, whatever w's layout
    return torch.where(scale == 0.0, torch.ones_like(codes), codes).contiguous()


def _device_decode(codes: Tensor, alpha: Tensor, beta: Tensor, axis: int | None,
                   dtype: torch.dtype) -> Tensor:
    shape = _book_shape(codes.dim(), axis)
    return (alpha.reshape(shape) * (codes.to(torch.float64) - 0.5)
            + beta.reshape(shape)).to(dtype).contiguous()


# --------------------------------------------------------------------------- ul2q::moments


def _moments_on_device(w: Tensor, axis: int | None, mode: str) -> tuple[Tensor, Tensor]:
    _device_check_finite(w, "w")
    return _device_moments(w, axis, mode)


_moments_op = torch.library.custom_op("ul2q::moments", _moments_on_device, mutates_args=())


@_moments_op.register_kernel("cpu")
def _moments_cpu(w: Tensor, axis: int | None, mode: str) -> tuple[Tensor, Tensor]:
    if not _use_kernel(w, mode):
        return _moments_on_device(w, axis, mode)  # the device path, forced
    mean, std = _cpu.moments(_cpu.as_array(w, check=False), axis)  # checks finiteness
    return torch.from_numpy(mean), torch.from_numpy(std)


@_moments_op.register_fake
def _(w: Tensor, axis: int | None, mode: str) -> tuple[Tensor, Tensor]:
    channels = _channels(w, axis)
    return (w.new_empty((channels,), dtype=torch.float64),
            w.new_empty((channels,), dtype=torch.float64))


# --------------------------------------------------------------------------- ul2q::encode


@torch.library.custom_op("ul2q::encode", mutates_args=())
def _encode_op(w: Tensor, alpha: Tensor, beta: Tensor, bits: int, axis: int | None) -> Tensor:
    _device_check_finite(w, "w")
    _device_check_book(alpha, beta)
    return _device_codes(w, alpha, beta, bits, axis).to(code_dtype(bits))


@_encode_op.register_kernel("cpu")
def _encode_cpu(w: Tensor, alpha: Tensor, beta: Tensor, bits: int, axis: int | None
                ) -> Tensor:
    array = _cpu.as_array(w)
    _cpu_check_book(alpha, beta)
    codes = _cpu.encode(array, alpha.numpy(), beta.numpy(), bits, axis)
    return torch.from_numpy(codes)


@_encode_op.register_fake
def _(w: Tensor, alpha: Tensor, beta: Tensor, bits: int, axis: int | None) -> Tensor:
    return torch.empty_like(w, dtype=code_dtype(bits), memory_format=torch.contiguous_format)


# --------------------------------------------------------------------------- ul2q::decode


@torch.library.custom_op("ul2q::decode", mutates_args=())
def _decode_op(codes: Tensor, alpha: Tensor, beta: Tensor, axis: int | None,
               dtype: torch.dtype) -> Tensor:
    _device_check_book(alpha, beta)
    return _device_decode(codes, alpha, beta, axis, dtype)


@_decode_op.register_kernel("cpu")
def _decode_cpu(codes: Tensor, alpha: Tensor, beta: Tensor, axis: int | None,
                dtype: torch.dtype) -> Tensor:
    _cpu_check_book(alpha, beta)
    if codes.dtype not in (torch.int8, torch.int16, torch.int32):  # e.g. int64: no kernel
        return _device_decode(codes, alpha, beta, axis, dtype)
    return _cpu.decode(codes.numpy(), alpha.numpy(), beta.numpy(), axis, dtype)


@_decode_op.register_fake
def _(codes: Tensor, alpha: Tensor, beta: Tensor, axis: int | None,
      dtype: torch.dtype) -> Tensor:
    return torch.empty_like(codes, dtype=dtype, memory_format=torch.contiguous_format)


# --------------------------------------------------------------------------- ul2q::fake_quantize


_CHECKED: set[tuple[int, int | None, str, int]] = set()
"""(bits, axis, mode, ndim) already found valid: the per-call fast path of the checks."""


def check_op_arguments(w: Tensor, bits: int, axis: int | None, mode: str) -> int | None:
    """The checks ``ul2q::fake_quantize`` makes on every path (kernel, device, fake):
    a non-empty floating-point `w`, bits 1..16, `axis` in range, `mode` in :data:`MODES`.

    Returns `axis` normalised to ``0..w.dim()-1``. The dispatcher has already turned the
    arguments into the schema's types (``bits=True`` arrives as 1: only the Python functions,
    which see the caller's object, can refuse a bool). A combination of (bits, axis, mode,
    w.dim()) is checked in full once, then looked up.
    """
    if not w.is_floating_point():
        raise TypeError(f"w must be a floating-point tensor, got {w.dtype}; "
                        f"convert it first, e.g. w.float()")
    if w.numel() == 0:
        raise ValueError(f"w is empty (shape {tuple(w.shape)}); it needs at least one value")
    ndim = w.dim()
    key = (bits, axis, mode, ndim)
    if type(bits) is int and (axis is None or type(axis) is int) and key in _CHECKED:
        return None if axis is None else axis % ndim
    check_bits(bits)
    check_mode(mode)
    normalised = check_axis(axis, ndim)
    if type(bits) is int and (axis is None or type(axis) is int) and len(_CHECKED) < 4096:
        _CHECKED.add(key)
    return normalised


def _fake_quantize_on_device(w: Tensor, bits: int, axis: int | None = None,
                             mode: str = "auto") -> Tensor:
    axis = check_op_arguments(w, bits, axis, mode)
    _device_check_finite(w, "w")
    mean, std = _device_moments(w, axis, mode)
    alpha = optimal_lambda(bits) * std
    codes = _device_codes(w, alpha, mean, bits, axis)
    return _device_decode(codes, alpha, mean, axis, w.dtype)


_fake_quantize_op = torch.library.custom_op("ul2q::fake_quantize", _fake_quantize_on_device,
                                            mutates_args=())


@_fake_quantize_op.register_kernel("cpu")
def _fake_quantize_cpu(w: Tensor, bits: int, axis: int | None = None, mode: str = "auto"
                       ) -> Tensor:
    if not _use_kernel(w, mode):
        return _fake_quantize_on_device(w, bits, axis, mode)  # the device path, forced
    axis = check_op_arguments(w, bits, axis, mode)
    return _cpu.fake_quantize(_cpu.as_array(w, check=False), bits, axis, w.dtype)


@_fake_quantize_op.register_fake
def _(w: Tensor, bits: int, axis: int | None = None, mode: str = "auto") -> Tensor:
    check_op_arguments(w, bits, axis, mode)
    return torch.empty_like(w, memory_format=torch.contiguous_format)


def _identity_gradient(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
    """∂L/∂w = ∂L/∂ŵ: the gradient passes through the quantiser unchanged (no clipping)."""
    return grad, None, None, None


_fake_quantize_op.register_autograd(_identity_gradient)


@_fake_quantize_op.register_vmap
def _(info: Any, in_dims: tuple[Any, ...], w: Tensor, bits: int, axis: int | None = None,
      mode: str = "auto") -> tuple[Tensor, int]:
    """A batch of tensors quantised one by one: the batch dimension becomes a channel axis."""
    batched = w.movedim(in_dims[0], 0)
    axis = check_op_arguments(batched[0], bits, axis, mode)
    if axis is None:
        return _fake_quantize_op(batched, bits, 0, mode), 0
    moved = batched.movedim(axis + 1, 1)  # (batch, channels, ...): one (α, β) per pair
    flat = moved.reshape(moved.shape[0] * moved.shape[1], *moved.shape[2:])
    out = _fake_quantize_op(flat, bits, 0, mode).reshape(moved.shape)
    return out.movedim(1, axis + 1), 0


class StraightThrough(torch.autograd.Function):
    """ŵ = ``ul2q::fake_quantize(w, …)`` forward, ∂L/∂w = ∂L/∂ŵ backward.

    :func:`straight_through` routes the operator through this ``autograd.Function`` (it has a
    ``setup_context`` and a generated vmap rule) while a ``torch.func`` transform is active or
    dynamo is tracing, so the ``torch.func`` transforms — ``grad``,
    ``functional_call`` + ``grad``, ``vmap(grad)`` for per-sample gradients, ``jacrev`` — work
    through quantised models: PyTorch 2.13 runs an operator's ``register_autograd`` formula
    through a generated ``autograd.Function`` without ``setup_context``, which functorch refuses.
    ``torch.compile`` and ``torch.export`` trace through it to the one ``ul2q::fake_quantize``
    node per call.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(w: Tensor, bits: int, axis: int | None, mode: str) -> Tensor:
        return _fake_quantize_op(w, bits, axis, mode)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        """Nothing to save: the gradient passes through unchanged."""

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None, None]:
        return grad_output, None, None, None


REUSE_FROM = 1 << 15
"""Results of at least this many values may be written into the memory of the same layer's
previous result (see :func:`_fake_quantize_reusing`)."""

SPARE_ATTRIBUTE = "_ul2q_spare"
"""The attribute of a layer's quantiser that keeps its previous result's array."""


def _unheld_reference_count() -> int | None:
    """What ``sys.getrefcount`` says of an array held by nothing but a local name, taken out
    of a dict as :func:`_fake_quantize_reusing` takes its spare (measured, because the count
    a local name contributes differs between CPython versions); None where the reuse is off:
    a free-threaded build, where taking the spare out of the dict does not make it one
    caller's."""
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return None
    holder = {SPARE_ATTRIBUTE: np.empty(1)}
    spare = holder.pop(SPARE_ATTRIBUTE)
    return sys.getrefcount(spare)


_UNHELD = _unheld_reference_count()


def _fake_quantize_reusing(w: Tensor, bits: int, axis: int | None, mode: str,
                           holder: Any) -> Tensor:
    """:func:`_fake_quantize_cpu`, written into the memory of `holder`'s previous result when
    nothing else holds it any more.

    A training step keeps every ŵ until its backward pass and then frees it, so each step would
    allocate (and the kernel would page-fault) as much fresh memory as the weights hold; on
    ResNet-18 the reuse makes a step 0.85–0.93x as long (benchmarks/bench_torch.py). `holder` (a
    :class:`UL2Q` parametrisation) keeps the NumPy array behind its last result.
    ``torch.from_numpy`` makes the tensor's storage hold a reference to that array, and so do
    all the tensor's views and every autograd graph that saved it; so when the array's reference
    count shows only the holder's reference, no tensor, view, graph or array can see that
    memory, and the kernel may write the new ŵ into it. Taking the array out of the holder first
    (``dict.pop``, one step under the GIL) gives it to one caller at a time; the count that
    means "no other holder" is measured once, at import, the same way
    (:func:`_unheld_reference_count`), and the reuse is off in a free-threaded build. The cost:
    each such layer keeps one spare copy of its ŵ between calls.
    """
    target = _cpu.numpy_float(w.dtype)  # None for bfloat16: computed in float64, converted
    if (holder is None or w.numel() < REUSE_FROM or target is None or mode == "device"
            or _UNHELD is None or not w.is_contiguous()):
        return _fake_quantize_cpu(w, bits, axis, mode)
    axis = check_op_arguments(w, bits, axis, mode)
    spare = holder.__dict__.pop(SPARE_ATTRIBUTE, None)
    # no more references than the local name's: no other holder is left
    if spare is not None and not (sys.getrefcount(spare) == _UNHELD and spare.dtype == target
                                  and spare.shape == tuple(w.shape)):
        spare = None
    array = _cpu.fake_quantize_array(_cpu.as_array(w, check=False), bits, axis, w.dtype,
                                     spare)
    w_hat = torch.from_numpy(array)  # C-contiguous: the input is
    holder.__dict__[SPARE_ATTRIBUTE] = array
    return w_hat


class EagerStraightThrough(torch.autograd.Function):
    """ŵ = the operator's CPU kernel forward, ∂L/∂w = ∂L/∂ŵ backward, without the dispatcher.

    The eager CPU training path of :func:`straight_through`: the same kernel function as
    ``ul2q::fake_quantize`` on CPU (so the same bits), with the operator's gradient formula,
    at a fraction of the cost of a custom operator's dispatch on a small tensor. It is an
    ``autograd.Function`` in the form without ``setup_context`` (the cheaper one to call), so
    it is only used where no ``torch.func`` transform, tracer or mode is active.
    """

    @staticmethod
    def forward(ctx: Any, w: Tensor, bits: int, axis: int | None, mode: str,
                holder: Any = None) -> Tensor:
        return _fake_quantize_reusing(w, bits, axis, mode, holder)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None, None, None]:
        return grad_output, None, None, None, None


def _plain_cpu(w: Tensor) -> bool:
    """Whether `w` is a plain CPU tensor with no tracer or mode that must see the operator
    (dynamo and the ``torch.func`` transforms are handled first, by :func:`straight_through`):
    then its CPU kernel can run without the dispatcher (the same function, so the same
    bits)."""
    return ((type(w) is Tensor or type(w) is torch.nn.Parameter) and w.is_cpu
            and not torch._C._is_torch_function_mode_enabled()
            and _get_current_dispatch_mode() is None
            and torch._C._get_tracing_state() is None)


def straight_through(w: Tensor, bits: int, axis: int | None, mode: str,
                     holder: Any = None) -> Tensor:
    """``ul2q::fake_quantize`` with the straight-through gradient, for every caller.

    * While a ``torch.func`` transform is active, or dynamo is tracing: through
      :class:`StraightThrough`, which functorch accepts and the tracers see as the operator.
    * A plain CPU tensor in eager mode, with no tracer or mode active: the operator's CPU
      kernel without the dispatcher — called directly when no gradient is needed (inference,
      ``no_grad``), through :class:`EagerStraightThrough` when one is. The same function,
      hence the same bits, and the same gradient; ``torch.profiler`` lists the
      ``EagerStraightThrough`` node instead of a ``ul2q::fake_quantize`` call.
    * Anything else (other devices, tensor subclasses, ``torch.jit.trace``, dispatch and
      ``__torch_function__`` modes such as FakeTensorMode): the operator itself, whose
      registered autograd formula serves ``backward()``.

    `holder`, a layer's :class:`~ul2q_ref.torch.UL2Q`, lets the eager CPU routes write a
    large ŵ into the memory of the layer's previous ŵ once nothing holds that any more
    (:func:`_fake_quantize_reusing`).
    """
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return StraightThrough.apply(w, bits, axis, mode)
    if _plain_cpu(w):
        if w.requires_grad and torch.is_grad_enabled():
            return EagerStraightThrough.apply(w, bits, axis, mode, holder)
        return _fake_quantize_reusing(w, bits, axis, mode, holder)
    return _fake_quantize_op(w, bits, axis, mode)


# --------------------------------------------------------------------------- public functions


def _book(value: Any, channels: int, device: torch.device, name: str) -> Tensor:
    """α or β as a float64 vector of one value per channel (a scalar is broadcast)."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be real, got {value.dtype}")
        book = value.detach().to(device=device, dtype=torch.float64).reshape(-1)
    else:
        book = torch.as_tensor(value, dtype=torch.float64, device=device).reshape(-1)
    if book.numel() == 1:
        return book.expand(channels).contiguous()
    if book.numel() != channels:
        raise ValueError(f"{name} must hold one value per channel ({channels}), "
                         f"got {book.numel()} values")
    return book.contiguous()


def moments(w: Tensor, axis: int | None = None, *, mode: str = "auto") -> tuple[Tensor, Tensor]:
    """μ and σ of `w` (per channel along `axis`) as float64 tensors of shape ``(channels,)``."""
    w, _, axis = _check(w, 1, axis)
    return _moments_op(w, axis, check_mode(mode))


def encode(w: Tensor, alpha: Any, beta: Any, bits: int, axis: int | None = None) -> Tensor:
    r"""q = clip(⌊(w − β)/α⌋ + 1, 1 − 2^(k−1), 2^(k−1)) in float64; 1 where α = 0.

    `alpha` (finite, ≥ 0) and `beta` (finite) hold one value per channel along `axis` (or one
    value). Bit-exact with :func:`ul2q_ref.encode` on every device.
    """
    w, bits, axis = _check(w, bits, axis)
    channels = _channels(w, axis)
    return _encode_op(w, _book(alpha, channels, w.device, "alpha"),
                      _book(beta, channels, w.device, "beta"), bits, axis)


def decode(codes: Tensor, alpha: Any, beta: Any, axis: int | None = None,
           dtype: torch.dtype = torch.float32) -> Tensor:
    r"""ŵ = α(q − ½) + β in float64, rounded once to `dtype` (bit-exact on every device)."""
    if not isinstance(codes, Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    axis = check_axis(axis, codes.dim())
    channels = _channels(codes, axis)
    return _decode_op(codes, _book(alpha, channels, codes.device, "alpha"),
                      _book(beta, channels, codes.device, "beta"), axis, dtype)


def quantize(w: Tensor, bits: int, axis: int | None = None, *, mode: str = "auto"
             ) -> TorchQuantized:
    """μL2Q codes and code book of `w`: α = λ_k* σ, β = μ per channel."""
    w, bits, axis = _check(w, bits, axis)
    mean, std = _moments_op(w, axis, check_mode(mode))
    lam = optimal_lambda(bits)
    alpha = lam * std
    return TorchQuantized(_encode_op(w, alpha, mean, bits, axis), alpha, mean, lam)


def fake_quantize(w: Tensor, bits: int, axis: int | None = None, *, mode: str = "auto"
                  ) -> Tensor:
    """The reconstruction ŵ of `w` in w's dtype, with the straight-through gradient."""
    w, bits, axis = _check(w, bits, axis)
    return straight_through(w, bits, axis, check_mode(mode))


def ul2q(w: Tensor, bits: int, axis: int | None = None, *, mode: str = "auto") -> Tensor:
    """Apply k-bit μL2Q to `w` with the straight-through gradient (``ul2q::fake_quantize``)."""
    return fake_quantize(w, bits, axis, mode=mode)


class UL2QFunction(torch.autograd.Function):
    """``UL2QFunction.apply(w, bits, axis)``: :func:`ul2q` as an ``autograd.Function``.

    Kept for code written when :func:`ul2q` did not support the ``torch.func`` transforms;
    :func:`ul2q` now does (through :class:`StraightThrough`), so prefer it.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(w: Tensor, bits: int, axis: int | None) -> Tensor:
        return fake_quantize(w, bits, axis)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        """Nothing to save: the gradient passes through unchanged."""

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        return grad_output, None, None


__all__ = [
    "MODES",
    "EagerStraightThrough",
    "StraightThrough",
    "TorchQuantized",
    "UL2QFunction",
    "check_op_arguments",
    "straight_through",
    "code_dtype",
    "decode",
    "encode",
    "fake_quantize",
    "moments",
    "quantize",
    "ul2q",
]

from . import decompose as _decompose  # noqa: E402  (needs the operator defined above)

_decompose.register()
