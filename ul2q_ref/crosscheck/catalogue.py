"""The case catalogue of ``ul2q-ref vectors``: every named case, built from its id and seed.

:func:`generate_cases` lists them: each bit width 1–16, float32 and float64, the exact, paper
and caffe profiles, every comparison scheme and the edge cases (ties, clip edges, σ = 0, one
element, huge mean, subnormals, per-channel). Seeds are derived from the case id, so the
catalogue is deterministic.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from ..codebook import code_range
from ..gaussian import optimal_lambda
from ..stats import moments
from .case import _DTYPES, _PROFILES, Case, build_case
from .pipeline_ties import caffe_tie_tensor, tie_tensor

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
    rows: list[list[np.ndarray]] = []
    alphas: list[float] = []
    betas: list[float] = []
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
        weights, common_alpha, common_beta = _near_threshold_tensor(case_id, 4)
        add(build_case(case_id, "(w − β)/α and (w − β)·(1/α) round to opposite sides of a "
                       "threshold for every value; only a true division gets these codes",
                       ["near-threshold"], "ul2q", profile, 4, weights,
                       given=(common_alpha, common_beta, None)))

    # 11. large tensors (kept in .npy files)
    for profile in _PROFILES:
        for bits, dtype, shape, large_axis in ((8, "float32", (2048,), None),
                                               (16, "float64", (2048,), None),
                                               (16, "float32", (16, 128), 0)):
            case_id = f"ul2q-{profile}-k{bits}-{dtype}-large"
            weights = _normal(case_id, shape, dtype, std=0.05)
            add(build_case(case_id, f"{np.prod(shape)} normal weights", [], "ul2q", profile,
                           bits, weights, axis=large_axis))

    _scheme_cases(add)
    _pipeline_tie_cases(add)
    _zero_and_constant_cases(add)
    _small_cases(add)
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


# --------------------------------------------------------------------------- version 2
# The cases below were added in schema version 2, after every version-1 case, so that the
# version-1 cases keep their bytes and their order.

_TIE_THRESHOLDS = ((2, (1,)), (3, (1, 2, 3)), (4, (1, 3, 4, 7)), (8, (1, 3, 64, 127)))
"""(k, the thresholds j with a probe at β ± jα) of the pipeline-tie cases; odd j included."""

_SCHEME_BITS = {"binary": 1, "ternary": 2, "fixed_point": 4, "clip": 4}
"""The bit width of each comparison scheme's zero, one- and two-element cases."""


def _tie_comment(alpha: float, beta: float, offsets: tuple[int, ...]) -> str:
    thresholds = ", ".join(f"±{j}" for j in offsets)
    return (f"whole pipeline: the tensor's own μ and σ give β = {beta:.9g}, α = {alpha:.9g}; "
            f"values lie exactly on β + jα for j = {thresholds}, "
            "each must get the upper cell's code j + 1")


def _pipeline_tie_cases(add: Any) -> None:
    """Ties on thresholds other than the mean, through the whole pipeline (no given α, β)."""
    for profile in ("exact", "paper"):
        for dtype in _DTYPES:
            for bits, offsets in _TIE_THRESHOLDS:
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-pipeline-tie"
                tensor = tie_tensor(profile, bits, offsets, dtype, -27, _rng(case_id))
                add(build_case(case_id, _tie_comment(tensor.alpha, tensor.beta, offsets),
                               ["tie", "pipeline-tie"], "ul2q", profile, bits, tensor.weights))
        for bits, offsets in _TIE_THRESHOLDS[:2]:
            case_id = f"ul2q-{profile}-k{bits}-float32-pipeline-tie-large-alpha"
            tensor = tie_tensor(profile, bits, offsets, "float32", 0, _rng(case_id))
            comment = _tie_comment(tensor.alpha, tensor.beta, offsets) + (
                "; α is in the millions and the float32 inputs up to 3e7 are 2 apart")
            add(build_case(case_id, comment, ["tie", "pipeline-tie"], "ul2q", profile, bits,
                           tensor.weights))
    for dtype in _DTYPES:
        for bits, offsets in _TIE_THRESHOLDS:
            case_id = f"ul2q-caffe-k{bits}-{dtype}-pipeline-tie"
            tensor = caffe_tie_tensor(bits, offsets, dtype, _rng(case_id))
            comment = _tie_comment(tensor.alpha, tensor.beta, offsets).replace(
                "each must get the upper cell's code j + 1",
                "Caffe's t = (w − μ)·f32(1/α) is exactly j there and its rule gives j + 1 "
                "for j > 0 but j for j < 0 (y = j + ½ rounds away from zero)")
            add(build_case(case_id, comment, ["tie", "pipeline-tie", "defect"], "ul2q",
                           "caffe", bits, tensor.weights))


