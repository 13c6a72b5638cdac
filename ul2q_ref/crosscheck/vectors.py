r"""Conformance vectors: many small named cases, each saying what it tests.

``ul2q-ref vectors --out DIR`` (:func:`write_suite`) writes ``DIR/vectors.json`` and, for the
few large cases, ``DIR/data/*.npy``. The format is described by ``vectors.schema.json`` (JSON
Schema, shipped beside this module) and in docs/crosscheck.md. Each case holds

* what to run: scheme, profile (μL2Q only), bits, axis, dtype, shape;
* the input, as exact bit patterns in hex (plus decimals for people);
* the **statistics step** (``stats``): the expected α and β (and Δ for ternary) per channel,
  with informational μ, σ, λ and ``tolerance_ulps``, the largest distance a correct
  implementation that sums in another order can show (see :func:`stats_tolerance`);
  ``null`` for encode-only cases;
* the **encode step** (``encode``): given α and β (for ordinary cases the ones of the
  statistics step, for encode-only cases chosen to put values exactly on thresholds), the
  expected codes and reconstruction ŵ as bit patterns.

The output is deterministic: fixed per-case seeds (derived from the case id) and a fixed
layout, so the same package version writes the same bytes every run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._channels import as_rows
from ..codebook import code_range
from ..gaussian import PAPER_TABLE_I, optimal_lambda
from ..profiles import NegativeVarianceWarning
from ..profiles.caffe import LAMBDA_TABLE as CAFFE_LAMBDA_TABLE
from ..stats import moments
from . import steps
from .encoding import from_hex, to_decimal, to_hex

FORMAT = "ul2q-ref/conformance-vectors"
RESULTS_FORMAT = "ul2q-ref/conformance-results"
SCHEMA_VERSION = 1
INLINE_LIMIT = 256
"""Cases with more values than this keep their arrays in ``.npy`` files."""

FLAGS = (
    "random", "tie", "near-threshold", "constant", "one-element", "subnormal", "huge-mean",
    "clip-edge", "per-channel", "k>8", "encode-only", "nan", "large", "zero-channel",
    "sign-of-zero", "defect",
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
            alpha, beta, threshold = (
                None if value is None else _per_channel(value, channels) for value in given
            )
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


def stats_tolerance(
    scheme: str,
    profile: str | None,
    weights: np.ndarray,
    bits: int,
    axis: int | None,
    stats: steps.Statistics,
) -> dict[str, int | None]:
    r"""The largest ulp distance of α, β (Δ) a correct implementation may show on this input.

    Derived from the worst-case error of summation in *any* order (Higham, *Accuracy and
    Stability of Numerical Algorithms*, 2002, §4.2): n terms summed in precision u carry a
    relative error of at most γ_n = nu/(1 − nu) of Σ|terms|. Both this reference and the
    implementation under test round, so each bound is doubled, plus a few ulps for the final
    roundings:

    * μL2Q, exact/paper (float64, two-pass): β: 2⌈γ_n mean|w| / ulp(μ)⌉ + 2; α: n + 12
      (the corrected two-pass σ has a relative error of about (n/2 + 3)u). A constant
      channel is exact under any order (the σ = 0 rule), so 0.
    * μL2Q, caffe (float32, one pass): β as above with u = 2⁻²⁴; α from the error of
      E[w²] − μ², which is relative to E[w²] and so grows like E[w²]/σ² (doubled above 8
      bits, where α ∝ σ²). ``None`` (no bound: only the sequential order defines the result)
      where the variance is not positive.
    * binary, ternary: 2(n + 2) for α (for ternary assuming the same values exceed Δ) and
      2(n + 3) for Δ; fixed point and clip: 0 (max and one rounding: order-free).

    Bounds are capped at 2⁵³. β of the comparison schemes is 0 exactly (bound 0).
    """
    rows = as_rows(np.asarray(weights), axis).astype(np.float64)
    n = rows.shape[1]
    cap = 2**53
    if scheme != "ul2q":
        bounds: dict[str, int | None] = {"alpha": 0, "beta": 0}
        if scheme in ("binary", "ternary"):
            bounds["alpha"] = 2 * (n + 2)
        if scheme == "ternary":
            bounds["threshold"] = 2 * (n + 3)
        return bounds
    alpha_bound: int | None = 0
    beta_bound: int | None = 0
    std, lam = stats.details["std"], stats.details["lam"]
    for channel, row in enumerate(rows):
        mean = float(stats.beta[channel])
        if profile == "caffe":
            values = row.astype(np.float32).astype(np.float64)
            unit = 2.0**-24
            if not float(std[channel]) > 0.0:
                alpha_bound = beta_bound = None
                break
            beta_error = _gamma(n, unit) * float(np.mean(np.abs(values)))
            square_mean = float(np.mean(values * values))
            variance = float(std[channel]) ** 2
            variance_error = ((_gamma(n + 1, unit) + unit) * square_mean
                              + 2.0 * abs(mean) * beta_error + beta_error**2)
            relative = variance_error / (2.0 * variance) + unit
            if bits > 8:
                relative *= 2.0
            lam_sigma = float(lam[channel]) * float(std[channel])
            relative *= lam_sigma / float(stats.alpha[channel])
            channel_alpha = _capped(2.0 * relative / unit + 6.0, cap)
            channel_beta = _capped(2.0 * beta_error / _spacing(mean, np.float32) + 2.0, cap)
        else:
            if row.min() == row.max():
                continue
            beta_error = _gamma(n, 2.0**-53) * float(np.mean(np.abs(row)))
            channel_beta = _capped(2.0 * beta_error / _spacing(mean, np.float64) + 2.0, cap)
            channel_alpha = n + 12
        alpha_bound = max(alpha_bound, channel_alpha)
        beta_bound = max(beta_bound, channel_beta)
    return {"alpha": alpha_bound, "beta": beta_bound}


def _gamma(n: int, unit: float) -> float:
    return n * unit / (1.0 - n * unit)


def _spacing(value: float, dtype: type) -> float:
    return float(np.spacing(dtype(abs(value))))


def _capped(value: float, cap: int) -> int:
    return cap if not math.isfinite(value) or value >= cap else int(math.ceil(value))


# --------------------------------------------------------------------------- the suite


def _rng(case_id: str) -> np.random.Generator:
    """A generator seeded from the case id: cases do not shift when others are added."""
    seed = int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def _normal(case_id: str, shape: tuple[int, ...], dtype: str, mean: float | None = None,
            std: float | None = None) -> np.ndarray:
    rng = _rng(case_id)
    mean = float(rng.normal(0.0, 0.05)) if mean is None else mean
    std = float(10.0 ** rng.uniform(-2.5, 0.3)) if std is None else std
    return (mean + std * rng.standard_normal(shape)).astype(dtype)


def _threshold_inputs(alpha: float, beta: float, bits: int, dtype: str) -> np.ndarray:
    """Values exactly on thresholds β + αj, one ulp either side, and far outside the range."""
    lowest, highest = code_range(bits)
    interior = list(range(lowest, highest))  # thresholds j = lowest..highest-1
    if len(interior) > 9:
        interior = interior[:2] + [-1, 0, 1] + interior[-2:]
    on = np.array([beta + alpha * j for j in interior], dtype=dtype)
    below = np.nextafter(on, np.array(-np.inf, dtype=dtype))
    above = np.nextafter(on, np.array(np.inf, dtype=dtype))
    far = np.array([beta - 1e6, beta + 1e6], dtype=dtype)
    return np.concatenate([np.stack([below, on, above], axis=1).reshape(-1), far])


def _near_threshold_inputs(case_id: str, dtype: str, bits: int, count: int = 6
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Channels whose middle value w has (w − β)/α and (w − β)·(1/α) on opposite sides of a
    threshold; each channel is (one ulp below w, w, one ulp above w) with its own α and β.

    β = fl(w − jα) puts w − β within rounding of the threshold jα, where a reciprocal
    multiplication can land on the other side of the integer j than the division does.
    """
    rng = _rng(case_id)
    lowest, highest = code_range(bits)
    rows, alphas, betas = [], [], []
    while len(rows) < count:
        alpha = optimal_lambda(bits) * float(10.0 ** rng.uniform(-2.0, 0.0))
        j = int(rng.integers(lowest, highest))
        w = np.array(rng.normal(0.0, 0.05), dtype=dtype)
        beta = float(w) - j * alpha
        difference = float(w) - beta
        if math.floor(difference / alpha) != math.floor(difference * (1.0 / alpha)):
            rows.append([np.nextafter(w, np.array(-np.inf, dtype)), w,
                         np.nextafter(w, np.array(np.inf, dtype))])
            alphas.append(alpha)
            betas.append(beta)
    return np.array(rows, dtype=dtype), np.array(alphas), np.array(betas)


