"""One conformance case: what to run, its input, and the expected results of both steps."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..profiles import NegativeVarianceWarning
from . import steps
from .tolerance import stats_tolerance

FORMAT = "ul2q-ref/conformance-vectors"
RESULTS_FORMAT = "ul2q-ref/conformance-results"
SCHEMA_VERSION = 2
"""The version of ``vectors.json`` this package writes.

Version 2 adds the flags ``pipeline-tie``, ``zero-tensor`` and ``two-element`` and the cases
that carry them; every field and every version-1 case is unchanged, so version-1 files are
read as before (:data:`READABLE_SCHEMA_VERSIONS`)."""
READABLE_SCHEMA_VERSIONS = (1, 2)
"""The versions of ``vectors.json`` the loader and ``vectors.schema.json`` accept."""
RESULTS_SCHEMA_VERSION = 1
"""The version of the results format (``RESULTS_FORMAT``), independent of the vectors'."""
INLINE_LIMIT = 256
"""Cases with more values than this keep their arrays in ``.npy`` files."""

FLAGS = (
    "random", "tie", "near-threshold", "constant", "one-element", "subnormal", "huge-mean",
    "clip-edge", "per-channel", "k>8", "encode-only", "nan", "large", "zero-channel",
    "sign-of-zero", "defect", "pipeline-tie", "zero-tensor", "two-element",
)
"""Every flag a case may carry (docs/crosscheck.md explains each)."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PROFILES = ("exact", "paper", "caffe")
_DTYPES = ("float32", "float64")



@dataclass
class Case:
    """One conformance case, with its arrays as NumPy arrays (native byte order)."""

    id: str
    comment: str
    flags: list[str]
    scheme: str
    profile: str | None
    bits: int
    axis: int | None
    weights: np.ndarray
    stats: steps.Statistics | None
    tolerance: dict[str, int | None] | None
    encode_alpha: np.ndarray
    encode_beta: np.ndarray
    encode_threshold: np.ndarray | None
    codes: np.ndarray
    defined: np.ndarray
    output: np.ndarray
    files: dict[str, str] = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        """The input's dtype name, ``"float32"`` or ``"float64"``."""
        return self.weights.dtype.name

    @property
    def parameter_dtype(self) -> str:
        """The precision of α, β, Δ: float32 under the caffe profile, else float64."""
        return steps.stats_dtype(self.scheme, self.profile)


# --------------------------------------------------------------------------- building cases


def build_case(
    case_id: str,
    comment: str,
    flags: list[str],
    scheme: str,
    profile: str | None,
    bits: int,
    weights: np.ndarray,
    *,
    axis: int | None = None,
    given: tuple[Any, Any, Any] | None = None,
) -> Case:
    """Compute a case's expected results with the reference.

    With `given` = (α, β, Δ or None) the case is encode-only: no statistics step, and the
    encode step uses these parameters (per channel, or scalars).
    """
    if not _ID.match(case_id):
        raise ValueError(f"bad case id {case_id!r}")
    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise ValueError(f"{case_id}: unknown flags {unknown}")
    weights = np.ascontiguousarray(weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeVarianceWarning)
        if given is None:
            stats = steps.statistics(scheme, profile, weights, bits, axis)
            alpha, beta, threshold = stats.alpha, stats.beta, stats.threshold
            tolerance = stats_tolerance(scheme, profile, weights, bits, axis, stats)
        else:
            stats, tolerance = None, None
            channels = 1 if axis is None else weights.shape[axis]
            given_alpha, given_beta, threshold = (
                None if value is None else _per_channel(value, channels) for value in given
            )
            assert given_alpha is not None and given_beta is not None  # encode needs α, β
            alpha, beta = given_alpha, given_beta
            if "encode-only" not in flags:
                flags = ["encode-only", *flags]
        codes, defined, output = steps.encode(
            scheme, profile, weights, bits, axis, alpha, beta, threshold
        )
    if stats is not None and np.any(np.isnan(stats.alpha)) and "nan" not in flags:
        flags = [*flags, "nan"]
    if weights.size > INLINE_LIMIT and "large" not in flags:
        flags = [*flags, "large"]
    if bits > 8 and "k>8" not in flags and scheme == "ul2q":
        flags = [*flags, "k>8"]
    if axis is not None and "per-channel" not in flags:
        flags = [*flags, "per-channel"]
    return Case(case_id, comment, flags, scheme, profile, bits, axis, weights, stats, tolerance,
                alpha, beta, threshold, codes, defined, output)


def _per_channel(value: Any, channels: int) -> np.ndarray:
    array = np.atleast_1d(np.asarray(value, dtype=np.float64)).reshape(-1)
    return np.full(channels, array[0]) if array.size == 1 else array


__all__ = [
    "FLAGS",
    "FORMAT",
    "INLINE_LIMIT",
    "READABLE_SCHEMA_VERSIONS",
    "RESULTS_FORMAT",
    "RESULTS_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "Case",
    "build_case",
]
