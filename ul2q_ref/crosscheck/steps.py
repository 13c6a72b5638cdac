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
ul2q / caffe     :mod:`ul2q_ref.profiles.caffe`         :mod:`ul2q_ref.profiles.caffe`
                 (float32)                            (float32, decode by 1/f32(1/α))
binary           α = mean|w|                          q = sign(w) (sign 0 = +1), ŵ = αq
ternary          Δ = 0.7·mean|w|, α                   q = [w > Δ] − [w < −Δ], ŵ = αq
fixed_point      α = 2^(⌊log₂ max|w|⌋ − (k − 2))      q = clip(round(w/α)), ŵ = αq
clip             α = max|w|/(2^(k−1) − 1)             q = clip(round(w/α)), ŵ = αq
===============  ===================================  =====================================

β is 0 for the comparison schemes. "round" is half away from zero. Both steps are lookups:
μL2Q's in its profile's record (:data:`ul2q_ref.profiles.RECORDS`), the other schemes' in
their record (:data:`ul2q_ref.schemes.SCHEMES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import profiles, schemes
from .._channels import broadcastable
from .._validate import as_weights, check_axis, check_bits
from ..codebook import channel_vector, decode

SCHEMES = tuple(schemes.SCHEMES)
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
    """The precision of a case's α, β (and Δ): the profile record's, float64 without one."""
    if scheme == schemes.SCHEMES["ul2q"].name and profile is not None:
        return profiles.get(profile).parameter_dtype
    return "float64"


def check_case_kind(scheme: str, profile: str | None) -> None:
    """Reject unknown schemes, and profiles on anything but μL2Q."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r} (expected one of {', '.join(SCHEMES)})")
    if schemes.SCHEMES[scheme].uses_kernels:
        profiles.check_profile(profile)
    elif profile is not None:
        raise ValueError(f"scheme {scheme!r} has no profiles, got profile {profile!r}")


def _checked(weights: np.ndarray, bits: int, axis: int | None
             ) -> tuple[np.ndarray, int, int | None]:
    weights = as_weights(weights)
    return weights, check_bits(bits), check_axis(axis, weights.ndim)


def statistics(
    scheme: str, profile: str | None, weights: np.ndarray, bits: int, axis: int | None
) -> Statistics:
    """The statistics step of `scheme` (and `profile`) for `weights`."""
    check_case_kind(scheme, profile)
    weights, bits, axis = _checked(weights, bits, axis)
    if profile is not None:
        stats = profiles.statistics(weights, bits, axis, profile)
        details = {"mean": stats.mean, "std": stats.std, "lam": stats.lam}
        return Statistics(stats.alpha, stats.beta, None, stats_dtype(scheme, profile), details)
    record = schemes.SCHEMES[scheme]
    bits = schemes.check_scheme_bits(record, bits)
    found = record.statistics(weights, bits, axis)
    return Statistics(found.alpha, found.beta, found.threshold, "float64")


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
    weights, bits, axis = _checked(weights, bits, axis)
    dtype = weights.dtype
    channels = 1 if axis is None else weights.shape[axis]
    alpha = channel_vector(alpha, channels)
    beta = channel_vector(beta, channels)
    if profile is not None:
        codes = profiles.encode(weights, alpha, beta, bits, axis, profile)
        output = profiles.decode(codes, alpha, beta, axis, dtype, profile)
        defined = np.broadcast_to(~np.isnan(broadcastable(alpha, weights.ndim, axis)),
                                  weights.shape)
        return codes.astype(np.int64), np.array(defined), output
    record = schemes.SCHEMES[scheme]
    bits = schemes.check_scheme_bits(record, bits)
    if scheme == "ternary" and threshold is None:
        raise ValueError("the ternary encode step needs the threshold Δ")
    delta = None if threshold is None else channel_vector(threshold, channels)
    codes = record.encode(weights, schemes.SchemeStatistics(alpha, beta, delta), bits, axis)
    output = decode(codes, alpha, beta, record.zero_point, axis, dtype)
    return codes.astype(np.int64), np.ones(weights.shape, dtype=bool), output


__all__ = ["SCHEMES", "Statistics", "check_case_kind", "encode", "stats_dtype", "statistics"]