def _near_threshold_tensor(case_id: str, bits: int, count: int = 12
                           ) -> tuple[np.ndarray, float, float]:
    """float64 values sharing one (α, β), each with (w − β)/α and (w − β)·(1/α) on opposite
    sides of a threshold (w = fl(β + jα) lands within rounding of the threshold jα)."""
    rng = _rng(case_id)
    lowest, highest = code_range(bits)
    alpha = optimal_lambda(bits) * float(10.0 ** rng.uniform(-2.0, 0.0))
    beta = float(rng.normal(0.0, 0.05))
    found: list[float] = []
    while len(found) < count:
        j = int(rng.integers(lowest, highest))
        w = beta + j * alpha
        difference = w - beta
        if math.floor(difference / alpha) != math.floor(difference * (1.0 / alpha)):
            found.append(w)
    return np.array(found), alpha, beta


def _caffe_note(case: Case, channel: int = 0) -> Case:
    """Say what the caffe profile's one-pass statistics made of a degenerate input."""
    if case.profile != "caffe" or case.stats is None:
        return case
    std = float(case.stats.details["std"][channel])
    exact_std = float(np.atleast_1d(moments(case.weights, case.axis)[1])[channel])
    if math.isnan(std):
        note = ("Caffe's one-pass variance rounds to a negative number: σ, α and every ŵ "
                "are NaN")
    elif std == 0.0:
        note = "Caffe's variance is exactly 0, so α = f32(0 + 1e-7) and ŵ = f32(μ + ½/r)"
    else:
        note = f"Caffe's one-pass variance gives σ = {std:.3g} where the true σ is {exact_std:.3g}"
    if exact_std == 0.0 or not math.isclose(std, exact_std, rel_tol=1e-3):
        case.comment = f"{case.comment}; {note}"
        if "defect" not in case.flags:
            case.flags.append("defect")
    return case


