r"""The two steps every conformance case is split into, for every scheme and profile.

*Statistics step*: from the input alone, the code book parameters — α and β (and, for
ternary, the threshold Δ), one per channel. *Encode step*: from the input and given
parameters, the integer codes and the reconstruction ŵ. An implementation whose sums run in
another order than ours can then be checked within an ulp bound on the first step and bit
for bit on the second.

===============  ===================================  =====================================
scheme/profile   statistics                           encode (given the parameters)
===============  ===================================  =====================================
ul2q / exact     μ, σ (two-pass, float64), α = λ_k*σ  q = clip(⌊(w − β)/α⌋ + 1), ŵ = α(q − ½) + β
ul2q / paper     as exact, λ from Table I / range     as exact
ul2q / caffe     :func:`ul2q_ref.profiles.            :func:`ul2q_ref.profiles.caffe_encode`,
                 caffe_statistics` (float32)          :func:`~ul2q_ref.profiles.caffe_decode`
binary           α = mean|w|                          q = sign(w) (sign 0 = +1), ŵ = αq
ternary          Δ = 0.7·mean|w|, α                   q = [w > Δ] − [w < −Δ], ŵ = αq
fixed_point      α = 2^(⌊log₂ max|w|⌋ − (k − 2))      q = clip(round(w/α)), ŵ = αq
clip             α = max|w|/(2^(k−1) − 1)             q = clip(round(w/α)), ŵ = αq
===============  ===================================  =====================================

β is 0 for the comparison schemes. "round" is half away from zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import profiles, schemes
from .._channels import as_rows, broadcastable
from .._validate import as_weights, check_axis, check_bits
from ..codebook import reference_decode, storage_dtype

SCHEMES = ("ul2q", "binary", "ternary", "fixed_point", "clip")
"""Every scheme a case can name (``"ul2q"`` with a profile, the others without one)."""


@dataclass
class Statistics:
    """The statistics step's result: per-channel parameters as float64 vectors.

    ``dtype`` is the precision the parameters are defined in ("float32" for the caffe
    profile, else "float64"); ``details`` holds informational values (μ, σ, λ).
    """

    alpha: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray | None
    dtype: str
    details: dict[str, np.ndarray] = field(default_factory=dict)


def stats_dtype(scheme: str, profile: str | None) -> str:
    """The precision of a case's α, β (and Δ): float32 under the caffe profile only."""
    return "float32" if scheme == "ul2q" and profile == "caffe" else "float64"


def check_case_kind(scheme: str, profile: str | None) -> None:
    """Reject unknown schemes, and profiles on anything but μL2Q."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r} (expected one of {', '.join(SCHEMES)})")
    if scheme == "ul2q":
        profiles.check_profile(profile)
    elif profile is not None:
        raise ValueError(f"scheme {scheme!r} has no profiles, got profile {profile!r}")


def statistics(
    scheme: str, profile: str | None, weights: np.ndarray, bits: int, axis: int | None
) -> Statistics:
    """The statistics step of `scheme` (and `profile`) for `weights`."""
    check_case_kind(scheme, profile)
    weights = as_weights(weights)
    bits = check_bits(bits)
    axis = check_axis(axis, weights.ndim)
    if scheme == "ul2q":
        stats = profiles.statistics(weights, bits, axis, profile)
        details = {"mean": stats.mean, "std": stats.std, "lam": stats.lam}
        return Statistics(stats.alpha, stats.beta, None, stats_dtype(scheme, profile), details)
    quantized = schemes.quantize_with(scheme, weights, bits, axis=axis)
    alpha = np.atleast_1d(np.asarray(quantized.alpha, dtype=np.float64))
    threshold = None
    if scheme == "ternary":
        # Δ = 0.7·mean|w| as schemes.ternary computes it: each channel as its own 1-D row
        rows = as_rows(weights, axis).astype(np.float64)
        threshold = np.array([0.7 * float(np.abs(np.ascontiguousarray(row)).mean())
                              for row in rows])
    return Statistics(alpha, np.zeros_like(alpha), threshold, "float64")


def encode(
    scheme: str,
    profile: str | None,
    weights: np.ndarray,
    bits: int,
    axis: int | None,
    alpha: np.ndarray,
    beta: np.ndarray,
    threshold: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The encode step: codes and reconstruction of `weights` for given parameters.

    Returns
    -------
    codes : numpy.ndarray
        int64 codes with the input's shape.
    defined : numpy.ndarray
        Booleans, False where a code is undefined (the caffe profile's NaN channels).
    output : numpy.ndarray
        ŵ in the input's float dtype (float32 or float64).
    """
    check_case_kind(scheme, profile)
    weights = as_weights(weights)
    bits = check_bits(bits)
    axis = check_axis(axis, weights.ndim)
    dtype = weights.dtype
    alpha = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    beta = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    scale = alpha[0] if axis is None else alpha
    if scheme == "ul2q":
        codes = profiles.encode(weights, alpha, beta, bits, axis, profile)
        output = profiles.decode(codes, alpha, beta, axis, dtype, profile)
        defined = np.broadcast_to(~np.isnan(broadcastable(alpha, weights.ndim, axis)),
                                  weights.shape)
        return codes.astype(np.int64), np.array(defined), output
    values = weights.astype(np.float64)
    if scheme == "binary":
        codes = np.where(weights >= 0, 1, -1).astype(np.int8)
    elif scheme == "ternary":
        if threshold is None:
            raise ValueError("the ternary encode step needs the threshold Δ")
        delta = broadcastable(np.atleast_1d(threshold), weights.ndim, axis)
        codes = (values > delta).astype(np.int8) - (values < -delta).astype(np.int8)
    else:
        if scheme == "fixed_point":
            lowest, highest = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        else:
            if bits < 2:
                raise ValueError("the clip scheme needs bits >= 2")
            highest = 2 ** (bits - 1) - 1
            lowest = -highest
        step = broadcastable(alpha, weights.ndim, axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            rounded = np.clip(schemes.round_half_away(values / step), lowest, highest)
        codes = np.where(step == 0.0, 0.0, rounded).astype(storage_dtype(lowest, highest))
    output = reference_decode(codes, scale, 0.0, 0.0, axis, dtype)
    return codes.astype(np.int64), np.ones(weights.shape, dtype=bool), output


__all__ = ["SCHEMES", "Statistics", "check_case_kind", "encode", "stats_dtype", "statistics"]
