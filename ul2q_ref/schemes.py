r"""The paper's comparison schemes, as affine code books ŵ = α·(q − z) + β with z = β = 0.

Each function returns a :class:`~ul2q_ref.codebook.Quantized`, so the same decoder, export
format and cross-checks serve them and μL2Q alike. With ``axis`` each channel gets its own α.
Rounding to nearest is half away from zero throughout (C's ``round``, as in Caffe and
Ristretto): round(x) = sign(x)·⌊|x| + ½⌋.

Sources
-------
binary
    BWN, "XNOR-Net" (Rastegari et al., ECCV 2016): q = sign(w), α = E|w|.
ternary
    TWN, "Ternary Weight Networks" (Li, Zhang & Liu, 2016): Δ = 0.7·E|w|,
    q ∈ {−1, 0, 1}, α = E[|w| : |w| > Δ].
fixed_point
    Dynamic fixed point, as in Ristretto (Gysel et al., 2016) and the μL2Q paper's
    comparison: a power-of-two step chosen from the largest magnitude.
clip
    Symmetric linear quantisation to ±max|w|.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import ul2q
from ._channels import as_rows, broadcastable, per_channel_result
from ._validate import as_weights, check_axis, check_bits, output_dtype
from .codebook import Quantized, storage_dtype


def _prepare(w: Any, axis: Any) -> tuple[np.ndarray, int | None, np.ndarray]:
    """Validated weights, the channel axis, and the weights as float64 rows per channel."""
    weights = as_weights(w)
    channel_axis = check_axis(axis, weights.ndim)
    return weights, channel_axis, as_rows(weights, channel_axis).astype(np.float64)


def _result(
    w: Any,
    weights: np.ndarray,
    codes: np.ndarray,
    alpha: np.ndarray,
    bits: int,
    axis: int | None,
    scheme: str,
) -> Quantized:
    zero = np.zeros_like(alpha)
    return Quantized(
        codes=codes,
        alpha=per_channel_result(alpha, axis),
        beta=per_channel_result(zero, axis),
        zero_point=0.0,
        bits=bits,
        lam=None,
        axis=axis,
        scheme=scheme,
        dtype=output_dtype(weights, w),
    )


def per_row(rows: np.ndarray, statistic: Callable[[np.ndarray], float]) -> np.ndarray:
    """`statistic` of each row, one row at a time.

    Summing a 2-D array along an axis may group the additions differently from summing one
    row, so each channel's statistic is computed on its own 1-D row: a per-channel result is
    then bit for bit the result for that channel's slice.
    """
    return np.array([statistic(np.ascontiguousarray(row)) for row in rows], dtype=np.float64)


def mean_magnitude(values: np.ndarray) -> float:
    """E|w| of a 1-D float64 array."""
    return float(np.abs(values).mean())


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero: sign(x)·⌊|x| + ½⌋."""
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def binary(w: Any, bits: int = 1, *, axis: int | None = None) -> Quantized:
    r"""Binary weights (BWN): q = sign(w) with sign(0) = +1, α = mean|w|, ŵ = α q.

    α = E|w| minimises ‖w − α·sign(w)‖² (Rastegari et al., 2016).

    Parameters
    ----------
    w : array_like
        Real weights; not modified.
    bits : int
        Must be 1 (accepted so that every scheme has the same signature).
    axis : int, optional
        Channel axis for a per-channel α.
    """
    if check_bits(bits) != 1:
        raise ValueError(f"bits must be 1 for the binary scheme, got {bits}")
    weights, axis, rows = _prepare(w, axis)
    alpha = per_row(rows, mean_magnitude)
    codes = np.where(weights >= 0, 1, -1).astype(np.int8)
    return _result(w, weights, codes, alpha, 1, axis, "binary")


def ternary(w: Any, bits: int = 2, *, axis: int | None = None) -> Quantized:
    r"""Ternary weights (TWN): q ∈ {−1, 0, 1} with threshold Δ = 0.7·E|w|, ŵ = α q.

    .. math::
        q = \begin{cases} +1 & w > Δ \\ 0 & |w| \le Δ \\ -1 & w < -Δ \end{cases},
        \qquad α = \frac{\sum_{|w_i| > Δ} |w_i|}{\#\{i : |w_i| > Δ\}}

    Li, Zhang & Liu (2016) derive Δ ≈ 0.7·E|w| for normal weights; α is then the optimal
    scale for the chosen support. A channel with no value beyond Δ (all zeros) has α = 0.

    Parameters
    ----------
    w : array_like
        Real weights; not modified.
    bits : int
        Must be 2 (the codes need two bits).
    axis : int, optional
        Channel axis for per-channel Δ and α.
    """
    if check_bits(bits) != 2:
        raise ValueError(f"bits must be 2 for the ternary scheme, got {bits}")
    weights, axis, rows = _prepare(w, axis)
    threshold = 0.7 * per_row(rows, mean_magnitude)
    alpha = np.array([_ternary_scale(row, delta) for row, delta in zip(rows, threshold,
                                                                       strict=True)])
    delta = broadcastable(threshold, weights.ndim, axis)
    values = weights.astype(np.float64)
    codes = (values > delta).astype(np.int8) - (values < -delta).astype(np.int8)
    return _result(w, weights, codes, alpha, 2, axis, "ternary")


