r"""The opt-in exact mode: NumPy's summation order replayed in torch operations.

``mode="exact"`` makes the statistics bit-identical to :func:`ul2q_ref.moments` on any
device: float64 per channel, the corrected two-pass algorithm after the same exact
power-of-two rescaling, every Σ evaluated in **NumPy's pairwise order** (:func:`pairwise_sum`)
and the last square root, one number per channel, correctly rounded on the host. It costs
0.7–3 ms of fixed time per call and a host round trip. The default path on CPU (the compiled
kernel) is bit-exact and fast; the default path elsewhere (:mod:`ul2q_ref.torch._device`)
stays on the device within a stated bound.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch

_BLOCK = 128
"""NumPy's pairwise-summation block size (``PW_BLOCKSIZE``)."""


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
    levels = [(tensor([entry[0] for entry in internal[height]]),
               tensor([entry[1] for entry in internal[height]]),
               tensor([entry[2] for entry in internal[height]]))
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


def ldexp(values: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
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
    scaled = ldexp(rows, -exponent[:, None])
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
    mean = ldexp(mean, exponent)
    std = ldexp(std, exponent)
    return torch.where(constant, first, mean), torch.where(constant, torch.zeros_like(std), std)


__all__ = ["ldexp", "pairwise_sum", "row_moments"]