def generate_cases() -> list[Case]:
    """Every case of the suite, in a fixed order (see docs/crosscheck.md for the list)."""
    cases: list[Case] = []
    add = cases.append

    # 1. random tensors: every profile, bit width and dtype
    shapes = [(24,), (4, 6), (2, 3, 4)]
    for profile in _PROFILES:
        for bits in range(1, 17):
            for dtype in _DTYPES:
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-random"
                shape = shapes[(bits + len(dtype)) % 3] if bits <= 8 else (40,)
                comment = f"normal weights, {bits}-bit μL2Q, {profile} profile"
                flags = ["random"]
                if bits > 8 and profile != "exact":
                    comment += ("; above 8 bits the range rule multiplies by σ a second time "
                                "(α ∝ σ²)")
                    flags.append("defect")
                add(build_case(case_id, comment, flags, "ul2q", profile, bits,
                               _normal(case_id, shape, dtype)))

    # 2. per channel, on several axes
    for profile in _PROFILES:
        for dtype in _DTYPES:
            for bits, shape, axis in ((1, (4, 2, 3), 0), (3, (3, 5), -1), (8, (4, 2, 3), 0),
                                      (11, (2, 12, 2), 1), (16, (3, 16), 0)):
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-per-channel-axis{axis}"
                weights = _normal(case_id, shape, dtype)
                add(build_case(case_id, f"one (α, β) per index along axis {axis}", [],
                               "ul2q", profile, bits, weights, axis=axis))

    # 3. per channel with a constant channel (σ = 0 there)
    for profile in _PROFILES:
        for dtype in _DTYPES:
            for bits, value in ((2, 0.25), (9, 0.3)):
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-constant-channel-{value}"
                weights = _normal(case_id, (3, 8), dtype)
                weights[1] = value
                comment = f"channel 1 is constant ({value}): the exact σ is 0 there"
                add(_caffe_note(build_case(case_id, comment, ["constant"], "ul2q", profile,
                                           bits, weights, axis=0), channel=1))

    # 4. constant tensors, and one element
    for profile in _PROFILES:
        for dtype in _DTYPES:
            for bits, value, size in ((1, 0.0, 5), (2, 0.3, 5), (12, -2.5, 7), (4, 0.3, 1),
                                      (16, 0.0, 1), (3, 1e4, 1)):
                flags = ["constant"] + (["one-element"] if size == 1 else [])
                case_id = (f"ul2q-{profile}-k{bits}-{dtype}-"
                           f"{'one-element' if size == 1 else 'constant'}-{value:g}")
                weights = np.full(size, value, dtype=dtype)
                comment = f"{size} equal value(s) {value:g}: σ = 0" + (
                    "" if profile == "caffe" else ", every code 1 and ŵ = β exactly")
                add(_caffe_note(build_case(case_id, comment, flags, "ul2q", profile, bits,
                                           weights)))

    # 5. huge mean, tiny spread
    for profile in _PROFILES:
        for dtype in _DTYPES:
            centre = 1e4 if dtype == "float64" else 1e3
            for bits in (2, 8, 16):
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-huge-mean"
                weights = _normal(case_id, (24,), dtype, mean=centre, std=1e-3)
                add(_caffe_note(build_case(
                    case_id, f"mean {centre:g}, spread 1e-3: a one-pass variance E[w²] − μ² "
                    "would lose every digit", ["huge-mean"], "ul2q", profile, bits, weights)))

    # 6. subnormal values
    for profile in _PROFILES:
        for dtype in _DTYPES:
            tiny = 1e-40 if dtype == "float32" else 1e-310
            for bits in (2, 9):
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-subnormal"
                weights = _normal(case_id, (16,), dtype, mean=0.0, std=tiny)
                add(_caffe_note(build_case(
                    case_id, f"subnormal weights (~{tiny:g}): their squares underflow",
                    ["subnormal"], "ul2q", profile, bits, weights)))
    for dtype in _DTYPES:
        case_id = f"ul2q-exact-k4-{dtype}-subnormal-mixed"
        weights = _normal(case_id, (16,), dtype, mean=0.0, std=1.0)
        weights[::4] = np.array([1e-40 if dtype == "float32" else 5e-324], dtype=dtype)
        add(build_case(case_id, "ordinary weights with a few subnormal ones", ["subnormal"],
                       "ul2q", "exact", 4, weights))

    # 7. outliers: codes clip at both ends
    for profile in _PROFILES:
        for dtype in _DTYPES:
            for bits in (2, 8):
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-outliers"
                weights = _normal(case_id, (24,), dtype, mean=0.0, std=1.0)
                weights[3], weights[17] = 40.0, -40.0
                add(build_case(case_id, "two ±40σ outliers: codes clip at both ends",
                               ["clip-edge"], "ul2q", profile, bits, weights))

    # 8. a value exactly at the mean (the threshold t = 0), through the whole pipeline
    for profile in _PROFILES:
        for dtype in _DTYPES:
            for bits in (1, 2, 3):
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-tie-at-mean"
                weights = np.array([0.75, 1.25, 1.5, 1.75, 2.25], dtype=dtype)
                add(build_case(case_id, "μ = 1.5 exactly and 1.5 is an input: it lies on the "
                               "threshold between codes 0 and 1 and must get code 1", ["tie"],
                               "ul2q", profile, bits, weights))

    # 9. encode step only: values exactly on every threshold, and one ulp either side
    for profile in _PROFILES:
        for dtype in _DTYPES:
            widths = (1, 2, 3, 4, 8, 16) if profile != "caffe" else (2, 3, 8)
            for bits in widths:
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-thresholds"
                weights = _threshold_inputs(0.25, 3.0, bits, dtype)
                if profile == "caffe":
                    comment = ("α = 0.25, β = 3 given: r = 4 and t = (w − β)·r is exact; a t "
                               "that is a negative integer goes to the lower cell (C round of "
                               "y = t + ½ = −½ is −1)")
                    flags = ["tie", "clip-edge", "defect"]
                else:
                    comment = ("α = 0.25, β = 3 given: values exactly on each threshold β + αj "
                               "go to the upper cell; one ulp below goes to the lower cell")
                    flags = ["tie", "clip-edge"]
                add(build_case(case_id, comment, flags, "ul2q", profile, bits, weights,
                               given=(0.25, 3.0, None)))

    # 10. encode step only: division and reciprocal multiplication disagree
    for profile in ("exact", "paper"):
        for dtype in _DTYPES:
            case_id = f"ul2q-{profile}-k4-{dtype}-near-threshold"
            weights, alpha, beta = _near_threshold_inputs(case_id, dtype, 4)
            add(build_case(case_id, "per channel: (w − β)/α and (w − β)·(1/α) for the middle "
                           "value round to opposite sides of a threshold; only a true "
                           "division gets these codes", ["near-threshold"], "ul2q", profile,
                           4, weights, axis=0, given=(alpha, beta, None)))

    for profile in ("exact", "paper"):
        case_id = f"ul2q-{profile}-k4-float64-near-threshold-tensor"
        weights, alpha, beta = _near_threshold_tensor(case_id, 4)
        add(build_case(case_id, "(w − β)/α and (w − β)·(1/α) round to opposite sides of a "
                       "threshold for every value; only a true division gets these codes",
                       ["near-threshold"], "ul2q", profile, 4, weights,
                       given=(alpha, beta, None)))

    # 11. large tensors (kept in .npy files)
    for profile in _PROFILES:
        for bits, dtype, shape, axis in ((8, "float32", (2048,), None),
                                         (16, "float64", (2048,), None),
                                         (16, "float32", (16, 128), 0)):
            case_id = f"ul2q-{profile}-k{bits}-{dtype}-large"
            weights = _normal(case_id, shape, dtype, std=0.05)
            add(build_case(case_id, f"{np.prod(shape)} normal weights", [], "ul2q", profile,
                           bits, weights, axis=axis))

    _scheme_cases(add)
    ids = [case.id for case in cases]
    if len(ids) != len(set(ids)):
        raise AssertionError("duplicate case ids")
    return cases


