r"""PyTorch bridge: μL2Q as a differentiable ``torch`` operation (optional extra ``[torch]``).

>>> import torch
>>> from ul2q_ref.torch import UL2Q, ul2q
>>> w = torch.randn(8, 3, 3, 3, requires_grad=True)
>>> w_hat = ul2q(w, bits=2, axis=0)      # forward: μL2Q reconstruction ŵ
>>> w_hat.sum().backward()               # backward: straight-through, dŵ/dw = 1
>>> bool((w.grad == 1).all())
True

The forward pass computes exactly docs/spec.md in torch operations, so it runs on any
device and, on CPU, matches :func:`ul2q_ref.fake_quantize` bit for bit (the tests run it
through the conformance checker):

* statistics in float64 per channel, by the corrected two-pass algorithm after the same
  exact power-of-two rescaling, with **NumPy's pairwise summation order** reproduced
  (:func:`pairwise_sum`), so μ and σ carry the same bits as :func:`ul2q_ref.moments`;
* α = λ_k* σ, β = μ, q = clip(⌊(w − β)/α⌋ + 1, 1 − 2^(k−1), 2^(k−1)) with a true float64
  division, code 1 where σ = 0;
* ŵ = α(q − ½) + β in float64, rounded once to the input's dtype.

The backward pass is the straight-through estimator: the gradient with respect to ŵ is
passed to w unchanged (no clipping), as in the Caffe implementation, whose forward pass uses
the quantised weights while the update goes to the full-precision ones. Wrap a layer's weight
with ``torch.nn.utils.parametrize.register_parametrization(layer, "weight", UL2Q(bits))``;
PyTorch's own data-parallel and distributed training then run it unchanged.

float32 and float64 tensors are bit-exact; float16 and bfloat16 are computed the same way but
the final float64 → half conversion goes through float32 in PyTorch (double rounding), so
they may differ from the reference by one unit in the last place.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

try:
    import torch
except ImportError as _error:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "ul2q_ref.torch needs PyTorch, which is not installed; install it with "
        "pip install 'ul2q-ref[torch]' (or see https://pytorch.org for other builds)"
    ) from _error

from ._validate import check_bits
from .codebook import code_range
from .gaussian import optimal_lambda

_BLOCK = 128
"""NumPy's pairwise-summation block size (``PW_BLOCKSIZE``)."""


class TorchQuantized(NamedTuple):
    """Codes and code book from :func:`quantize` (tensors on the input's device).

    ``codes`` is int64 with the input's shape; ``alpha`` and ``beta`` are float64 with one
    value per channel (shape ``(channels,)``, ``(1,)`` per tensor); ``lam`` is λ_k*.
    """

    codes: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    lam: float


# --------------------------------------------------------------------------- summation


class _Plan(NamedTuple):
    leaves: list[tuple[torch.Tensor, torch.Tensor]]  # (node ids, (length, leaves) index)
    levels: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # (nodes, left, right)
    nodes: int


@functools.lru_cache(maxsize=256)
def _plan(n: int, device: str) -> _Plan:
    """The tree of NumPy's ``pairwise_sum`` for n ≥ 8 values, grouped for vector evaluation."""
    leaves: dict[int, list[tuple[int, int]]] = {}
    internal: dict[int, list[tuple[int, int, int]]] = {}
    counter = 0

    def visit(start: int, length: int) -> tuple[int, int]:
        nonlocal counter
        node = counter
        counter += 1
        if length <= _BLOCK:
            leaves.setdefault(length, []).append((node, start))
            return node, 0
        half = length // 2
        half -= half % 8
        left, left_height = visit(start, half)
        right, right_height = visit(start + half, length - half)
        height = max(left_height, right_height) + 1
        internal.setdefault(height, []).append((node, left, right))
        return node, height

    visit(0, n)
    target = torch.device(device)

    def tensor(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int64, device=target)

    leaf_groups = []
    for length, group in sorted(leaves.items()):
        starts = tensor([start for _, start in group])
        offsets = torch.arange(length, dtype=torch.int64, device=target)
        leaf_groups.append((tensor([node for node, _ in group]),
                            offsets[:, None] + starts[None, :]))
    levels = [tuple(tensor([entry[i] for entry in internal[height]]) for i in range(3))
              for height in sorted(internal)]
    return _Plan(leaf_groups, levels, counter)


