"""Normalisation statistics: the mean β = μ and standard deviation σ of a weight tensor.

μL2Q normalises a weight tensor w to φ = (w − μ)/σ, which is close to N(0, 1) for trained
weights; the quantiser's offset is β = μ and its scale is α = λ_k σ.
"""

from __future__ import annotations

import numpy as np

from ._channels import as_rows


def moments(weights: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and population standard deviation of each channel of `weights`, in float64.

    .. math::
        μ = \frac{1}{n}\sum_i w_i, \qquad
        σ = \sqrt{\frac{1}{n}\Big(\sum_i d_i^2 - \frac{1}{n}\big(\sum_i d_i\big)^2\Big)},
        \quad d_i = w_i - μ

    This is the corrected two-pass algorithm (Chan, Golub & LeVeque, 1983): the second pass
    works on deviations from the mean, so a tensor with mean 1e4 and spread 1e-3 keeps all
    its digits (the one-pass E[w²] − E[w]² would lose them), and the correction term removes
    the rounding error left in μ. A tensor whose values are all equal has σ = 0 and μ equal
    to that value exactly. Values are rescaled by an exact power of two first, so neither
    huge nor tiny magnitudes overflow or underflow (:func:`row_moments`).

    Each channel is computed on its own by :func:`row_moments`, so a per-channel result is
    bit-for-bit the result for that channel's slice.

    Parameters
    ----------
    weights : numpy.ndarray
        Finite, non-empty float32 or float64 values (the public :func:`ul2q_ref.moments`
        checks this).
    axis : int or None
        The channel axis in ``0..ndim-1``: one (μ, σ) per index along it, each over all the
        other axes; None gives one (μ, σ) for the whole tensor.

    Returns
    -------
    mean, std : numpy.ndarray
        float64 vectors with one entry per channel (length 1 for ``axis=None``).
    """
    assert weights.dtype in (np.float32, np.float64) and weights.size > 0
    rows = as_rows(weights, axis)
    means = np.empty(rows.shape[0])
    stds = np.empty(rows.shape[0])
    for channel, row in enumerate(rows):
        means[channel], stds[channel] = row_moments(np.ascontiguousarray(row, dtype=np.float64))
    return means, stds


def row_moments(values: np.ndarray) -> tuple[float, float]:
    r"""μ and σ of a one-dimensional float64 array by the corrected two-pass algorithm.

    The values are first rescaled by a power of two, 2^(−e) with e the binary exponent of
    max|w| (``numpy.frexp``/``numpy.ldexp``), so that the largest magnitude lies in [½, 1):
    the sums can then neither overflow (1e308 values) nor underflow when squared (1e-300
    values), and since a power-of-two scaling is exact, the result is otherwise bit-for-bit
    the unscaled computation. Sums are NumPy's pairwise sums.
    """
    if values[0] == values.min() == values.max():
        return float(values[0]), 0.0
    _, exponent = np.frexp(np.abs(values).max())
    scaled = np.ldexp(values, -exponent)
    count = scaled.size
    mean = scaled.sum() / count
    deviations = scaled - mean
    sum_of_squares = (deviations * deviations).sum()
    deviation_sum = deviations.sum()
    correction = deviation_sum * deviation_sum / count  # x*x, not pow(x, 2): portable
    variance = max(sum_of_squares - correction, 0.0) / count
    return float(np.ldexp(mean, exponent)), float(np.ldexp(np.sqrt(variance), exponent))
