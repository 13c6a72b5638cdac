r"""Does a tensor fit μL2Q's premise? Its normality statistics and its actual μL2Q losses.

μL2Q picks λ_k* for φ = (w − μ)/σ ~ N(0, 1). For one weight tensor this module measures

* n, μ, σ (:func:`ul2q_ref.moments`, population σ as μL2Q uses it), the skewness
  E[φ³] and the excess kurtosis E[φ⁴] − 3 (0 and 0 for a normal distribution, 0 and −1.2
  for a uniform one), and the Kolmogorov–Smirnov distance D = sup |F_n(φ) − Φ(φ)|;
* for each k the Gaussian prediction L(λ_k*) (:func:`ul2q_ref.expected_loss`) and the
  **actual normalised loss** of μL2Q on the tensor, mean((w − ŵ)²)/σ² with
  ŵ = ``fake_quantize(w, k)`` (compiled kernels when built), per tensor and per channel
  (there the squared error is divided by the mean channel variance, so that the Gaussian
  prediction is again L(λ_k*));
* the tensor's **own best step** λ̂_k = argmin_λ mean((φ − Q_λ(φ))²) for the same k-bit
  quantiser, and the share of the loss it would save over λ_k*: what the premise costs.

The empirical loss of a step λ is evaluated exactly from the sorted φ and its prefix sums:
the cells of Q_λ are contiguous runs of the sorted values, and a run [a, b) with centre c
contributes Σφ² − 2cΣφ + c²(b − a). One evaluation costs O(2^k log n) instead of O(n), so the
search can scan a fine grid of λ (the empirical loss of non-normal data may have several
local minima) and then refine the best grid point with a bounded Brent search. A value on a
cell boundary is equally far from both centres, so the loss does not depend on the tie rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import optimize, special

from .. import expected_loss, fake_quantize, moments, optimal_lambda, quantize

DEFAULT_BITS = tuple(range(1, 9))
"""The bit widths ``inspect`` reports."""

SEARCH_FACTOR = 8.0
"""The best step is searched in [λ_k*/8, 8 λ_k*]."""

GRID_POINTS = 161
"""Log-spaced grid points of the best-step search before Brent refines the best one."""


BLOCK = 32
"""Values per block of the block prefix sums of :class:`SortedValues`."""

CHUNK = 1 << 18
"""Values per chunk of the streaming passes (skewness, kurtosis, KS distance, errors)."""


class SortedValues:
    r"""Normalised values φ, sorted, with block prefix sums for exact O(2^k) loss evaluation.

    Parameters
    ----------
    phi : numpy.ndarray
        The normalised values φ = (w − μ)/σ (any shape; float64).
    assume_sorted : bool
        `phi` is already a sorted float64 vector: it is used as it is, without a copy.

    Notes
    -----
    A prefix sum S(e) = Σ_{i<e} φ_i is the sum of the whole blocks before e (kept, one per
    :data:`BLOCK` values) plus at most BLOCK − 1 values of e's own block (summed when
    needed), so the extra memory is 2/BLOCK of φ's instead of twice φ's.
    """

    def __init__(self, phi: np.ndarray, *, assume_sorted: bool = False) -> None:
        if assume_sorted:
            self.values = phi
        else:
            self.values = np.sort(np.asarray(phi, dtype=np.float64).ravel())
        self.n = self.values.size
        blocks = -(-self.n // BLOCK)
        block_sum1 = np.empty(blocks, dtype=np.float64)
        block_sum2 = np.empty(blocks, dtype=np.float64)
        step = CHUNK // BLOCK * BLOCK
        for start in range(0, self.n, step):
            part = self.values[start:start + step]
            padded = np.zeros(-(-part.size // BLOCK) * BLOCK, dtype=np.float64)
            padded[:part.size] = part
            rows = padded.reshape(-1, BLOCK)
            first = start // BLOCK
            block_sum1[first:first + rows.shape[0]] = rows.sum(axis=1)
            block_sum2[first:first + rows.shape[0]] = np.einsum("ij,ij->i", rows, rows)
        self.prefix1 = np.concatenate(([0.0], np.cumsum(block_sum1)))
        self.prefix2 = np.concatenate(([0.0], np.cumsum(block_sum2)))

    def prefix_sums(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Σ_{i<e} φ_i and Σ_{i<e} φ_i² for every e in `edges` (integers 0..n)."""
        block = edges // BLOCK
        offsets = block[:, None] * BLOCK + np.arange(BLOCK)
        inside = offsets < edges[:, None]
        values = np.where(inside, self.values[np.minimum(offsets, max(self.n - 1, 0))], 0.0)
        return (self.prefix1[block] + values.sum(axis=1),
                self.prefix2[block] + np.einsum("ij,ij->i", values, values))

    def loss(self, lam: float, bits: int) -> float:
        r"""mean((φ − Q_λ(φ))²) for the k-bit μL2Q quantiser with step λ.

        With M = 2^(k−1), the cells are split at λj for j = 1 − M, …, M − 1 and cell
        q ∈ {1 − M, …, M} has centre c_q = λ(q − ½); a cell holding the sorted values
        [a, b) contributes Σφ² − 2c_qΣφ + c_q²(b − a).
        """
        half = 2 ** (bits - 1)
        thresholds = lam * np.arange(1 - half, half, dtype=np.float64)
        edges = np.concatenate(([0], np.searchsorted(self.values, thresholds, side="left"),
                                [self.n]))
        centres = lam * (np.arange(1 - half, half + 1, dtype=np.float64) - 0.5)
        count = np.diff(edges).astype(np.float64)
        sum1, sum2 = self.prefix_sums(edges)
        first = np.diff(sum1)
        second = np.diff(sum2)
        total = second - 2.0 * centres * first + centres * centres * count
        return max(float(np.sum(total)), 0.0) / self.n

    def best_step(self, bits: int) -> tuple[float, float]:
        """The step λ̂ in [λ_k*/8, 8 λ_k*] minimising :meth:`loss`, and that loss.

        A log-spaced grid (:data:`GRID_POINTS` points, λ_k* among them), then a bounded
        Brent search between the neighbours of the best grid point.
        """
        star = optimal_lambda(bits)
        grid = star * np.exp(np.linspace(-1.0, 1.0, GRID_POINTS) * math.log(SEARCH_FACTOR))
        grid[GRID_POINTS // 2] = star
        losses = np.array([self.loss(float(lam), bits) for lam in grid])
        best = int(np.argmin(losses))
        low, high = grid[max(best - 1, 0)], grid[min(best + 1, GRID_POINTS - 1)]
        found = optimize.minimize_scalar(
            lambda t: self.loss(math.exp(t), bits), bounds=(math.log(low), math.log(high)),
            method="bounded", options={"xatol": 1e-7},
        )
        if float(found.fun) < losses[best]:
            return math.exp(float(found.x)), float(found.fun)
        return float(grid[best]), float(losses[best])

    def ks_distance(self, jobs: int = 1) -> float:
        """D = sup |F_n(φ) − Φ(φ)|, the Kolmogorov–Smirnov distance to N(0, 1), in chunks
        (on up to `jobs` threads)."""

        def largest(start: int) -> float:
            cdf = special.ndtr(self.values[start:start + CHUNK])
            steps = np.arange(start + 1, start + cdf.size + 1, dtype=np.float64) / self.n
            return max(float(np.max(steps - cdf)), float(np.max(cdf - (steps - 1.0 / self.n))))

        return max(_map(jobs, largest, range(0, self.n, CHUNK)), default=0.0)


def quantization_error(weights: np.ndarray, quantized: Any) -> float:
    """mean((w − ŵ)²), ŵ = α(q − z) + β decoded in float64, in chunks of rows.

    The same value as ``mean((w - quantized.dequantize(np.float64)) ** 2)`` without
    materialising ŵ (memory: one chunk of :data:`CHUNK` values).
    """
    values = np.asarray(weights)
    if values.size == 0:
        return 0.0
    codes = quantized.codes
    if values.ndim == 0:
        values, codes = values.reshape(1), codes.reshape(1)
    alpha = np.asarray(quantized.alpha, dtype=np.float64)
    beta = np.asarray(quantized.beta, dtype=np.float64)
    axis = quantized.axis
    if axis is not None and axis > 0:
        along = [1] * values.ndim
        along[axis] = -1
        alpha, beta = alpha.reshape(along), beta.reshape(along)
    rows = max(1, CHUNK // max(1, values.size // values.shape[0]))
    total = 0.0
    for start in range(0, values.shape[0], rows):
        part = slice(start, start + rows)
        scale, offset = alpha, beta
        if axis == 0:
            shape = (-1,) + (1,) * (values.ndim - 1)
            scale, offset = alpha[part].reshape(shape), beta[part].reshape(shape)
        error = values[part].astype(np.float64)
        error -= scale * (codes[part].astype(np.float64) - quantized.zero_point) + offset
        flat = error.reshape(-1)
        total += float(np.dot(flat, flat))
    return total / values.size


def squared_error(weights: np.ndarray, bits: int, axis: int | None) -> float:
    """mean((w − ŵ)²) of k-bit μL2Q, ŵ = ``fake_quantize(w, k, axis=axis)`` in float64.

    Per channel, the channels are independent (each has its own μ, σ, α, β), so ŵ is
    computed for a few channels at a time (:data:`CHUNK` values): the same numbers as one
    call on the whole tensor, without holding a second copy of it.
    """
    values = np.asarray(weights, dtype=np.float64)
    if values.size == 0:
        return 0.0
    if axis is None:
        return quantization_error(values, quantize(values, bits))
    rows = np.moveaxis(values, axis, 0)
    step = max(1, CHUNK // max(1, values.size // rows.shape[0]))
    total = 0.0
    for start in range(0, rows.shape[0], step):
        part = rows[start:start + step]
        error = (part - fake_quantize(part, bits, axis=0)).reshape(-1)
        total += float(np.dot(error, error))
    return total / values.size


def channel_rows(weights: np.ndarray, axis: int) -> np.ndarray | None:
    """`weights` as a (channels, values) view along `axis`, or None when that needs a copy."""
    rows = np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1)
    return rows if np.shares_memory(rows, weights) else None


def channel_losses(rows: np.ndarray, mean: np.ndarray, std: np.ndarray, bits: Sequence[int],
                   jobs: int = 1) -> dict[int, float]:
    r"""Per-channel mean((w − ŵ)²) of k-bit μL2Q for every k, from channels sorted by value.

    Channel c has β_c = μ_c and α_c = λ_k* σ_c; with d = w − μ_c, its cells are split at
    α_c j (j = 1 − M, …, M − 1, M = 2^(k−1)), cell q has centre α_c(q − ½), and a cell
    holding the sorted d of [a, b) contributes Σd² − 2c_qΣd + c_q²(b − a) (the same exact
    evaluation as :meth:`SortedValues.loss`). `rows` is (channels, values), each row sorted.
    The prefix sums are made for a few channels at a time (:data:`CHUNK` values), so every
    k costs a binary search per channel instead of a pass over the tensor. Equal, up to
    rounding, to :func:`squared_error` with ``fake_quantize(w, k, axis)``.
    """
    channels, width = rows.shape
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64).reshape(-1), (channels,))
    std = np.broadcast_to(np.asarray(std, dtype=np.float64).reshape(-1), (channels,))
    step = max(1, CHUNK // max(1, width))

    halves = [2 ** (k - 1) for k in bits]
    units = [optimal_lambda(k) * np.arange(1 - half, half, dtype=np.float64)
             for k, half in zip(bits, halves, strict=True)]
    split = np.cumsum([u.size for u in units])[:-1]
    every_unit = np.concatenate(units)  # λ_k* j for every k: one search per channel

    def chunk(start: int) -> np.ndarray:
        part = slice(start, start + step)
        d = rows[part] - mean[part, None]
        zero = np.zeros((d.shape[0], 1))
        sum1 = np.concatenate((zero, np.cumsum(d, axis=1)), axis=1)
        sum2 = np.concatenate((zero, np.cumsum(d * d, axis=1)), axis=1)
        inner = np.empty((d.shape[0], every_unit.size), dtype=np.int64)
        for row in range(d.shape[0]):
            inner[row] = np.searchsorted(d[row], std[start + row] * every_unit, side="left")
        totals = np.zeros(len(bits))
        for index, (k, half, found) in enumerate(zip(bits, halves, np.split(inner, split,
                                                                            axis=1),
                                                     strict=True)):
            alpha = optimal_lambda(k) * std[part]
            edges = np.empty((d.shape[0], 2 * half + 1), dtype=np.int64)
            edges[:, 0], edges[:, -1], edges[:, 1:-1] = 0, width, found
            centres = alpha[:, None] * (np.arange(1 - half, half + 1, dtype=np.float64) - 0.5)
            count = np.diff(edges, axis=1).astype(np.float64)
            first = np.diff(np.take_along_axis(sum1, edges, axis=1), axis=1)
            second = np.diff(np.take_along_axis(sum2, edges, axis=1), axis=1)
            cells = second - 2.0 * centres * first + centres * centres * count
            totals[index] = float(np.sum(np.maximum(cells.sum(axis=1), 0.0)))
        return totals

    total = np.sum(_map(jobs, chunk, range(0, channels, step)), axis=0)
    size = channels * width
    return {int(k): float(total[i]) / size for i, k in enumerate(bits)}


def mean_square(weights: np.ndarray) -> float:
    """mean(w²) in float64, in chunks (the signal power of an SQNR)."""
    flat = np.asarray(weights).reshape(-1)
    total = 0.0
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK].astype(np.float64)
        total += float(np.dot(part, part))
    return total / flat.size if flat.size else 0.0


