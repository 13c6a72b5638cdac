r"""The ``"caffe"`` profile: the float32 arithmetic of the published Caffe implementation.

``caffe_cpu_meanstd``, ``Blob::ulq_weights`` and ``caffe_cpu_ulq`` of the fork
GongCheng1919/uL2Q, element for element (:func:`statistics`, :func:`encode`,
:func:`decode`). With f32(·) rounding to float32 and d(·) widening to double, ⊕ and ⊗
float32 addition and multiplication. Its reconstruction divides by the stored reciprocal
r = f32(1/α), which no affine code book α(q − z) + β reproduces bit for bit, so its ŵ comes
from :func:`decode`.

The Caffe code keeps one (α, μ) per blob; the public ``quantize(..., profile="caffe")``
therefore refuses an ``axis``. The conformance vectors also hold per-channel cases that
apply this arithmetic to each channel as if it were a blob (docs/crosscheck.md).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._channels import as_rows, broadcastable
from ..codebook import ZERO_POINT, code_dtype, code_range
from ..ul2q import Statistics as ProfileStatistics

LAMBDA_TABLE = (
    1.5950161625215948,
    0.99529008541347519,
    0.5872211503939504,
    0.3358904980253396,
    0.18944224088629152,
    0.10570877041455067,
    0.057082736023857356,
    0.030482181036739827,
)
"""``lambdalist`` of the Caffe source (double literals, k = 1..8): not the paper's Table I."""

RANGE_SIGMAS = 6.2
"""Above 8 bits Caffe uses λ = (2·3.1·σ)/(2^k − 1): a ±3.1σ range instead of max − min."""

ALPHA_EPSILON = 1e-7
"""The double constant the Caffe code adds to α = λσ: ``alpha_=lambdak*alpha_+1e-7``.

It is in the published source: GongCheng1919/uL2Q commit d68322b ("Update blob.cpp"),
``src/caffe/blob.cpp``, and the same line in Quantization-caffe commit b556d09."""


class NegativeVarianceWarning(RuntimeWarning):
    """The Caffe profile's one-pass variance E[w²] − μ² rounded to a negative number.

    σ = sqrt(negative) is NaN, and so are α and every reconstructed value of that channel,
    exactly as in the Caffe implementation. It happens for constant or nearly constant
    tensors and for tensors whose squares underflow (subnormal weights).
    """


def prepare(weights: np.ndarray) -> np.ndarray:
    """Validated weights as a Caffe float blob holds them: float32.

    A float64 tensor is rounded to float32 value by value, as loading double data into a
    ``Blob<float>`` does (``Blob::FromProto``); values beyond the float32 range are rejected.
    """
    if weights.dtype == np.float32:
        return weights
    with np.errstate(over="ignore"):
        rounded = weights.astype(np.float32)
    if not np.all(np.isfinite(rounded)):
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(rounded))[0])
        value = weights[first] if first else weights[()]
        raise ValueError(
            f"w holds {value} (at index {first}), which overflows float32; "
            "the caffe profile computes in float32"
        )
    return rounded


def sequential_sum(rows: np.ndarray) -> np.ndarray:
    """Left-to-right float32 sums of each row, starting from +0.0 like ``float total = 0.0``.

    ``numpy.add.accumulate`` runs the additions strictly in order (``numpy.sum`` would sum
    pairwise); the leading zero column makes a sum of −0.0 values +0.0, as in C.
    """
    start = np.zeros((rows.shape[0], 1), dtype=np.float32)
    return np.add.accumulate(np.concatenate([start, rows], axis=1), axis=1,
                             dtype=np.float32)[:, -1]