def _scheme_cases(add: Any) -> None:
    """Cases for the comparison schemes: binary, ternary, fixed point and clip."""
    for dtype in _DTYPES:
        case_id = f"binary-k1-{dtype}-random"
        weights = _normal(case_id, (24,), dtype)
        weights[[2, 9]] = np.array([0.0, -0.0], dtype=dtype)
        add(build_case(case_id, "BWN: q = sign(w) with sign(±0) = +1, α = mean|w|",
                       ["random", "sign-of-zero"], "binary", None, 1, weights))
        case_id = f"binary-k1-{dtype}-zero-channel"
        weights = _normal(case_id, (3, 8), dtype)
        weights[2] = 0.0
        add(build_case(case_id, "a channel of zeros has α = 0", ["zero-channel"], "binary",
                       None, 1, weights, axis=0))
        case_id = f"ternary-k2-{dtype}-random"
        add(build_case(case_id, "TWN: Δ = 0.7·mean|w|, α = mean of |w| beyond Δ", ["random"],
                       "ternary", None, 2, _normal(case_id, (24,), dtype)))
        case_id = f"ternary-k2-{dtype}-zero-channel"
        weights = _normal(case_id, (3, 8), dtype)
        weights[0] = 0.0
        add(build_case(case_id, "a channel of zeros has α = 0 and codes 0", ["zero-channel"],
                       "ternary", None, 2, weights, axis=0))
        case_id = f"ternary-k2-{dtype}-thresholds"
        delta = 0.375
        values = np.array([delta, -delta, 0.0, 1.0, -1.0], dtype=dtype)
        weights = np.concatenate([values, np.nextafter(values[:2], np.array(np.inf, dtype)),
                                  np.nextafter(values[:2], np.array(-np.inf, dtype))])
        add(build_case(case_id, "Δ = 0.375 given: |w| = Δ exactly is code 0 (strict >)",
                       ["tie"], "ternary", None, 2, weights, given=(0.5, 0.0, delta)))
        for bits in range(1, 17):
            case_id = f"fixed_point-k{bits}-{dtype}-random"
            add(build_case(case_id, f"{bits}-bit dynamic fixed point", ["random"],
                           "fixed_point", None, bits, _normal(case_id, (24,), dtype)))
        for bits in range(2, 17):
            case_id = f"clip-k{bits}-{dtype}-random"
            add(build_case(case_id, f"{bits}-bit symmetric linear quantisation to ±max|w|",
                           ["random"], "clip", None, bits, _normal(case_id, (24,), dtype)))
        for scheme in ("fixed_point", "clip"):
            for bits in (2, 4, 8):
                case_id = f"{scheme}-k{bits}-{dtype}-rounding-ties"
                step = 0.125
                top = 2 ** (bits - 1)
                halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, top - 0.5, -top - 0.5,
                                   top - 1.5, -top + 0.5])
                weights = (halves * step).astype(dtype)
                add(build_case(case_id, "α = 0.125 given: w/α = j + ½ rounds away from zero; "
                               "the results beyond the range saturate", ["tie", "clip-edge"],
                               scheme, None, bits, weights, given=(step, 0.0, None)))
            case_id = f"{scheme}-k4-{dtype}-zero-channel"
            weights = _normal(case_id, (3, 8), dtype)
            weights[1] = 0.0
            add(build_case(case_id, "a channel of zeros has α = 0 and codes 0",
                           ["zero-channel"], scheme, None, 4, weights, axis=0))