def _standardised_moments(phi: np.ndarray, jobs: int = 1) -> tuple[float, float]:
    """E[φ³] and E[φ⁴] − 3, summed in chunks (on up to `jobs` threads)."""

    def sums(start: int) -> tuple[float, float]:
        part = phi[start:start + CHUNK]
        square = part * part
        return float(np.dot(square, part)), float(np.dot(square, square))

    partial = _map(jobs, sums, range(0, phi.size, CHUNK))
    return (sum(p[0] for p in partial) / phi.size,
            sum(p[1] for p in partial) / phi.size - 3.0)


def tensor_report(
    array: np.ndarray,
    bits: Sequence[int] = DEFAULT_BITS,
    *,
    channel_axis: int | None = 0,
    best_step: bool = True,
    jobs: int = 1,
    overwrite: bool = False,
    shape_statistics: bool = True,
) -> dict[str, Any]:
    """Normality statistics and μL2Q losses of one tensor (the module docstring's list).

    Parameters
    ----------
    array : numpy.ndarray
        The tensor (float; at least one value).
    bits : sequence of int
        The bit widths k to evaluate.
    channel_axis : int or None
        The output-channel axis of the per-channel losses; None skips them.
    best_step : bool
        Search each k's own best step (the costliest part).
    jobs : int
        Threads that evaluate the bit widths k side by side (the kernels and NumPy release
        the GIL).
    overwrite : bool
        `array` may be used as scratch space (it is left holding the sorted φ).
    shape_statistics : bool
        Compute the skewness, excess kurtosis and KS distance (None without; ``plan`` needs
        only the losses).

    Returns
    -------
    dict
        ``n``, ``mean``, ``std``, ``skewness``, ``excess_kurtosis``, ``ks_distance`` and
        ``loss``, a list with one entry per k (see docs/models.md for every field). A tensor
        with σ = 0 (all values equal) has null statistics and zero losses.

    Notes
    -----
    Memory: one float64 copy of the tensor (sorted channel by channel, then made into φ and
    sorted in place; with `overwrite`, `array` itself when it is a float64 array) and
    chunks of :data:`CHUNK` values per thread. The losses are evaluated exactly from sorted
    values and prefix sums, O(2^k log n) per step instead of a pass over the tensor: per
    tensor from the sorted φ (:meth:`SortedValues.loss`), per channel from each channel's
    sorted values (:func:`channel_losses`); both equal mean((w − ŵ)²) with
    ŵ = ``fake_quantize(w, k)`` up to rounding (``tests/test_weights.py`` compares them).
    """
    given = np.asarray(array)
    if overwrite and given.dtype == np.float64 and given.flags.c_contiguous and \
            given.flags.writeable:
        weights = given
    else:
        weights = np.array(given, dtype=np.float64)  # a copy: becomes φ, sorted, below
    mean, std = (float(v) for v in moments(weights))
    if channel_axis is not None and (channel_axis >= weights.ndim
                                     or weights.shape[channel_axis] < 2):
        channel_axis = None
    report: dict[str, Any] = {"n": int(weights.size), "mean": mean, "std": std}
    if not std > 0.0:
        report.update(skewness=None, excess_kurtosis=None, ks_distance=None)
        report["loss"] = [_constant_entry(k) for k in bits]
        return report
    per_channel: dict[int, float] = {}
    channel_variance = None
    if channel_axis is not None:
        channel_mean, channel_std = (np.asarray(v) for v in moments(weights, axis=channel_axis))
        channel_variance = float(np.mean(channel_std * channel_std))
        rows = channel_rows(weights, channel_axis)
        if rows is not None:  # sorted channel by channel, in place: φ's order is free
            step = -(-rows.shape[0] // (4 * jobs))  # row blocks sorted side by side
            _map(jobs, lambda start: rows[start:start + step].sort(axis=1),
                 range(0, rows.shape[0], step))
            per_channel = channel_losses(rows, channel_mean, channel_std, bits, jobs)
        else:
            axis = channel_axis
            per_channel = dict(zip(bits, _map(jobs, lambda k: squared_error(weights, k, axis),
                                              bits), strict=True))
    phi = weights.reshape(-1)
    phi -= mean
    phi /= std
    if shape_statistics:
        report["skewness"], report["excess_kurtosis"] = _standardised_moments(phi, jobs)
    else:
        report["skewness"] = report["excess_kurtosis"] = None
    phi.sort()
    ordered = SortedValues(phi, assume_sorted=True)
    report["ks_distance"] = ordered.ks_distance(jobs) if shape_statistics else None
    report["loss"] = _map(jobs, lambda k: _loss_entry(ordered, k, std, per_channel,
                                                      channel_variance, best_step), bits)
    return report


def _loss_entry(ordered: SortedValues, k: int, std: float, per_channel: dict[int, float],
                channel_variance: float | None, best_step: bool) -> dict[str, Any]:
    star = optimal_lambda(k)
    at_star = ordered.loss(star, k)
    entry: dict[str, Any] = {"bits": int(k), "lambda": star,
                             "predicted": expected_loss(star, k), "actual": at_star,
                             "mse": at_star * std * std}
    entry["ratio"] = entry["actual"] / entry["predicted"]
    if k in per_channel and channel_variance is not None:
        entry["mse_per_channel"] = per_channel[k]
        entry["actual_per_channel"] = (per_channel[k] / channel_variance
                                       if channel_variance > 0 else 0.0)
    if best_step:
        best_lam, best_loss = ordered.best_step(k)
        best_loss = min(best_loss, at_star)
        entry["best_lambda"] = best_lam if best_loss < at_star else star
        entry["best_lambda_ratio"] = entry["best_lambda"] / star
        entry["best_loss"] = best_loss
        entry["best_saving"] = 1.0 - best_loss / at_star if at_star > 0 else 0.0
    return entry


def _map(jobs: int, function: Callable[[Any], Any], items: Sequence[Any] | range) -> list[Any]:
    """``[function(x) for x in items]``, on up to `jobs` threads, in order."""
    if jobs <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(jobs, len(items))) as pool:
        return list(pool.map(function, items))


