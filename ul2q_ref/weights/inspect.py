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
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, special

from .. import expected_loss, fake_quantize, moments, optimal_lambda

DEFAULT_BITS = tuple(range(1, 9))
"""The bit widths ``inspect`` reports."""

SEARCH_FACTOR = 8.0
"""The best step is searched in [λ_k*/8, 8 λ_k*]."""

GRID_POINTS = 161
"""Log-spaced grid points of the best-step search before Brent refines the best one."""


class SortedValues:
    r"""Normalised values φ, sorted, with prefix sums for exact O(2^k log n) loss evaluation.

    Parameters
    ----------
    phi : numpy.ndarray
        The normalised values φ = (w − μ)/σ (any shape; float64).
    """

    def __init__(self, phi: np.ndarray) -> None:
        self.values = np.sort(np.asarray(phi, dtype=np.float64).ravel())
        self.n = self.values.size
        self.sum1 = np.concatenate(([0.0], np.cumsum(self.values)))
        self.sum2 = np.concatenate(([0.0], np.cumsum(self.values * self.values)))

    def loss(self, lam: float, bits: int) -> float:
        r"""mean((φ − Q_λ(φ))²) for the k-bit μL2Q quantiser with step λ.

        With M = 2^(k−1), the cells are split at λj for j = 1 − M, …, M − 1 and cell
        q ∈ {1 − M, …, M} has centre c_q = λ(q − ½).
        """
        half = 2 ** (bits - 1)
        thresholds = lam * np.arange(1 - half, half, dtype=np.float64)
        edges = np.concatenate(([0], np.searchsorted(self.values, thresholds, side="left"),
                                [self.n]))
        centres = lam * (np.arange(1 - half, half + 1, dtype=np.float64) - 0.5)
        count = np.diff(edges).astype(np.float64)
        first = self.sum1[edges[1:]] - self.sum1[edges[:-1]]
        second = self.sum2[edges[1:]] - self.sum2[edges[:-1]]
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

    def ks_distance(self) -> float:
        """D = sup |F_n(φ) − Φ(φ)|, the Kolmogorov–Smirnov distance to N(0, 1)."""
        cdf = special.ndtr(self.values)
        steps = np.arange(1, self.n + 1, dtype=np.float64) / self.n
        return float(max(np.max(steps - cdf), np.max(cdf - (steps - 1.0 / self.n))))


def squared_error(weights: np.ndarray, bits: int, axis: int | None) -> float:
    """mean((w − ŵ)²) of k-bit μL2Q, ŵ = ``fake_quantize(w, k, axis=axis)`` in float64."""
    error = (weights - fake_quantize(weights, bits, axis=axis)).ravel()
    return float(np.dot(error, error)) / error.size


def tensor_report(
    array: np.ndarray,
    bits: Sequence[int] = DEFAULT_BITS,
    *,
    channel_axis: int | None = 0,
    best_step: bool = True,
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

    Returns
    -------
    dict
        ``n``, ``mean``, ``std``, ``skewness``, ``excess_kurtosis``, ``ks_distance`` and
        ``loss``, a list with one entry per k (see docs/models.md for every field). A tensor
        with σ = 0 (all values equal) has null statistics and zero losses.
    """
    weights = np.asarray(array, dtype=np.float64)
    mean, std = (float(v) for v in moments(weights))
    if channel_axis is not None and (channel_axis >= weights.ndim
                                     or weights.shape[channel_axis] < 2):
        channel_axis = None
    report: dict[str, Any] = {"n": int(weights.size), "mean": mean, "std": std}
    if not std > 0.0:
        report.update(skewness=None, excess_kurtosis=None, ks_distance=None)
        report["loss"] = [_constant_entry(k) for k in bits]
        return report
    channel_variance = None
    if channel_axis is not None:
        channel_std = np.asarray(moments(weights, axis=channel_axis)[1])
        channel_variance = float(np.mean(channel_std * channel_std))
    phi = (weights - mean) / std
    report["skewness"] = float(np.mean(phi ** 3))
    report["excess_kurtosis"] = float(np.mean(phi ** 4) - 3.0)
    ordered = SortedValues(phi)
    report["ks_distance"] = ordered.ks_distance()
    entries = []
    for k in bits:
        star = optimal_lambda(k)
        mse = squared_error(weights, k, None)
        entry: dict[str, Any] = {
            "bits": int(k),
            "lambda": star,
            "predicted": expected_loss(star, k),
            "actual": mse / (std * std),
            "mse": mse,
        }
        entry["ratio"] = entry["actual"] / entry["predicted"]
        if channel_axis is not None and channel_variance is not None:
            mse_channels = squared_error(weights, k, channel_axis)
            entry["mse_per_channel"] = mse_channels
            entry["actual_per_channel"] = (mse_channels / channel_variance
                                           if channel_variance > 0 else 0.0)
        if best_step:
            at_star = ordered.loss(star, k)
            best_lam, best_loss = ordered.best_step(k)
            best_loss = min(best_loss, at_star)
            entry["best_lambda"] = best_lam if best_loss < at_star else star
            entry["best_lambda_ratio"] = entry["best_lambda"] / star
            entry["best_loss"] = best_loss
            entry["best_saving"] = 1.0 - best_loss / at_star if at_star > 0 else 0.0
        entries.append(entry)
    report["loss"] = entries
    return report


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
) -> list[dict[str, Any]]:
    """:func:`tensor_report` of each :class:`~ul2q_ref.weights.readers.Tensor`, with its name.

    `progress`, if given, is called with each tensor's name before it is measured.
    """
    layers = []
    for tensor in tensors:
        if progress is not None:
            progress(tensor.name)
        axis = tensor.channel_axis if per_channel else None
        row = {"name": tensor.name, "layer": tensor.layer, "role": tensor.role,
               "shape": list(tensor.array.shape), "dtype": str(tensor.array.dtype),
               "channel_axis": axis,
               "channels": int(tensor.array.shape[axis]) if axis is not None
               and tensor.array.ndim > axis else None}
        try:
            row.update(tensor_report(tensor.array, bits, channel_axis=axis,
                                     best_step=best_step))
        except (TypeError, ValueError) as error:  # e.g. NaN weights: name the tensor
            raise ValueError(f"tensor {tensor.name}: {error}") from None
        layers.append(row)
    return layers


__all__ = ["DEFAULT_BITS", "SortedValues", "inspect_tensors", "squared_error", "tensor_report"]