# --------------------------------------------------------------------------- JSON


def _floats(values: Any, dtype: str, decimal: bool = True) -> dict[str, list[str]]:
    record = {"hex": to_hex(values, dtype)}
    if decimal:
        record["decimal"] = to_decimal(values, dtype)
    return record


def _codes_json(case: Case) -> list[int | None]:
    return [int(code) if ok else None
            for code, ok in zip(case.codes.reshape(-1).tolist(),
                                case.defined.reshape(-1).tolist(), strict=True)]


def case_to_json(case: Case, save_npy: Any | None = None) -> dict[str, Any]:
    """The JSON object of `case`; large arrays go through ``save_npy(name, array)``."""
    parameter = case.parameter_dtype
    large = case.weights.size > INLINE_LIMIT and save_npy is not None
    record: dict[str, Any] = {
        "id": case.id,
        "comment": case.comment,
        "flags": case.flags,
        "scheme": case.scheme,
        "profile": case.profile,
        "bits": case.bits,
        "axis": case.axis,
        "dtype": case.dtype,
        "shape": list(case.weights.shape),
        "parameter_dtype": parameter,
    }
    if large:
        record["input"] = save_npy(f"{case.id}.input.npy", case.weights)
    else:
        record["input"] = _floats(case.weights, case.dtype)
    if case.stats is None:
        record["stats"] = None
    else:
        stats: dict[str, Any] = {
            "alpha": _floats(case.stats.alpha, parameter),
            "beta": _floats(case.stats.beta, parameter),
        }
        if case.stats.threshold is not None:
            stats["threshold"] = _floats(case.stats.threshold, parameter)
        if case.stats.details:
            stats["details"] = {name: _floats(value, parameter)
                                for name, value in case.stats.details.items()}
        stats["tolerance_ulps"] = case.tolerance
        record["stats"] = stats
    encode: dict[str, Any] = {
        "alpha": _floats(case.encode_alpha, parameter),
        "beta": _floats(case.encode_beta, parameter),
    }
    if case.encode_threshold is not None:
        encode["threshold"] = _floats(case.encode_threshold, parameter)
    if large:
        if not case.defined.all():
            raise ValueError(f"{case.id}: a large case cannot have undefined codes")
        encode["codes"] = save_npy(f"{case.id}.codes.npy", case.codes.astype(np.int32))
        encode["output"] = save_npy(f"{case.id}.output.npy", case.output)
    else:
        encode["codes"] = _codes_json(case)
        encode["output"] = _floats(case.output, case.dtype, decimal=False)
    record["encode"] = encode
    return record