def _constant_entry(k: int) -> dict[str, Any]:
    star = optimal_lambda(k)
    return {"bits": int(k), "lambda": star, "predicted": expected_loss(star, k),
            "actual": None, "mse": 0.0, "ratio": None, "mse_per_channel": 0.0,
            "actual_per_channel": None}


def inspect_tensors(
    tensors: Sequence[Any],
    bits: Sequence[int] = DEFAULT_BITS,
    *,
    per_channel: bool = True,
    best_step: bool = True,
    progress: Any = None,
    jobs: int = 1,
    shape_statistics: bool = True,
) -> list[dict[str, Any]]:
    """:func:`tensor_report` of each :class:`~ul2q_ref.weights.tensors.Tensor`, with its name.

    The tensors are read one at a time (each is dropped before the next is read), and each
    is measured with `jobs` threads. `progress`, if given, is called with each tensor's name
    before it is read. A tensor that cannot be measured (NaN weights, …) is a ValueError
    naming it.
    """
    layers = []
    for tensor in tensors:
        if progress is not None:
            progress(tensor.name)
        axis = tensor.channel_axis if per_channel else None
        row = {"name": tensor.name, "layer": tensor.layer, "role": tensor.role,
               "shape": list(tensor.shape), "dtype": str(tensor.dtype),
               "channel_axis": axis,
               "channels": int(tensor.shape[axis]) if axis is not None
               and tensor.ndim > axis else None}
        values = tensor.load(np.float64)  # read straight into float64: the only copy
        try:
            row.update(tensor_report(values, bits, channel_axis=axis, best_step=best_step,
                                     jobs=jobs, overwrite=not tensor.in_memory,
                                     shape_statistics=shape_statistics))
        except (TypeError, ValueError) as error:  # e.g. NaN weights: name the tensor
            raise ValueError(f"tensor {tensor.name}: {error}") from None
        del values
        layers.append(row)
    return layers


__all__ = ["DEFAULT_BITS", "SortedValues", "channel_losses", "channel_rows", "inspect_tensors",
           "mean_square",
           "quantization_error", "squared_error", "tensor_report"]
