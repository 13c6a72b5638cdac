r"""Profiles: the λ source and the arithmetic that a μL2Q implementation follows.

The reference (``profile="exact"``) is the definition of docs/spec.md: float64 statistics by
the corrected two-pass algorithm, the exact optimal step λ_k*, and the code rule
q = clip(⌊(w − β)/α⌋ + 1, 1 − 2^(k−1), 2^(k−1)) with a true division. Two other profiles are
*specifications of other implementations' arithmetic*, so that their results can be checked
bit for bit against this package (docs/crosscheck.md lists the defects they reproduce):

``"paper"``
    The paper's Table I λ for k ≤ 8 (:data:`ul2q_ref.gaussian.PAPER_TABLE_I`) and, above
    8 bits, Algorithm 1's range rule **as written**: the step is
    λ = (max w − min w)/(2^k − 1) and the scale is again α = λ·σ. The range max − min is
    already in the units of w (it contains σ), so σ enters twice and α = σ·range/(2^k − 1)
    is not scale invariant — a defect reproduced on purpose. (The reading that makes sense,
    λ = (max φ − min φ)/(2^k − 1) with φ = (w − μ)/σ, would give α = range/(2^k − 1).)
    Statistics, code rule and decoding are those of ``"exact"``.

``"caffe"``
    The float32 arithmetic of the published Caffe implementation (``caffe_cpu_meanstd``,
    ``Blob::ulq_weights`` and ``caffe_cpu_ulq``), element for element; see
    :func:`caffe_statistics`, :func:`caffe_encode` and :func:`caffe_decode`. Its
    reconstruction divides by the stored reciprocal r = f32(1/α), which no affine code book
    α(q − z) + β reproduces bit for bit, so its ŵ comes from :func:`caffe_decode`
    (:func:`dequantize` and the result's ``dequantize`` method use it).

Every profile's NumPy code here is its definition; the compiled kernels of
:mod:`ul2q_ref.backends` serve only ``"exact"``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._channels import as_rows, broadcastable, per_channel_result
from ._validate import as_weights, check_axis, check_bits, output_dtype
from .codebook import Quantized, code_dtype, code_range, reference_decode
from .gaussian import PAPER_TABLE_I, expected_loss, optimal_lambda
from .stats import reference_moments
from .ul2q import quantize as _quantize_exact
from .ul2q import reference_encode

PROFILES = ("exact", "paper", "caffe")
"""The profile names accepted by ``quantize(..., profile=...)``."""

ZERO_POINT = 0.5
"""μL2Q's levels sit at cell centres (the same z as :data:`ul2q_ref.ul2q.ZERO_POINT`)."""

