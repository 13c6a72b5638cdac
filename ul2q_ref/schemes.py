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

Each scheme is one :class:`Scheme` record: its statistics step (α, β and, for ternary, the
threshold Δ, one per channel), its encode step (the codes for given parameters), its zero
point and its bit range. The steps take validated input; the functions at the end of this
module (:func:`binary`, :func:`ternary`, :func:`fixed_point`, :func:`clip`) check what users
pass and run them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import ul2q
from ._channels import as_rows, broadcastable
from ._validate import as_weights, check_axis, check_bits, output_dtype
from .codebook import (
    CODE_FORMATS,
    CodeFormat,
    Quantized,
    clip_range,
    fixed_point_range,
    public_parameter,
    storage_dtype,
)


class SchemeStatistics(NamedTuple):
    """A scheme's code book parameters, one float64 entry per channel."""

    alpha: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray | None
    """Ternary's Δ; None for the other schemes."""


@dataclass(frozen=True)
class Scheme:
    """One quantisation scheme as the steps every conformance case is split into.

    Attributes
    ----------
    name : str
        The scheme's name (a key of :data:`SCHEMES`).
    statistics : callable
        ``(weights, bits, axis) -> SchemeStatistics``.
    encode : callable
        ``(weights, statistics, bits, axis) -> codes``.
    uses_kernels : bool
        Whether the compiled kernels compute its steps (μL2Q only).

    Its code format — bit widths, code range, zero point — is
    :data:`ul2q_ref.codebook.CODE_FORMATS` ``[name]`` (:attr:`code_format`).
    """

    name: str
    statistics: Callable[[np.ndarray, int, int | None], SchemeStatistics]
    encode: Callable[[np.ndarray, SchemeStatistics, int, int | None], np.ndarray]
    uses_kernels: bool = False

    @property
    def code_format(self) -> CodeFormat:
        """The scheme's bit widths, code range and zero point."""
        return CODE_FORMATS[self.name]

    @property
    def zero_point(self) -> float:
        """z of the reconstruction ŵ = α(q − z) + β."""
        return self.code_format.zero_point

    @property
    def bits(self) -> tuple[int, int]:
        """The bit widths the scheme accepts, (lowest, highest)."""
        return self.code_format.bits


def per_row(rows: np.ndarray, statistic: Callable[[np.ndarray], float]) -> np.ndarray:
    """`statistic` of each row, one row at a time.

    Summing a 2-D array along an axis may group the additions differently from summing one
    row, so each channel's statistic is computed on its own 1-D row: a per-channel result is
    then bit for bit the result for that channel's slice.
    """
    return np.array([statistic(np.ascontiguousarray(row)) for row in rows], dtype=np.float64)


def _rows(weights: np.ndarray, axis: int | None) -> np.ndarray:
    return as_rows(weights, axis).astype(np.float64)