def _ternary_scale(values: np.ndarray, threshold: float) -> float:
    """Mean of |w| over the values beyond the threshold (0 when there are none)."""
    beyond = np.abs(values[np.abs(values) > threshold])
    return float(beyond.mean()) if beyond.size else 0.0


def power_of_two_step(largest: np.ndarray, bits: int) -> np.ndarray:
    r"""Dynamic fixed point's step α = 2^(⌊log₂ max|w|⌋ − (k − 2)); 0 where max|w| = 0.

    The fractional length is fl = (k − 2) − ⌊log₂ max|w|⌋ and α = 2^(−fl): the integer part
    gets just enough bits for the largest magnitude, max|w|/α ∈ [2^(k−2), 2^(k−1)), leaving
    the sign bit. ⌊log₂ x⌋ is read exactly off the binary exponent (``numpy.frexp``).
    """
    mantissa, exponent = np.frexp(largest)  # largest = mantissa·2^exponent, mantissa ∈ [½, 1)
    step = np.ldexp(1.0, (exponent - 1) - (bits - 2))
    return np.where(largest > 0, step, 0.0)


def fixed_point(w: Any, bits: int, *, axis: int | None = None) -> Quantized:
    r"""Dynamic fixed point with k bits: q = clip(round(w/α), −2^(k−1), 2^(k−1) − 1), ŵ = α q.

    α is the power of two of :func:`power_of_two_step`. Codes are two's complement k-bit
    integers; values beyond the range saturate.

    Parameters
    ----------
    w : array_like
        Real weights; not modified.
    bits : int
        The bit width k, 1 to 16 (k = 1 leaves only the codes −1 and 0).
    axis : int, optional
        Channel axis for a per-channel step.
    """
    bits = check_bits(bits)
    weights, axis, rows = _prepare(w, axis)
    alpha = power_of_two_step(np.abs(rows).max(axis=1), bits)
    lowest, highest = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes = _round_and_clip(weights, alpha, axis, lowest, highest)
    return _result(w, weights, codes, alpha, bits, axis, "fixed_point")


def clip(w: Any, bits: int, *, axis: int | None = None) -> Quantized:
    r"""Symmetric linear quantisation: α = max|w|/(2^(k−1) − 1), q = round(w/α), ŵ = α q.

    The scale (2^(k−1) − 1)/max|w| maps the largest magnitude onto the largest code, so
    nothing is clipped and the codes are symmetric, {−(2^(k−1) − 1), …, 2^(k−1) − 1}.
    An all-zero channel has α = 0.

    Parameters
    ----------
    w : array_like
        Real weights; not modified.
    bits : int
        The bit width k, 2 to 16 (one bit leaves no nonzero symmetric level).
    axis : int, optional
        Channel axis for a per-channel α.
    """
    bits = check_bits(bits, low=2)
    weights, axis, rows = _prepare(w, axis)
    levels = 2 ** (bits - 1) - 1
    alpha = np.abs(rows).max(axis=1) / levels
    codes = _round_and_clip(weights, alpha, axis, -levels, levels)
    return _result(w, weights, codes, alpha, bits, axis, "clip")


def _round_and_clip(
    weights: np.ndarray, alpha: np.ndarray, axis: int | None, lowest: int, highest: int
) -> np.ndarray:
    """clip(round(w/α), lowest, highest) in float64, with code 0 where α = 0."""
    scale = broadcastable(alpha, weights.ndim, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        codes = np.clip(round_half_away(weights.astype(np.float64) / scale), lowest, highest)
    codes = np.where(scale == 0.0, 0.0, codes)
    return codes.astype(storage_dtype(lowest, highest))


def ul2q_scheme(w: Any, bits: int, *, axis: int | None = None) -> Quantized:
    """μL2Q itself (:func:`ul2q_ref.quantize`), with the same signature as the schemes here."""
    return ul2q.quantize(w, bits, axis=axis)


SCHEMES: dict[str, Callable[..., Quantized]] = {
    "ul2q": ul2q_scheme,
    "binary": binary,
    "ternary": ternary,
    "fixed_point": fixed_point,
    "clip": clip,
}
"""Every scheme by name; each is called as ``SCHEMES[name](w, bits, axis=axis)``."""


def quantize_with(scheme: str, w: Any, bits: int, *, axis: int | None = None) -> Quantized:
    """Quantise `w` with the scheme called `scheme` (a key of :data:`SCHEMES`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    return SCHEMES[scheme](w, bits, axis=axis)