def suite_header(cases: list[Case]) -> dict[str, Any]:
    """The top-level fields of ``vectors.json`` other than the cases."""
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "generator": "ul2q-ref",
        "generator_version": __version__,
        "description": (
            "Conformance vectors for μL2Q weight quantisation (Gong et al., IJCNN 2019) and "
            "its comparison schemes. Floats are IEEE 754 bit patterns in hex; codes are "
            "integers in C order of the input shape. See docs/crosscheck.md of ul2q-ref."
        ),
        "lambdas": {
            "exact": to_hex([optimal_lambda(k) for k in range(1, 17)], "float64"),
            "paper": to_hex([PAPER_TABLE_I[k][0] for k in range(1, 9)], "float64"),
            "caffe": to_hex(CAFFE_LAMBDA_TABLE, "float32"),
        },
        "case_count": len(cases),
    }


def render(cases: list[Case], save_npy: Any | None = None) -> str:
    """``vectors.json`` as text: the header indented, each case on one line."""
    header = suite_header(cases)
    lines = ["{"]
    for key, value in header.items():
        lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append(' "cases": [')
    bodies = [json.dumps(case_to_json(case, save_npy), ensure_ascii=False,
                         separators=(",", ":")) for case in cases]
    lines.append(",\n".join(f"  {body}" for body in bodies))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_suite(directory: str | os.PathLike[str], cases: list[Case] | None = None) -> Path:
    """Write the suite to `directory` (created if needed); return the path of vectors.json.

    Files are written to temporary names and renamed into place, so an interrupted run
    leaves either the old suite or the new one.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    cases = generate_cases() if cases is None else cases
    data = target / "data"
    written: dict[str, bytes] = {}

    def save_npy(name: str, array: np.ndarray) -> dict[str, str]:
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        content = buffer.getvalue()
        written[name] = content
        return {"npy": f"data/{name}", "sha256": hashlib.sha256(content).hexdigest()}

    text = render(cases, save_npy)
    if written:
        data.mkdir(exist_ok=True)
    for name, content in written.items():
        _atomic_write(data / name, content)
    path = target / "vectors.json"
    _atomic_write(path, text.encode("utf-8"))
    return path


def _atomic_write(path: Path, content: bytes) -> None:
    """Write to a temporary name in the same directory, then rename (umask applies)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(content)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- loading