def _block_sum(values: torch.Tensor) -> torch.Tensor:
    """NumPy's unrolled sum of blocks of 8 ≤ L ≤ 128 values; `values` is ``(C, L, blocks)``."""
    length = values.shape[1]
    whole = length - length % 8
    r = [values[:, j] for j in range(8)]
    for i in range(8, whole, 8):
        r = [r[j] + values[:, i + j] for j in range(8)]
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for i in range(whole, length):
        total = total + values[:, i]
    return total


def pairwise_sum(rows: torch.Tensor) -> torch.Tensor:
    r"""Row sums of a ``(channels, n)`` float64 tensor in NumPy's pairwise order.

    NumPy's ``add.reduce`` adds to its identity +0.0 the ``pairwise_sum`` of a contiguous
    float64 array: fewer than 8 values left to right; up to 128 values in eight interleaved
    partial sums combined as ((r₀ + r₁) + (r₂ + r₃)) + ((r₄ + r₅) + (r₆ + r₇)), then the
    remainder; longer runs split at ⌊n/2⌋ rounded down to a multiple of 8 and recurse. This
    evaluates the same tree with tensor operations — all leaves of one length at once, then
    the tree level by level — so every addition, and hence the result, is bit-identical to
    ``row.sum()`` in NumPy.
    """
    channels, n = rows.shape
    if n < 8:
        total = torch.zeros((channels,), dtype=rows.dtype, device=rows.device)
        for i in range(n):
            total = total + rows[:, i]
        return total
    plan = _plan(n, str(rows.device))
    values = torch.empty((channels, plan.nodes), dtype=rows.dtype, device=rows.device)
    for nodes, index in plan.leaves:
        values[:, nodes] = _block_sum(rows[:, index])  # rows[:, index]: (C, length, leaves)
    for nodes, left, right in plan.levels:
        values[:, nodes] = values[:, left] + values[:, right]
    return values[:, 0] + 0.0  # the reduction adds the tree to its identity, +0.0


# --------------------------------------------------------------------------- statistics


def _pow2(exponent: torch.Tensor) -> torch.Tensor:
    """Exactly 2^e as float64 for integer e in [−1074, 1023], built from its bit pattern."""
    normal = torch.bitwise_left_shift((exponent + 1023).clamp(1, 2046), 52)
    subnormal = torch.bitwise_left_shift(torch.ones_like(exponent),
                                         (exponent + 1074).clamp(0, 51))
    return torch.where(exponent >= -1022, normal, subnormal).view(torch.float64)