def _zero_and_constant_cases(add: Any) -> None:
    """Per-tensor zero tensors for every scheme, and large constant μL2Q tensors."""
    for dtype in _DTYPES:
        for profile in _PROFILES:
            for bits in (2, 9):
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-zero-tensor"
                comment = "8 zeros, one (α, β) for the tensor: σ = 0" + (
                    "" if profile == "caffe" else ", α = 0, every code 1 and ŵ = 0")
                add(_caffe_note(build_case(case_id, comment, ["constant", "zero-tensor"],
                                           "ul2q", profile, bits, np.zeros(8, dtype=dtype))))
        for scheme, bits in _SCHEME_BITS.items():
            case_id = f"{scheme}-k{bits}-{dtype}-zero-tensor"
            add(build_case(case_id, "8 zeros, one α for the tensor: α = 0 and ŵ = 0",
                           ["constant", "zero-tensor"], scheme, None, bits,
                           np.zeros(8, dtype=dtype)))
        for profile in _PROFILES:
            case_id = f"ul2q-{profile}-k4-{dtype}-large-constant"
            comment = ("2049 equal values 0.3: σ = 0 exactly, although a float32 sum of them "
                       "or a float64 mean of them is not exactly 0.3") + (
                "" if profile == "caffe" else "; every code 1 and ŵ = β = 0.3")
            add(_caffe_note(build_case(case_id, comment, ["constant"], "ul2q", profile, 4,
                                       np.full(2049, 0.3, dtype=dtype))))


def _small_cases(add: Any) -> None:
    """n = 1 for the comparison schemes, and n = 2 (σ exact: population σ, not n − 1)."""
    for dtype in _DTYPES:
        for scheme, bits in _SCHEME_BITS.items():
            case_id = f"{scheme}-k{bits}-{dtype}-one-element"
            add(build_case(case_id, "one value 0.3", ["one-element"], scheme, None, bits,
                           np.array([0.3], dtype=dtype)))
            case_id = f"{scheme}-k{bits}-{dtype}-two-element"
            add(build_case(case_id, "two values −0.25 and 1.75", ["two-element"], scheme,
                           None, bits, np.array([-0.25, 1.75], dtype=dtype)))
        for profile in _PROFILES:
            for bits in (2, 4):
                case_id = f"ul2q-{profile}-k{bits}-{dtype}-two-element"
                add(build_case(case_id, "two values 0.25 and 1.75: μ = 1 and σ = 0.75 "
                               "exactly (dividing by n − 1 would give 1.0607)",
                               ["two-element"], "ul2q", profile, bits,
                               np.array([0.25, 1.75], dtype=dtype)))
            case_id = f"ul2q-{profile}-k2-{dtype}-two-element-constant"
            comment = "two equal values 0.3: σ = 0" + (
                "" if profile == "caffe" else ", both codes 1 and ŵ = β = 0.3")
            add(_caffe_note(build_case(case_id, comment, ["constant", "two-element"], "ul2q",
                                       profile, 2, np.full(2, 0.3, dtype=dtype))))


__all__ = [
    "generate_cases",
]