class SuiteError(ValueError):
    """A vectors directory that cannot be read: missing, malformed or tampered with."""


@dataclass
class Suite:
    """A loaded suite: its header fields and its cases."""

    directory: Path
    header: dict[str, Any]
    cases: list[Case]


def load_suite(directory: str | os.PathLike[str]) -> Suite:
    """Read ``DIR/vectors.json`` (and its ``.npy`` files, checking their SHA-256)."""
    root = Path(directory)
    path = root / "vectors.json" if root.is_dir() else root
    if not path.exists():
        raise SuiteError(f"{path}: no such file (write one with `ul2q-ref vectors --out DIR`)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SuiteError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SuiteError(f"{path}: not a ul2q-ref conformance suite (format {FORMAT!r})")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise SuiteError(f"{path}: schema version {document.get('schema_version')!r} is not "
                         f"supported (this checker reads version {SCHEMA_VERSION})")
    cases = []
    for index, record in enumerate(document.get("cases", [])):
        try:
            cases.append(case_from_json(record, path.parent))
        except (KeyError, TypeError, ValueError) as error:
            name = record.get("id", f"#{index}") if isinstance(record, dict) else f"#{index}"
            raise SuiteError(f"{path}: case {name}: {error}") from None
    header = {key: value for key, value in document.items() if key != "cases"}
    return Suite(path.parent, header, cases)


def _load_npy(reference: dict[str, str], root: Path) -> np.ndarray:
    file = (root / reference["npy"]).resolve()
    if root.resolve() not in file.parents:
        raise ValueError(f"{reference['npy']}: outside the suite directory")
    content = file.read_bytes()
    if hashlib.sha256(content).hexdigest() != reference["sha256"]:
        raise ValueError(f"{reference['npy']}: SHA-256 mismatch (file changed or corrupted)")
    import io

    return np.load(io.BytesIO(content), allow_pickle=False)


def _array(record: Any, dtype: str, root: Path) -> np.ndarray:
    if isinstance(record, dict) and "npy" in record:
        return np.asarray(_load_npy(record, root))
    return from_hex(record["hex"], dtype)