def _ldexp(values: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """values·2^e rounded once, like ``numpy.ldexp`` (e ≤ 2046; two exact steps above 1023)."""
    high = exponent > 1023
    scaled = values * _pow2(torch.where(high, exponent - 1023, exponent))
    return torch.where(high, scaled * _pow2(torch.full_like(exponent, 1023)), scaled)


def row_moments(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""μ and σ of each row of a ``(channels, n)`` float64 tensor, as :func:`ul2q_ref.moments`.

    .. math::
        s = 2^{-e} w,\quad m = \frac{1}{n}\sum s,\quad d = s - m,\quad
        σ^2 = \frac{1}{n}\max\Big(\sum d^2 - \frac{(\sum d)^2}{n},\ 0\Big),\quad
        μ = 2^{e} m,\ σ = 2^{e} \sqrt{σ^2}

    with e the binary exponent of max|w| and every Σ in NumPy's pairwise order
    (:func:`pairwise_sum`). A row whose values are all equal has μ = that value and σ = 0.
    The last per-channel step, the correctly rounded square root, runs on the host with
    NumPy.
    """
    n = rows.shape[1]
    first = rows[:, 0]
    constant = (rows.amin(dim=1) == first) & (rows.amax(dim=1) == first)
    _, exponent = torch.frexp(rows.abs().amax(dim=1))
    exponent = exponent.to(torch.int64)
    scaled = _ldexp(rows, -exponent[:, None])
    mean = pairwise_sum(scaled) / n
    deviations = scaled - mean[:, None]
    sum_of_squares = pairwise_sum(deviations * deviations)
    total = pairwise_sum(deviations)
    # The last step, one number per channel, runs on the host: PyTorch's CPU float64 sqrt is
    # not correctly rounded (it missed by one ulp on 0.7% of random inputs here).
    sums = sum_of_squares.cpu().numpy()
    totals = total.cpu().numpy()
    difference = sums - totals * totals / n
    root = np.sqrt(np.where(difference < 0, 0.0, difference) / n)
    std = torch.from_numpy(root).to(rows.device)
    mean = _ldexp(mean, exponent)
    std = _ldexp(std, exponent)
    return torch.where(constant, first, mean), torch.where(constant, torch.zeros_like(std), std)


def _rows(w: torch.Tensor, axis: int | None) -> torch.Tensor:
    if axis is None:
        return w.reshape(1, -1)
    return w.movedim(axis, 0).reshape(w.shape[axis], -1)


def _channel_shape(w: torch.Tensor, axis: int | None) -> list[int]:
    shape = [1] * w.dim()
    if axis is not None:
        shape[axis] = w.shape[axis]
    return shape


def _check(w: Any, bits: int, axis: int | None) -> tuple[torch.Tensor, int, int | None]:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise TypeError(f"w must be a floating-point tensor, got {w.dtype}")
    if w.numel() == 0:
        raise ValueError(f"w is empty (shape {tuple(w.shape)})")
    bits = check_bits(bits)
    if axis is not None:
        if not -w.dim() <= axis < w.dim():
            raise ValueError(f"axis={axis} is out of range for a {w.dim()}-dimensional tensor")
        axis %= w.dim()
    if not bool(torch.isfinite(w).all()):
        raise ValueError("w contains NaN or ±inf")
    return w, bits, axis


def moments(w: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """μ and σ of `w` (per channel along `axis`) as float64 tensors of shape ``(channels,)``."""
    w, _, axis = _check(w, 1, axis)
    return row_moments(_rows(w.detach().to(torch.float64), axis))


# --------------------------------------------------------------------------- codes


def encode(
    w: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, bits: int, axis: int | None = None
) -> torch.Tensor:
    r"""q = clip(⌊(w − β)/α⌋ + 1, 1 − 2^(k−1), 2^(k−1)) in float64; 1 where α = 0 (int64).

    `alpha` and `beta` hold one value per channel along `axis` (or one value).
    """
    w, bits, axis = _check(w, bits, axis)
    return _encode(w, alpha, beta, bits, axis)


def _encode(w: torch.Tensor, alpha: Any, beta: Any, bits: int, axis: int | None
            ) -> torch.Tensor:
    lowest, highest = code_range(bits)
    shape = _channel_shape(w, axis)
    scale = torch.as_tensor(alpha, dtype=torch.float64, device=w.device).reshape(shape)
    offset = torch.as_tensor(beta, dtype=torch.float64, device=w.device).reshape(shape)
    steps = (w.detach().to(torch.float64) - offset) / scale
    codes = torch.clamp(torch.floor(steps) + 1.0, lowest, highest)
    codes = torch.where(scale == 0.0, torch.ones_like(codes), codes)
    return codes.to(torch.int64)


def decode(
    codes: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    axis: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""ŵ = α(q − ½) + β in float64, rounded once to `dtype`."""
    shape = [1] * codes.dim()
    if axis is not None:
        axis %= codes.dim()
        shape[axis] = codes.shape[axis]
    scale = torch.as_tensor(alpha, dtype=torch.float64, device=codes.device).reshape(shape)
    offset = torch.as_tensor(beta, dtype=torch.float64, device=codes.device).reshape(shape)
    return (scale * (codes.to(torch.float64) - 0.5) + offset).to(dtype)


def quantize(w: torch.Tensor, bits: int, axis: int | None = None) -> TorchQuantized:
    """μL2Q codes and code book of `w` (exact profile): α = λ_k* σ, β = μ per channel."""
    w, bits, axis = _check(w, bits, axis)
    return _quantize(w, bits, axis)


def _quantize(w: torch.Tensor, bits: int, axis: int | None) -> TorchQuantized:
    mean, std = row_moments(_rows(w.detach().to(torch.float64), axis))
    lam = optimal_lambda(bits)
    alpha = lam * std
    return TorchQuantized(_encode(w, alpha, mean, bits, axis), alpha, mean, lam)


def fake_quantize(w: torch.Tensor, bits: int, axis: int | None = None) -> torch.Tensor:
    """The reconstruction ŵ of `w` in w's dtype, without autograd (see :func:`ul2q`)."""
    w, bits, axis = _check(w, bits, axis)
    quantized = _quantize(w, bits, axis)
    return decode(quantized.codes, quantized.alpha, quantized.beta, axis, w.dtype)


# --------------------------------------------------------------------------- autograd


class UL2QFunction(torch.autograd.Function):
    """ŵ = μL2Q(w) forward, straight-through backward (∂L/∂w = ∂L/∂ŵ)."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, bits: int, axis: int | None) -> torch.Tensor:
        return fake_quantize(w, bits, axis)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad_output, None, None


def ul2q(w: torch.Tensor, bits: int, axis: int | None = None) -> torch.Tensor:
    """Apply k-bit μL2Q to `w` with the straight-through gradient (:class:`UL2QFunction`)."""
    return UL2QFunction.apply(w, bits, axis)


class UL2Q(torch.nn.Module):
    """A module that quantises the tensor it is given: ``UL2Q(bits, axis)(w) = ul2q(w, …)``.

    Use it as a parametrisation to train with quantised weights::

        torch.nn.utils.parametrize.register_parametrization(conv, "weight", UL2Q(2, axis=0))

    Parameters
    ----------
    bits : int
        The bit width k, 1 to 16.
    axis : int, optional
        The channel axis for per-channel (α, β), e.g. 0 for output channels; None for one
        (α, β) per tensor.
    """

    def __init__(self, bits: int, axis: int | None = None) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        self.axis = axis

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return ul2q(w, self.bits, self.axis)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, axis={self.axis}"


# --------------------------------------------------------------------------- cross-checking


def solve_crosscheck_request(request: dict[str, Any]) -> dict[str, Any]:
    """Answer a ``ul2q-ref check`` request with this bridge (μL2Q, exact profile only)."""
    from .crosscheck.encoding import from_hex, to_hex

    if request["scheme"] != "ul2q" or request["profile"] != "exact":
        raise ValueError(f"the PyTorch bridge implements μL2Q with the exact profile only, "
                         f"not {request['scheme']}/{request['profile']}")
    dtype = request["dtype"]
    shape = tuple(int(n) for n in request["shape"])
    weights = torch.from_numpy(from_hex(request["input"]["hex"], dtype).reshape(shape))
    bits, axis = int(request["bits"]), request["axis"]
    result: dict[str, Any] = {"id": request["id"]}

    def part(codes: torch.Tensor, alpha: Any, beta: Any) -> dict[str, Any]:
        output = decode(codes, alpha, beta, axis, weights.dtype)
        return {"codes": codes.reshape(-1).tolist(),
                "output": {"hex": to_hex(output.numpy(), dtype)}}

    if request.get("quantize", True):
        quantized = quantize(weights, bits, axis)
        result["quantize"] = {"alpha": {"hex": to_hex(quantized.alpha.numpy(), "float64")},
                              "beta": {"hex": to_hex(quantized.beta.numpy(), "float64")},
                              **part(quantized.codes, quantized.alpha, quantized.beta)}
    if request.get("encode") is not None:
        given = request["encode"]
        alpha = torch.from_numpy(np.asarray(from_hex(given["alpha"]["hex"], "float64")))
        beta = torch.from_numpy(np.asarray(from_hex(given["beta"]["hex"], "float64")))
        result["encode"] = part(encode(weights, alpha, beta, bits, axis), alpha, beta)
    return result


__all__ = [
    "TorchQuantized",
    "UL2Q",
    "UL2QFunction",
    "decode",
    "encode",
    "fake_quantize",
    "moments",
    "pairwise_sum",
    "quantize",
    "row_moments",
    "solve_crosscheck_request",
    "ul2q",
]