def row_statistics(rows: np.ndarray, bits: int) -> ProfileStatistics:
    r"""The Caffe statistics step (``caffe_cpu_meanstd`` then ``Blob::ulq_weights``).

    For each row of n float32 values (a blob):

    .. math::
        s &= w_1 ⊕ w_2 ⊕ \dots ⊕ w_n \quad\text{(float32, left to right)} \\
        μ &= f32(s / n), \qquad e_2 = (w_1 ⊗ w_1) ⊕ \dots ⊕ (w_n ⊗ w_n) \\
        σ &= f32\big(\sqrt{d(f32(e_2/n)) - d(μ)^2}\big) \\
        λ &= f32(T_k) \ (k ≤ 8), \qquad λ = f32\big(6.2\,d(σ)/(2^k - 1)\big) \ (k > 8) \\
        α &= f32\big(d(f32(λ σ)) + 10^{-7}\big), \qquad β = μ

    The sum s is strictly sequential, as in the Caffe loop. Caffe computes e₂ with BLAS
    ``cblas_sdot``, whose summation order is the BLAS library's: this profile follows the
    reference BLAS (netlib) order, left to right, each product rounded to float32, no fused
    multiply-add. Caffe built against OpenBLAS or ATLAS sums in other (blocked, vectorised)
    orders and can differ from this profile in the last bits of σ. n is converted to
    float32 as C++ does (exact for n ≤ 2^24). T is :data:`LAMBDA_TABLE`. Above 8 bits σ
    enters α twice (α ∝ σ²): a defect reproduced on purpose. If the variance rounds to a
    negative number, σ, α and every ŵ of that row are NaN, and
    :class:`NegativeVarianceWarning` is issued.

    Parameters
    ----------
    rows : numpy.ndarray
        ``(channels, n)`` float32 values (other dtypes are rounded to float32).
    bits : int
        The bit width k.
    """
    rows = np.asarray(rows, dtype=np.float32)
    count = np.float32(rows.shape[1])
    with np.errstate(all="ignore"):
        total = sequential_sum(rows)
        mean = total / count
        sum_of_squares = sequential_sum(rows * rows)
        variance = (sum_of_squares / count).astype(np.float64) - mean.astype(np.float64) ** 2
        std = np.sqrt(variance).astype(np.float32)
        if bits <= 8:
            lam = np.full(mean.shape, np.float32(LAMBDA_TABLE[bits - 1]))
        else:
            lam = (RANGE_SIGMAS * std.astype(np.float64)
                   / (2.0**bits - 1.0)).astype(np.float32)
        alpha = ((lam * std).astype(np.float64) + ALPHA_EPSILON).astype(np.float32)
    negative = np.flatnonzero(variance < 0)
    if negative.size:
        warnings.warn(
            f"caffe profile: the one-pass variance E[w²] − μ² rounded to a negative value "
            f"({variance[negative[0]]:.3g}) in {negative.size} of {variance.size} channel(s) "
            f"(first: {negative[0]}); σ, α and the reconstruction are NaN there, as in the "
            "Caffe implementation",
            NegativeVarianceWarning,
            stacklevel=4,
        )

    def as64(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    return ProfileStatistics(as64(mean), as64(std), as64(lam), as64(alpha), as64(mean))


def statistics(weights: np.ndarray, bits: int, axis: int | None, kernels: Any = None
               ) -> ProfileStatistics:
    """:func:`row_statistics` of each channel of float32 `weights` (no compiled kernels)."""
    return row_statistics(as_rows(weights, axis), bits)


def encode_with_values(
    weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int, axis: int | None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Caffe's code rule (``caffe_cpu_ulq``) for a code book α, β = μ (float32 values).

    .. math::
        r &= f32(1/α) \\
        y &= \mathrm{clip}\big(f32(d(f32(f32(w - μ) ⊗ r)) + 0.5),\ 1 - 2^{k-1},\ 2^{k-1}\big) \\
        q &= \lfloor d(y) + 0.5 \rfloor \text{ if } y > 0 \text{ else } \lceil d(y) - 0.5 \rceil

    A reciprocal multiply instead of the reference's division, and C ``round`` (half away
    from zero) of y = t + ½ with t = (w − μ)·r: for t ≥ 0 this is ⌊t⌋ + 1 like the
    reference, but a t that is exactly a negative integer goes to the *lower* cell (y = −½
    rounds to −1). NaN codes (NaN α) are returned as 0.

    Returns
    -------
    codes, y : numpy.ndarray
        The integer codes and the float64 values q before conversion (NaN kept).
    """
    lowest, highest = code_range(bits)
    values = np.asarray(weights, dtype=np.float32)
    alpha32 = broadcastable(alpha, values.ndim, axis).astype(np.float32)
    mean32 = broadcastable(beta, values.ndim, axis).astype(np.float32)
    with np.errstate(all="ignore"):
        reciprocal = (1.0 / alpha32.astype(np.float64)).astype(np.float32)
        scaled = (values - mean32) * reciprocal
        y = (scaled.astype(np.float64) + ZERO_POINT).astype(np.float32)
        y = np.where(y > np.float32(highest), np.float32(highest), y)
        y = np.where(y < np.float32(lowest), np.float32(lowest), y)
        wide = y.astype(np.float64)
        rounded = np.where(y > 0, np.floor(wide + 0.5), np.ceil(wide - 0.5))
    codes = np.where(np.isnan(rounded), 0.0, rounded).astype(code_dtype(bits))
    return codes, rounded


def encode(weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
           axis: int | None, kernels: Any = None) -> np.ndarray:
    """The codes of :func:`encode_with_values` (0 where α is NaN)."""
    return encode_with_values(weights, alpha, beta, bits, axis)[0]


def decode(codes: np.ndarray, alpha: np.ndarray, beta: np.ndarray, zero_point: float,
           axis: int | None, dtype: Any, kernels: Any = None) -> np.ndarray:
    r"""Caffe's reconstruction: ŵ = f32((d(q) − ½)/d(r) + d(μ)), r = f32(1/α), then `dtype`.

    The division by the stored reciprocal is not the affine α(q − ½) + β: 1/r differs from α
    in the last bits, so this is the only way to reproduce Caffe's ŵ bit for bit. NaN α
    gives NaN everywhere. (z is always ½ here.)
    """
    codes = np.asarray(codes)
    alpha32 = broadcastable(alpha, codes.ndim, axis).astype(np.float32)
    mean32 = broadcastable(beta, codes.ndim, axis).astype(np.float32)
    with np.errstate(all="ignore"):
        reciprocal = (1.0 / alpha32.astype(np.float64)).astype(np.float32)
        value = ((codes.astype(np.float64) - ZERO_POINT) / reciprocal.astype(np.float64)
                 + mean32.astype(np.float64))
    return value.astype(np.float32).astype(dtype, copy=False)