def case_from_json(record: dict[str, Any], root: Path) -> Case:
    """Rebuild a :class:`Case` from its JSON object (arrays resolved)."""
    dtype = record["dtype"]
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    shape = tuple(int(n) for n in record["shape"])
    parameter = record["parameter_dtype"]
    weights = _array(record["input"], dtype, root).astype(dtype).reshape(shape)
    stats = None
    tolerance = None
    if record["stats"] is not None:
        raw = record["stats"]
        threshold = _array(raw["threshold"], parameter, root) if "threshold" in raw else None
        details = {name: _array(value, parameter, root)
                   for name, value in raw.get("details", {}).items()}
        stats = steps.Statistics(_array(raw["alpha"], parameter, root).astype(np.float64),
                                 _array(raw["beta"], parameter, root).astype(np.float64),
                                 None if threshold is None else threshold.astype(np.float64),
                                 parameter, details)
        tolerance = raw["tolerance_ulps"]
    encode = record["encode"]
    threshold = encode.get("threshold")
    codes_record = encode["codes"]
    if isinstance(codes_record, dict):
        codes = np.asarray(_load_npy(codes_record, root), dtype=np.int64).reshape(shape)
        defined = np.ones(shape, dtype=bool)
    else:
        defined = np.array([code is not None for code in codes_record], dtype=bool)
        codes = np.array([0 if code is None else int(code) for code in codes_record],
                         dtype=np.int64)
        codes, defined = codes.reshape(shape), defined.reshape(shape)
    output = _array(encode["output"], dtype, root).astype(dtype).reshape(shape)
    steps.check_case_kind(record["scheme"], record["profile"])
    return Case(
        id=record["id"],
        comment=record["comment"],
        flags=list(record["flags"]),
        scheme=record["scheme"],
        profile=record["profile"],
        bits=int(record["bits"]),
        axis=record["axis"],
        weights=weights,
        stats=stats,
        tolerance=tolerance,
        encode_alpha=_array(encode["alpha"], parameter, root).astype(np.float64),
        encode_beta=_array(encode["beta"], parameter, root).astype(np.float64),
        encode_threshold=(None if threshold is None
                          else _array(threshold, parameter, root).astype(np.float64)),
        codes=codes,
        defined=defined,
        output=output,
    )


# --------------------------------------------------------------------------- protocol


def request_for(case: Case) -> dict[str, Any]:
    """The request an implementation receives for `case` (docs/crosscheck.md, "Protocol")."""
    parameter = case.parameter_dtype
    encode: dict[str, Any] = {
        "alpha": {"hex": to_hex(case.encode_alpha, parameter)},
        "beta": {"hex": to_hex(case.encode_beta, parameter)},
    }
    if case.encode_threshold is not None:
        encode["threshold"] = {"hex": to_hex(case.encode_threshold, parameter)}
    return {
        "id": case.id,
        "scheme": case.scheme,
        "profile": case.profile,
        "bits": case.bits,
        "axis": case.axis,
        "dtype": case.dtype,
        "shape": list(case.weights.shape),
        "parameter_dtype": parameter,
        "input": {"hex": to_hex(case.weights, case.dtype)},
        "quantize": case.stats is not None,
        "encode": encode,
    }


def flag_counts(cases: list[Case]) -> dict[str, int]:
    """How many cases carry each flag, scheme and profile (for summaries and docs)."""
    counts: dict[str, int] = {}
    for case in cases:
        keys = [f"flag:{flag}" for flag in case.flags]
        keys.append(f"scheme:{case.scheme}")
        keys.append(f"profile:{case.profile}" if case.profile else "profile:-")
        keys.append(f"dtype:{case.dtype}")
        keys.append(f"bits:{case.bits}")
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


__all__ = [
    "FLAGS",
    "FORMAT",
    "INLINE_LIMIT",
    "RESULTS_FORMAT",
    "SCHEMA_VERSION",
    "Case",
    "Suite",
    "SuiteError",
    "build_case",
    "case_from_json",
    "case_to_json",
    "flag_counts",
    "generate_cases",
    "load_suite",
    "render",
    "request_for",
    "stats_tolerance",
    "write_suite",
]
