r"""Profiles: the λ source and the arithmetic that a μL2Q implementation follows.

The reference (``profile="exact"``) is the definition of docs/spec.md. Two other profiles are
*specifications of other implementations' arithmetic*, so that their results can be checked
bit for bit against this package (docs/crosscheck.md lists the defects they reproduce):

``"paper"`` (:mod:`ul2q_ref.profiles.paper`)
    The paper's Table I λ for k ≤ 8 and, above, Algorithm 1's range rule as written.
``"caffe"`` (:mod:`ul2q_ref.profiles.caffe`)
    The float32 arithmetic of the published Caffe implementation, element for element.

Each profile is one :class:`Profile` record (statistics, encode and decode steps, bit range,
zero point); :data:`RECORDS` holds them by name. The functions below take validated input
(the public :func:`ul2q_ref.quantize` checks what users pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .. import kernels as _kernels
from .._channels import channel_count
from ..codebook import ZERO_POINT, Quantized, channel_vector, public_parameter
from . import caffe, paper
from ._record import Profile, ProfileStatistics, unchanged
from .caffe import NegativeVarianceWarning
from .paper import paper_lambda

RECORDS: dict[str, Profile] = {
    "exact": Profile("exact", paper.exact_statistics, paper.encode, paper.decode, unchanged,
                     ZERO_POINT, "float64", per_channel=True),
    "paper": Profile("paper", paper.paper_statistics, paper.encode, paper.decode, unchanged,
                     ZERO_POINT, "float64", per_channel=True),
    "caffe": Profile("caffe", caffe.statistics, caffe.encode, caffe.decode, caffe.prepare,
                     ZERO_POINT, "float32", per_channel=False, nan_alpha=True),
}
"""Every profile's record, by name."""

PROFILES = tuple(RECORDS)
"""The profile names accepted by ``quantize(..., profile=...)``."""


def get(profile: Any) -> Profile:
    """The record of `profile`, after checking it is one of :data:`PROFILES`."""
    if not isinstance(profile, str) or profile not in RECORDS:
        choices = ", ".join(map(repr, PROFILES))
        raise ValueError(f"profile must be one of {choices}, got {profile!r}")
    return RECORDS[profile]


def check_profile(profile: Any) -> str:
    """Return `profile` after checking it is one of :data:`PROFILES`."""
    return get(profile).name


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

    def allows_nan_alpha(self) -> bool:
        """Whether this profile's α can be NaN (:attr:`Profile.nan_alpha`: caffe)."""
        return get(self.profile).nan_alpha

    def dequantize(self, dtype: Any = None, *, backend: str = "auto") -> np.ndarray:
        """The profile's reconstruction ŵ (``backend`` is checked; only NumPy decodes)."""
        _kernels.select(backend)
        return dequantize(self, dtype)


def quantize_with_profile(
    record: Profile, weights: np.ndarray, bits: int, axis: int | None, dtype: np.dtype,
    kernels: ModuleType = _kernels.reference,
) -> ProfileQuantized:
    """Quantise prepared, validated `weights` under the profile `record`.

    Under ``"caffe"``, α and β are the float32 values Caffe computes (held exactly in
    float64) and codes are 0 where α is NaN.
    """
    stats = record.statistics(weights, bits, axis, kernels)
    codes = record.encode(weights, stats.alpha, stats.beta, bits, axis, kernels)
    lam = stats.lam
    common_lam = float(lam[0]) if np.all(lam == lam[0]) else None
    return ProfileQuantized(
        codes=codes,
        alpha=public_parameter(stats.alpha, axis),
        beta=public_parameter(stats.beta, axis),
        zero_point=record.zero_point,
        bits=bits,
        lam=common_lam,
        axis=axis,
        scheme="ul2q",
        dtype=np.dtype(dtype),
        profile=record.name,
        std=public_parameter(stats.std, axis),
    )


def dequantize(quantized: Quantized, dtype: Any = None) -> np.ndarray:
    r"""Decode `quantized` the way its profile does.

    ``"exact"`` and ``"paper"``: ŵ = α(q − ½) + β in float64, rounded once to `dtype`.
    ``"caffe"``: ŵ = f32((d(q) − ½)/d(r) + d(μ)) with r = f32(1/α)
    (:func:`ul2q_ref.profiles.caffe.decode`), then converted to `dtype`. A plain
    :class:`~ul2q_ref.codebook.Quantized` is decoded with its own zero point as ``"exact"``.
    """
    if not isinstance(quantized, Quantized):
        raise TypeError(f"quantized must be a Quantized, got {type(quantized).__name__}")
    out_dtype = np.dtype(quantized.dtype if dtype is None else dtype)
    if out_dtype.kind != "f":
        raise TypeError(f"dtype must be a float dtype, got {out_dtype}")
    profile = getattr(quantized, "profile", "exact")
    return decode(quantized.codes, quantized.alpha, quantized.beta, quantized.axis,
                  out_dtype, profile, zero_point=quantized.zero_point)


def _vector(values: Any, shape: tuple[int, ...], axis: int | None) -> np.ndarray:
    return channel_vector(values, channel_count(shape, axis))


def statistics(weights: np.ndarray, bits: int, axis: int | None, profile: str
               ) -> ProfileStatistics:
    """The statistics step of `profile` for validated `weights`: μ, σ, λ, α, β per channel."""
    record = get(profile)
    return record.statistics(record.prepare(weights), bits, axis, _kernels.reference)


def encode(weights: np.ndarray, alpha: Any, beta: Any, bits: int, axis: int | None,
           profile: str) -> np.ndarray:
    """The encode step of `profile`: codes of validated `weights` for (α, β) per channel."""
    record = get(profile)
    weights = record.prepare(weights)
    return record.encode(weights, _vector(alpha, weights.shape, axis),
                         _vector(beta, weights.shape, axis), bits, axis, _kernels.reference)


def decode(codes: np.ndarray, alpha: Any, beta: Any, axis: int | None, dtype: Any,
           profile: str, *, zero_point: float = ZERO_POINT) -> np.ndarray:
    """The reconstruction of `profile` for codes and a code book (α, β per channel)."""
    record = get(profile)
    return record.decode(codes, _vector(alpha, codes.shape, axis),
                         _vector(beta, codes.shape, axis), zero_point, axis, np.dtype(dtype))


__all__ = [
    "PROFILES",
    "RECORDS",
    "NegativeVarianceWarning",
    "Profile",
    "ProfileQuantized",
    "ProfileStatistics",
    "caffe",
    "check_profile",
    "decode",
    "dequantize",
    "encode",
    "get",
    "paper",
    "paper_lambda",
    "quantize_with_profile",
    "statistics",
]