def mean_magnitude(values: np.ndarray) -> float:
    """E|w| of a 1-D float64 array, without overflow.

    The plain mean is used whenever its sum is finite (every ordinary input, so results are
    unchanged); a sum that overflows (values near ±1.8e308) is redone as m·E[|w|/m] with
    m = max|w|, which cannot overflow.
    """
    magnitudes = np.abs(values)
    with np.errstate(over="ignore"):
        mean = float(magnitudes.mean())
    if math.isfinite(mean):
        return mean
    largest = float(magnitudes.max())
    return largest * float((magnitudes / largest).mean())


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero: sign(x)·⌊|x| + ½⌋."""
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def _no_offset(alpha: np.ndarray, threshold: np.ndarray | None = None) -> SchemeStatistics:
    return SchemeStatistics(alpha, np.zeros_like(alpha), threshold)


# --------------------------------------------------------------------------- binary (BWN)


def binary_statistics(weights: np.ndarray, bits: int, axis: int | None) -> SchemeStatistics:
    """α = E|w| per channel: it minimises ‖w − α·sign(w)‖² (Rastegari et al., 2016)."""
    return _no_offset(per_row(_rows(weights, axis), mean_magnitude))


def binary_encode(weights: np.ndarray, stats: SchemeStatistics, bits: int,
                  axis: int | None) -> np.ndarray:
    """q = sign(w), with sign(0) = +1."""
    return np.where(weights >= 0, 1, -1).astype(np.int8)


# --------------------------------------------------------------------------- ternary (TWN)


def ternary_threshold(weights: np.ndarray, axis: int | None) -> np.ndarray:
    """Δ = 0.7·E|w| per channel (Li, Zhang & Liu, 2016: Δ ≈ 0.7·E|w| for normal weights)."""
    return 0.7 * per_row(_rows(weights, axis), mean_magnitude)


def ternary_statistics(weights: np.ndarray, bits: int, axis: int | None) -> SchemeStatistics:
    r"""Δ, and α = mean of |w| over the values beyond Δ per channel (0 when there are none).

    .. math::
        α = \frac{\sum_{|w_i| > Δ} |w_i|}{\#\{i : |w_i| > Δ\}}
    """
    threshold = ternary_threshold(weights, axis)
    alpha = np.array([_ternary_scale(row, delta) for row, delta in
                      zip(_rows(weights, axis), threshold, strict=True)])
    return _no_offset(alpha, threshold)


def _ternary_scale(values: np.ndarray, threshold: float) -> float:
    """Mean of |w| over the values beyond the threshold (0 when there are none)."""
    beyond = values[np.abs(values) > threshold]
    return mean_magnitude(beyond) if beyond.size else 0.0


def ternary_encode(weights: np.ndarray, stats: SchemeStatistics, bits: int,
                   axis: int | None) -> np.ndarray:
    """q = [w > Δ] − [w < −Δ] ∈ {−1, 0, 1}."""
    assert stats.threshold is not None
    delta = broadcastable(stats.threshold, weights.ndim, axis)
    values = weights.astype(np.float64)
    return (values > delta).astype(np.int8) - (values < -delta).astype(np.int8)


# --------------------------------------------------------------------------- fixed point, clip


def power_of_two_step(largest: np.ndarray, bits: int) -> np.ndarray:
    r"""Dynamic fixed point's step α = 2^(⌊log₂ max|w|⌋ − (k − 2)); 0 where max|w| = 0.

    The fractional length is fl = (k − 2) − ⌊log₂ max|w|⌋ and α = 2^(−fl): the integer part
    gets just enough bits for the largest magnitude, max|w|/α ∈ [2^(k−2), 2^(k−1)), leaving
    the sign bit. ⌊log₂ x⌋ is read exactly off the binary exponent (``numpy.frexp``).
    """
    mantissa, exponent = np.frexp(largest)  # largest = mantissa·2^exponent, mantissa ∈ [½, 1)
    step = np.ldexp(1.0, (exponent - 1) - (bits - 2))
    return np.where(largest > 0, step, 0.0)


def fixed_point_statistics(weights: np.ndarray, bits: int, axis: int | None
                           ) -> SchemeStatistics:
    """α = :func:`power_of_two_step` of max|w| per channel."""
    return _no_offset(power_of_two_step(np.abs(_rows(weights, axis)).max(axis=1), bits))


def clip_statistics(weights: np.ndarray, bits: int, axis: int | None) -> SchemeStatistics:
    """α = max|w|/(2^(k−1) − 1) per channel (0 for an all-zero channel)."""
    return _no_offset(np.abs(_rows(weights, axis)).max(axis=1) / clip_range(bits)[1])


def round_and_clip(weights: np.ndarray, alpha: np.ndarray, axis: int | None, lowest: int,
                   highest: int) -> np.ndarray:
    """clip(round(w/α), lowest, highest) in float64, with code 0 where α = 0."""
    scale = broadcastable(alpha, weights.ndim, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        codes = np.clip(round_half_away(weights.astype(np.float64) / scale), lowest, highest)
    codes = np.where(scale == 0.0, 0.0, codes)
    return codes.astype(storage_dtype(lowest, highest))


def fixed_point_encode(weights: np.ndarray, stats: SchemeStatistics, bits: int,
                       axis: int | None) -> np.ndarray:
    """q = clip(round(w/α), −2^(k−1), 2^(k−1) − 1): values beyond the range saturate."""
    return round_and_clip(weights, stats.alpha, axis, *fixed_point_range(bits))


def clip_encode(weights: np.ndarray, stats: SchemeStatistics, bits: int,
                axis: int | None) -> np.ndarray:
    """q = round(w/α): nothing is clipped, the codes are symmetric."""
    return round_and_clip(weights, stats.alpha, axis, *clip_range(bits))


# --------------------------------------------------------------------------- μL2Q


def ul2q_statistics(weights: np.ndarray, bits: int, axis: int | None) -> SchemeStatistics:
    """μL2Q's statistics step (:func:`ul2q_ref.ul2q.statistics`): α = λ_k*σ, β = μ."""
    book = ul2q.statistics(weights, bits, axis)
    return SchemeStatistics(book.alpha, book.beta, None)


def ul2q_encode(weights: np.ndarray, stats: SchemeStatistics, bits: int,
                axis: int | None) -> np.ndarray:
    """μL2Q's encode step (:func:`ul2q_ref.ul2q.encode`)."""
    return ul2q.encode(weights, stats.alpha, stats.beta, bits, axis)


SCHEMES: dict[str, Scheme] = {
    "ul2q": Scheme("ul2q", ul2q_statistics, ul2q_encode, uses_kernels=True),
    "binary": Scheme("binary", binary_statistics, binary_encode),
    "ternary": Scheme("ternary", ternary_statistics, ternary_encode),
    "fixed_point": Scheme("fixed_point", fixed_point_statistics, fixed_point_encode),
    "clip": Scheme("clip", clip_statistics, clip_encode),
}
"""Every scheme's record, by name."""


def result(record: Scheme, weights: np.ndarray, bits: int, axis: int | None,
           dtype: np.dtype) -> Quantized:
    """Run `record`'s two steps on validated `weights`: the :class:`Quantized` result."""
    stats = record.statistics(weights, bits, axis)
    return Quantized(
        codes=record.encode(weights, stats, bits, axis),
        alpha=public_parameter(stats.alpha, axis),
        beta=public_parameter(stats.beta, axis),
        zero_point=record.zero_point,
        bits=bits,
        lam=None,
        axis=axis,
        scheme=record.name,
        dtype=np.dtype(dtype),
    )


# --------------------------------------------------------------------------- public functions


def get(scheme: Any) -> Scheme:
    """The record of `scheme`, after checking it is a key of :data:`SCHEMES`."""
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    return SCHEMES[scheme]


def check_scheme_bits(record: Scheme, bits: Any) -> int:
    """`bits` checked against the scheme's bit range, with the scheme's own message."""
    lowest, highest = record.bits
    if lowest == highest:
        value = check_bits(bits)
        if value != lowest:
            raise ValueError(f"bits must be {lowest} for the {record.name} scheme, got {bits}")
        return value
    return check_bits(bits, low=lowest, high=highest)


def _quantize(name: str, w: Any, bits: Any, axis: Any) -> Quantized:
    record = SCHEMES[name]
    if record.uses_kernels:  # μL2Q keeps its own result (λ, z = ½), checked as quantize is
        weights = as_weights(w)
        bits = check_bits(bits)
        channel_axis = check_axis(axis, weights.ndim)
        return ul2q.quantize(weights, bits, channel_axis, output_dtype(weights, w))
    bits = check_scheme_bits(record, bits)
    weights = as_weights(w)
    channel_axis = check_axis(axis, weights.ndim)
    return result(record, weights, bits, channel_axis, output_dtype(weights, w))


def binary(w: Any, bits: int = 1, *, axis: int | None = None) -> Quantized:
    r"""Binary weights (BWN): q = sign(w) with sign(0) = +1, α = mean|w|, ŵ = α q.

    Parameters
    ----------
    w : array_like
        Real weights; not modified.
    bits : int
        Must be 1 (accepted so that every scheme has the same signature).
    axis : int, optional
        Channel axis for a per-channel α.
    """
    return _quantize("binary", w, bits, axis)


def ternary(w: Any, bits: int = 2, *, axis: int | None = None) -> Quantized:
    r"""Ternary weights (TWN): q ∈ {−1, 0, 1} with threshold Δ = 0.7·E|w|, ŵ = α q.

    .. math::
        q = \begin{cases} +1 & w > Δ \\ 0 & |w| \le Δ \\ -1 & w < -Δ \end{cases},
        \qquad α = \frac{\sum_{|w_i| > Δ} |w_i|}{\#\{i : |w_i| > Δ\}}

    Li, Zhang & Liu (2016) derive Δ ≈ 0.7·E|w| for normal weights; α is then the optimal
    scale for the chosen support. A channel with no value beyond Δ (all zeros) has α = 0.
    Δ itself is :func:`ternary_threshold`.

    Parameters
    ----------
    w : array_like
        Real weights; not modified.
    bits : int
        Must be 2 (the codes need two bits).
    axis : int, optional
        Channel axis for per-channel Δ and α.
    """
    return _quantize("ternary", w, bits, axis)


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
    return _quantize("fixed_point", w, bits, axis)


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
    return _quantize("clip", w, bits, axis)


def ul2q_scheme(w: Any, bits: int, *, axis: int | None = None) -> Quantized:
    """μL2Q itself (:func:`ul2q_ref.quantize`, reference), with the schemes' signature."""
    return _quantize("ul2q", w, bits, axis)


QUANTIZERS: dict[str, Callable[..., Quantized]] = {
    "ul2q": ul2q_scheme,
    "binary": binary,
    "ternary": ternary,
    "fixed_point": fixed_point,
    "clip": clip,
}
"""Every scheme's checked function by name, called as ``QUANTIZERS[name](w, bits, axis=axis)``."""


def quantize_with(scheme: str, w: Any, bits: int, *, axis: int | None = None) -> Quantized:
    """Quantise `w` with the scheme called `scheme` (a key of :data:`SCHEMES`)."""
    get(scheme)
    return QUANTIZERS[scheme](w, bits, axis=axis)