CAFFE_LAMBDA_TABLE = (
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

CAFFE_RANGE_SIGMAS = 6.2
"""Above 8 bits Caffe uses λ = (2·3.1·σ)/(2^k − 1): a ±3.1σ range instead of max − min."""

CAFFE_ALPHA_EPSILON = 1e-7
"""The double constant the issue's reading of the Caffe source adds to α = λσ.

The revision of ``src/caffe/blob.cpp`` inspected while writing this (GongCheng1919/uL2Q,
commit c2f9c48) computes ``alpha_ = lambdak*alpha_`` without it; the profile follows the
issue's reading (docs/crosscheck.md, "Provenance")."""


class NegativeVarianceWarning(RuntimeWarning):
    """The Caffe profile's one-pass variance E[w²] − μ² rounded to a negative number.

    σ = sqrt(negative) is NaN, and so are α and every reconstructed value of that channel,
    exactly as in the Caffe implementation. It happens for constant or nearly constant
    tensors and for tensors whose squares underflow (subnormal weights).
    """


def check_profile(profile: Any) -> str:
    """Return `profile` after checking it is one of :data:`PROFILES`."""
    if not isinstance(profile, str) or profile not in PROFILES:
        choices = ", ".join(map(repr, PROFILES))
        raise ValueError(f"profile must be one of {choices}, got {profile!r}")
    return profile


@dataclass(frozen=True, eq=False)
class ProfileQuantized(Quantized):
    """A :class:`~ul2q_ref.codebook.Quantized` made under a non-exact profile.

    Same fields, plus :attr:`profile` and the profile's σ. Its :meth:`dequantize` decodes
    the way that profile does (:func:`dequantize`); for ``"caffe"`` this differs from the
    affine formula of :func:`ul2q_ref.dequantize` in the last bit, so decode it with the
    method or with :func:`ul2q_ref.profiles.dequantize`. ``lam`` is None when λ differs
    between channels (the range rules above 8 bits, per channel).
    """

    profile: str = "exact"
    std: Any = None

    def dequantize(self, dtype: Any = None, *, backend: str = "auto") -> np.ndarray:
        """The profile's reconstruction ŵ (``backend`` is accepted and ignored)."""
        return dequantize(self, dtype)


class ProfileStatistics(NamedTuple):
    """The statistics step of a profile, one value per channel (float64 arrays).

    For ``"caffe"`` every value is a float32 number stored exactly in float64 (NaN where the
    variance went negative).
    """

    mean: np.ndarray
    std: np.ndarray
    lam: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray


# --------------------------------------------------------------------------- public API


def quantize_with_profile(
    w: Any, bits: int, *, axis: int | None = None, profile: str = "exact"
) -> Quantized:
    """Quantise `w` under `profile`; ``"exact"`` is :func:`ul2q_ref.quantize` itself.

    Parameters
    ----------
    w : array_like
        Real weights; not modified.
    bits : int
        The bit width k, 1 to 16.
    axis : int, optional
        The channel axis (one statistics step per channel), or None.
    profile : {"exact", "paper", "caffe"}
        The λ source and arithmetic; see the module documentation.

    Returns
    -------
    Quantized
        A plain :class:`~ul2q_ref.codebook.Quantized` for ``"exact"``, else a
        :class:`ProfileQuantized`. Under ``"caffe"``, α and β are the float32 values Caffe
        computes (held exactly in float64) and codes are 0 where α is NaN.
    """
    profile = check_profile(profile)
    if profile == "exact":
        return _quantize_exact(w, bits, axis=axis)
    weights = as_weights(w)
    dtype = output_dtype(weights, w)
    weights = _as_profile_array(weights, profile)
    bits = check_bits(bits)
    channel_axis = check_axis(axis, weights.ndim)
    stats = statistics(weights, bits, channel_axis, profile, validated=True)
    codes = encode(weights, stats.alpha, stats.beta, bits, channel_axis, profile,
                   validated=True)
    lam = stats.lam
    common_lam = float(lam[0]) if np.all(lam == lam[0]) else None
    return ProfileQuantized(
        codes=codes,
        alpha=per_channel_result(stats.alpha, channel_axis),
        beta=per_channel_result(stats.beta, channel_axis),
        zero_point=ZERO_POINT,
        bits=bits,
        lam=common_lam,
        axis=channel_axis,
        scheme="ul2q",
        dtype=dtype,
        profile=profile,
        std=per_channel_result(stats.std, channel_axis),
    )


def fake_quantize_with_profile(
    w: Any, bits: int, *, axis: int | None = None, profile: str = "exact"
) -> np.ndarray:
    """The reconstruction ŵ of `w` under `profile`, with w's shape and float dtype."""
    return dequantize(quantize_with_profile(w, bits, axis=axis, profile=profile))


def dequantize(quantized: Quantized, dtype: Any = None) -> np.ndarray:
    r"""Decode `quantized` the way its profile does.

    ``"exact"`` and ``"paper"``: ŵ = α(q − ½) + β in float64, rounded once to `dtype`.
    ``"caffe"``: ŵ = f32((d(q) − ½)/d(r) + d(μ)) with r = f32(1/α) (:func:`caffe_decode`),
    then converted to `dtype`. A plain :class:`~ul2q_ref.codebook.Quantized` is decoded as
    ``"exact"``.
    """
    if not isinstance(quantized, Quantized):
        raise TypeError(f"quantized must be a Quantized, got {type(quantized).__name__}")
    out_dtype = np.dtype(quantized.dtype if dtype is None else dtype)
    if out_dtype.kind != "f":
        raise TypeError(f"dtype must be a float dtype, got {out_dtype}")
    profile = getattr(quantized, "profile", "exact")
    return decode(quantized.codes, quantized.alpha, quantized.beta, quantized.axis,
                  out_dtype, profile, zero_point=quantized.zero_point)


def statistics(
    w: Any, bits: int, axis: int | None, profile: str, *, validated: bool = False
) -> ProfileStatistics:
    r"""The statistics step of `profile`: μ, σ, λ, α and β per channel.

    ``"exact"``: μ, σ by :func:`ul2q_ref.stats.reference_moments`, λ = λ_k*, α = λσ, β = μ.
    ``"paper"``: the same μ, σ; λ from Table I for k ≤ 8, else λ = (max − min)/(2^k − 1)
    per channel (:func:`paper_lambda`); α = λσ, β = μ. ``"caffe"``:
    :func:`caffe_statistics`.
    """
    profile = check_profile(profile)
    if validated:
        weights = w
    else:
        weights = _profile_weights(w, profile)
        bits = check_bits(bits)
        axis = check_axis(axis, weights.ndim)
    if profile == "caffe":
        return caffe_statistics(as_rows(weights, axis), bits)
    mean, std = reference_moments(weights, axis)
    mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    std = np.atleast_1d(np.asarray(std, dtype=np.float64))
    if profile == "exact":
        lam = np.full(mean.shape, optimal_lambda(bits))
    elif bits in PAPER_TABLE_I:
        lam = np.full(mean.shape, paper_lambda(bits))
    else:
        rows = as_rows(weights, axis).astype(np.float64)
        lam = np.array([paper_lambda(bits, row.max() - row.min()) for row in rows])
    return ProfileStatistics(mean, std, lam, lam * std, mean)


def encode(
    w: Any,
    alpha: Any,
    beta: Any,
    bits: int,
    axis: int | None,
    profile: str,
    *,
    validated: bool = False,
) -> np.ndarray:
    """The encode step of `profile`: codes of `w` for a given code book (α, β per channel).

    ``"exact"`` and ``"paper"`` share the reference rule q = clip(⌊(w − β)/α⌋ + 1, …)
    (:func:`ul2q_ref.ul2q.reference_encode`); ``"caffe"`` is :func:`caffe_encode`, which
    returns codes 0 where α is NaN.
    """
    profile = check_profile(profile)
    if not validated:
        w = _profile_weights(w, profile)
        bits = check_bits(bits)
        axis = check_axis(axis, w.ndim)
    alpha = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    beta = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    if profile == "caffe":
        codes, _ = caffe_encode(w, alpha, beta, bits, axis)
        return codes
    return reference_encode(w, _scalar_or(alpha, axis), _scalar_or(beta, axis), bits, axis)


def decode(
    codes: np.ndarray,
    alpha: Any,
    beta: Any,
    axis: int | None,
    dtype: Any,
    profile: str,
    *,
    zero_point: float = ZERO_POINT,
) -> np.ndarray:
    """The reconstruction of `profile` for codes and a code book (α, β per channel).

    ``"exact"``, ``"paper"``: α(q − z) + β (:func:`ul2q_ref.codebook.reference_decode`);
    ``"caffe"``: :func:`caffe_decode` (z is always ½ there).
    """
    profile = check_profile(profile)
    if profile == "caffe":
        return caffe_decode(codes, alpha, beta, axis).astype(dtype, copy=False)
    return reference_decode(codes, _scalar_or(np.asarray(alpha, dtype=np.float64), axis),
                            _scalar_or(np.asarray(beta, dtype=np.float64), axis),
                            zero_point, axis, np.dtype(dtype))


def paper_lambda(bits: int, value_range: float | None = None) -> float:
    r"""The paper profile's λ: Table I for k ≤ 8, else Algorithm 1's range rule as written.

    .. math::
        λ_k = \frac{\max w - \min w}{2^k - 1} \quad (k > 8)

    `value_range` = max w − min w (in the units of w) is needed above 8 bits. The paper then
    multiplies by σ again (α = λσ); see the module documentation.
    """
    bits = check_bits(bits)
    if bits in PAPER_TABLE_I:
        return PAPER_TABLE_I[bits][0]
    if value_range is None:
        raise ValueError(f"the paper's λ for k = {bits} > 8 needs value_range = max − min")
    return float(value_range) / (2.0**bits - 1.0)


# --------------------------------------------------------------------------- Caffe


def caffe_statistics(rows: np.ndarray, bits: int) -> ProfileStatistics:
    r"""The Caffe statistics step (``caffe_cpu_meanstd`` then ``Blob::ulq_weights``).

    With f32(·) rounding to float32 and d(·) widening to double, for each row of n float32
    values (a channel, or the whole blob):

    .. math::
        s &= w_1 ⊕ w_2 ⊕ \dots ⊕ w_n \quad\text{(float32, left to right)} \\
        μ &= f32(s / n), \qquad e_2 = (w_1 ⊗ w_1) ⊕ \dots ⊕ (w_n ⊗ w_n) \\
        σ &= f32\big(\sqrt{d(f32(e_2/n)) - d(μ)^2}\big) \\
        λ &= f32(T_k) \ (k ≤ 8), \qquad λ = f32\big(6.2\,d(σ)/(2^k - 1)\big) \ (k > 8) \\
        α &= f32\big(d(f32(λ σ)) + 10^{-7}\big), \qquad β = μ

    ⊕ and ⊗ are float32 addition and multiplication. The sums are strictly sequential, as in
    the Caffe loop for s; Caffe computes e₂ with BLAS ``sdot``, whose order depends on the
    BLAS library: this profile uses the reference BLAS order (left to right, each product
    rounded to float32, no fused multiply-add). n is converted to float32 as C++ does
    (exact for n ≤ 2^24). T is :data:`CAFFE_LAMBDA_TABLE`. Above 8 bits σ enters α twice
    (α ∝ σ²): a defect reproduced on purpose. If the variance rounds to a negative number,
    σ, α and every ŵ of that row are NaN, and :class:`NegativeVarianceWarning` is issued.

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
        total = _sequential_sum(rows)
        mean = total / count
        sum_of_squares = _sequential_sum(rows * rows)
        variance = (sum_of_squares / count).astype(np.float64) - mean.astype(np.float64) ** 2
        std = np.sqrt(variance).astype(np.float32)
        if bits <= 8:
            lam = np.full(mean.shape, np.float32(CAFFE_LAMBDA_TABLE[bits - 1]))
        else:
            lam = (CAFFE_RANGE_SIGMAS * std.astype(np.float64)
                   / (2.0**bits - 1.0)).astype(np.float32)
        alpha = ((lam * std).astype(np.float64) + CAFFE_ALPHA_EPSILON).astype(np.float32)
    negative = np.flatnonzero(variance < 0)
    if negative.size:
        warnings.warn(
            f"caffe profile: the one-pass variance E[w²] − μ² rounded to a negative value "
            f"({variance[negative[0]]:.3g}) in {negative.size} of {variance.size} channel(s) "
            f"(first: {negative[0]}); σ, α and the reconstruction are NaN there, as in the "
            "Caffe implementation",
            NegativeVarianceWarning,
            stacklevel=3,
        )
    as64 = lambda values: np.asarray(values, dtype=np.float64)  # noqa: E731
    return ProfileStatistics(as64(mean), as64(std), as64(lam), as64(alpha), as64(mean))


def caffe_encode(
    weights: np.ndarray, alpha: Any, beta: Any, bits: int, axis: int | None
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
        y = (scaled.astype(np.float64) + 0.5).astype(np.float32)
        y = np.where(y > np.float32(highest), np.float32(highest), y)
        y = np.where(y < np.float32(lowest), np.float32(lowest), y)
        wide = y.astype(np.float64)
        rounded = np.where(y > 0, np.floor(wide + 0.5), np.ceil(wide - 0.5))
    codes = np.where(np.isnan(rounded), 0.0, rounded).astype(code_dtype(bits))
    return codes, rounded


def caffe_decode(codes: np.ndarray, alpha: Any, beta: Any, axis: int | None) -> np.ndarray:
    r"""Caffe's reconstruction: ŵ = f32((d(q) − 0.5)/d(r) + d(μ)), r = f32(1/α), float32.

    The division by the stored reciprocal is not the affine α(q − ½) + β: 1/r differs from α
    in the last bits, so this is the only way to reproduce Caffe's ŵ bit for bit. NaN α
    gives NaN everywhere.
    """
    codes = np.asarray(codes)
    alpha32 = broadcastable(alpha, codes.ndim, axis).astype(np.float32)
    mean32 = broadcastable(beta, codes.ndim, axis).astype(np.float32)
    with np.errstate(all="ignore"):
        reciprocal = (1.0 / alpha32.astype(np.float64)).astype(np.float32)
        value = ((codes.astype(np.float64) - 0.5) / reciprocal.astype(np.float64)
                 + mean32.astype(np.float64))
    return value.astype(np.float32)


def _sequential_sum(rows: np.ndarray) -> np.ndarray:
    """Left-to-right float32 sums of each row, starting from +0.0 like ``float total = 0.0``.

    ``numpy.add.accumulate`` runs the additions strictly in order (``numpy.sum`` would sum
    pairwise); the leading zero column makes a sum of −0.0 values +0.0, as in C.
    """
    start = np.zeros((rows.shape[0], 1), dtype=np.float32)
    return np.add.accumulate(np.concatenate([start, rows], axis=1), axis=1,
                             dtype=np.float32)[:, -1]


# --------------------------------------------------------------------------- helpers


def _profile_weights(w: Any, profile: str) -> np.ndarray:
    """Validated weights (:func:`ul2q_ref._validate.as_weights`) for `profile`."""
    return _as_profile_array(as_weights(w), profile)


def _as_profile_array(weights: np.ndarray, profile: str) -> np.ndarray:
    """The Caffe profile holds validated weights as float32, like a Caffe float blob.

    A float64 tensor is rounded to float32 value by value, as loading double data into a
    ``Blob<float>`` does (``Blob::FromProto``); values beyond the float32 range are rejected.
    """
    if profile != "caffe" or weights.dtype == np.float32:
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


def _scalar_or(values: np.ndarray, axis: int | None) -> Any:
    """A float64 scalar for per-tensor use, else the per-channel vector."""
    values = np.asarray(values, dtype=np.float64)
    return np.float64(values.reshape(-1)[0]) if axis is None else values.reshape(-1)


# --------------------------------------------------------------------------- loss of a profile


def expected_range(n: int) -> float:
    r"""E[max − min] of n independent N(0, 1) values.

    .. math::
        E[R_n] = \int (1 - Φ(x)^n - (1 - Φ(x))^n)\, dx
               = 2 \int_0^\infty \big(-\mathrm{expm1}(n \log(1 - Q(x))) - Q(x)^n\big)\, dx

    with Q(x) = 1 − Φ(x), by symmetry; ``expm1``/``log1p`` keep 1 − Φⁿ accurate where Φ is
    within rounding of 1 (n = 400,000 needs it). The quadrature is split at √(2 ln n), where
    the integrand falls from 1 to 0.
    """
    from scipy import integrate, special

    def integrand(x: float) -> float:
        tail = float(special.ndtr(-x))
        return -math.expm1(n * math.log1p(-tail)) - tail**n

    knee = math.sqrt(2.0 * math.log(max(n, 2)))
    value, _ = integrate.quad(integrand, 0.0, 40.0, points=[knee], limit=400,
                              epsabs=1e-13, epsrel=1e-13)
    return 2.0 * value


def effective_lambda(profile: str, bits: int, *, std: float = 1.0, n: int = 4096) -> float:
    r"""The normalised step α/σ a profile uses for a tensor with standard deviation `std`.

    ``"exact"``: λ_k*. ``"paper"``: Table I for k ≤ 8; above, α/σ = (max − min)/(2^k − 1)
    with max − min taken as its expectation σ·E[R_n] for n normal values
    (:func:`expected_range`), i.e. α/σ = std·E[R_n]/(2^k − 1). ``"caffe"``: f32(T_k) + 10⁻⁷/σ
    for k ≤ 8; above, α/σ = 6.2·σ/(2^k − 1) + 10⁻⁷/σ (float32 rounding ignored).
    Only the range rules depend on `std`: that is the defect of σ entering twice.
    """
    profile = check_profile(profile)
    bits = check_bits(bits)
    if profile == "exact":
        return optimal_lambda(bits)
    if profile == "paper":
        if bits in PAPER_TABLE_I:
            return PAPER_TABLE_I[bits][0]
        return std * expected_range(n) / (2.0**bits - 1.0)
    if bits <= 8:
        lam = float(np.float32(CAFFE_LAMBDA_TABLE[bits - 1]))
    else:
        lam = CAFFE_RANGE_SIGMAS * std / (2.0**bits - 1.0)
    return lam + CAFFE_ALPHA_EPSILON / std


def excess_loss_percent(profile: str, bits: int, *, std: float = 1.0, n: int = 4096) -> float:
    """100·(L(λ_eff) − L(λ_k*))/L(λ_k*) for the profile's :func:`effective_lambda`."""
    best = expected_loss(optimal_lambda(bits), bits)
    lam = effective_lambda(profile, bits, std=std, n=n)
    return 100.0 * (expected_loss(lam, bits) - best) / best


__all__ = [
    "CAFFE_ALPHA_EPSILON",
    "CAFFE_LAMBDA_TABLE",
    "CAFFE_RANGE_SIGMAS",
    "PROFILES",
    "NegativeVarianceWarning",
    "ProfileQuantized",
    "ProfileStatistics",
    "caffe_decode",
    "caffe_encode",
    "caffe_statistics",
    "check_profile",
    "decode",
    "dequantize",
    "effective_lambda",
    "encode",
    "excess_loss_percent",
    "expected_range",
    "fake_quantize_with_profile",
    "paper_lambda",
    "quantize_with_profile",
    "statistics",
]
