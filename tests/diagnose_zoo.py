"""The mutant zoo: μL2Q implementations with chosen deviations, as ``solve(request)``.

Each mutant is the definition (docs/spec.md) written out here step by step from this
package's building blocks (λ tables, ``stats.moments``, the caffe profile's record) with the
deviations named in a dict {aspect: label} injected. The diagnosis under test never sees
this code: the expected labels of a mutant are the dict it was built from.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ul2q_ref.codebook import code_range
from ul2q_ref.crosscheck.encoding import from_hex, to_hex
from ul2q_ref.crosscheck.reference_impl import solve as reference_solve
from ul2q_ref.gaussian import PAPER_TABLE_I, optimal_lambda
from ul2q_ref.profiles.caffe import LAMBDA_TABLE
from ul2q_ref.stats import moments

EPSILON = 1e-7

DEVIATIONS: dict[str, tuple[str, ...]] = {
    "lambda": ("table-1", "caffe-table", "other"),
    "lambda_above_8": ("paper-range-rule", "caffe-6.2-sigma", "range-c", "other"),
    "std_estimator": ("unbiased", "other"),
    "epsilon": ("added-to-alpha", "divisor-only", "other"),
    "zero_point": ("0", "1", "other"),
    "tie_rule": ("lower-cell", "half-even", "half-away", "other"),
    "statistics_precision": ("float32", "other"),
    "per_channel": ("ignored", "refused"),
    "code_range": ("unclipped",),
    "degenerate": ("nan", "other"),
    "subnormals": ("flushed", "nan", "other"),
    "decode_arithmetic": ("reciprocal", "straight-through-residue", "other"),
}
"""Every deviation the zoo can inject, by aspect (the definition's labels are left out).

The ``other`` ones: σ·√(n/(n + 1)); ε both stored in α and added again when dividing;
z = ¼; ties toward zero (round half toward zero of t + ½: down for t ≥ 0, up below);
a one-pass float64 variance E[w²] − μ² for float32 input; ŵ in float32 arithmetic."""


DEFINITION_LABELS = {
    "lambda": "exact", "lambda_above_8": "exact", "std_estimator": "population",
    "epsilon": "none", "zero_point": "0.5", "tie_rule": "upper-cell",
    "statistics_precision": "float64", "per_channel": "supported", "code_range": "clipped",
    "degenerate": "beta-exactly", "subnormals": "exact", "decode_arithmetic": "once-rounded",
}
"""What the definition does on each aspect (docs/crosscheck.md, "Diagnosis")."""

MASKED = {
    frozenset({("epsilon", "added-to-alpha"), ("degenerate", "nan")}):
        "α = ε > 0 on a constant tensor: the σ = 0 branch never runs",
    frozenset({("epsilon", "added-to-alpha"), ("degenerate", "other")}):
        "α = ε > 0 on a constant tensor: the σ = 0 branch never runs",
    frozenset({("epsilon", "divisor-only"), ("degenerate", "nan")}):
        "the divisor α + ε > 0 on a constant tensor: nothing is divided by 0",
    frozenset({("epsilon", "added-to-alpha"), ("subnormals", "other")}):
        "α = λσ + ε with σ ~ 1e-310 is ε whether σ underflows to 0 or not",
    frozenset({("epsilon", "other"), ("degenerate", "nan")}):
        "α = ε > 0 on a constant tensor: the σ = 0 branch never runs",
    frozenset({("epsilon", "other"), ("degenerate", "other")}):
        "α = ε > 0 on a constant tensor: the σ = 0 branch never runs",
    frozenset({("epsilon", "other"), ("subnormals", "other")}):
        "α = λσ + ε with σ ~ 1e-310 is ε whether σ underflows to 0 or not",
}
"""Pairs whose second deviation the first one makes unobservable (no input shows it)."""


def all_pairs() -> list[dict[str, str]]:
    """Every pair of deviations of two different aspects that some input can show."""
    singles = [(aspect, label) for aspect, labels in DEVIATIONS.items() for label in labels]
    pairs = []
    for index, first in enumerate(singles):
        for second in singles[index + 1:]:
            if first[0] != second[0] and frozenset({first, second}) not in MASKED:
                pairs.append(dict([first, second]))
    return pairs


def expected_labels(deviations: dict[str, str]) -> dict[str, str | None]:
    """The label of every aspect for a mutant built with `deviations` (None: not determinable).

    An unknown σ estimator (``std_estimator=other``) leaves α/σ without a meaning: λ (both
    aspects) cannot be fitted, and neither the float64 precision nor exact subnormals can be
    confirmed, since both compare α with the fitted λσ + ε (float32 precision, flushed and
    NaN subnormals do not need it).
    """
    labels: dict[str, str | None] = {**DEFINITION_LABELS, **deviations}
    if deviations.get("std_estimator") == "other":
        labels["lambda"] = labels["lambda_above_8"] = None
        if labels["statistics_precision"] != "float32":
            labels["statistics_precision"] = None
        if labels["subnormals"] not in ("flushed", "nan"):
            labels["subnormals"] = None
    return labels


class Refused(ValueError):
    """The mutant refuses the request (becomes an error result)."""


def _lambda(bits: int, deviations: dict[str, str], row: np.ndarray, sigma: float) -> float:
    if bits <= 8:
        rule = deviations.get("lambda", "exact")
        if rule == "table-1":
            return PAPER_TABLE_I[bits][0]
        if rule == "caffe-table":
            return float(np.float32(LAMBDA_TABLE[bits - 1]))
        if rule == "other":
            return optimal_lambda(bits) * 1.01
        return optimal_lambda(bits)
    rule = deviations.get("lambda_above_8", "exact")
    levels = 2.0**bits - 1.0
    if rule == "paper-range-rule":
        return float(row.max() - row.min()) / levels
    if rule == "caffe-6.2-sigma":
        return 6.2 * sigma / levels
    if rule == "range-c":
        return 8.0 / levels
    if rule == "other":
        return optimal_lambda(bits) * 0.9
    return optimal_lambda(bits)


def _is_subnormal(row: np.ndarray) -> np.ndarray:
    tiny = np.finfo(row.dtype).tiny
    return (row != 0) & (np.abs(row) < tiny)


def _row_statistics(row: np.ndarray, bits: int, deviations: dict[str, str]
                    ) -> tuple[float, float]:
    """α, β of one channel (row in the input dtype)."""
    subnormal = _is_subnormal(row).any()
    rule = deviations.get("subnormals", "exact")
    if subnormal and rule == "flushed":
        row = np.where(_is_subnormal(row), 0.0, row).astype(row.dtype)
    if row.dtype == np.float32 and deviations.get("statistics_precision") == "float32":
        mean32 = np.mean(row, dtype=np.float32)
        deviation = row - mean32
        sigma = float(np.sqrt(np.mean(deviation * deviation, dtype=np.float32)))
        mean = float(mean32)
    elif row.dtype == np.float32 and deviations.get("statistics_precision") == "other":
        wide = row.astype(np.float64)
        mean = float(wide.mean())
        sigma = math.sqrt(max(float(np.mean(wide * wide)) - mean * mean, 0.0))
    else:
        wide = row.astype(np.float64)
        mean_array, std_array = moments(wide, None)
        mean, sigma = float(mean_array[0]), float(std_array[0])
        if subnormal and rule == "nan":
            sigma = math.nan
        elif subnormal and rule == "other":
            deviation = wide - mean
            sigma = math.sqrt(float(np.mean(deviation * deviation)))  # underflows to 0
    if deviations.get("std_estimator") == "unbiased":
        n = row.size
        sigma = sigma * math.sqrt(n / (n - 1)) if n > 1 else math.nan
    elif deviations.get("std_estimator") == "other":
        sigma = sigma * math.sqrt(row.size / (row.size + 1))
    lam = _lambda(bits, deviations, row.astype(np.float64), sigma)
    alpha = lam * sigma
    if deviations.get("epsilon") in ("added-to-alpha", "other"):
        alpha += EPSILON
    if row.dtype == np.float32 and deviations.get("statistics_precision") == "float32":
        alpha = float(np.float32(alpha))
    return alpha, mean


def _codes(values: np.ndarray, alpha: float, beta: float, bits: int,
           deviations: dict[str, str]) -> np.ndarray:
    """The codes of one channel (float64 values), NaN where undefined."""
    with np.errstate(all="ignore"):
        return _codes_unchecked(values, alpha, beta, bits, deviations)


def _codes_unchecked(values: np.ndarray, alpha: float, beta: float, bits: int,
                     deviations: dict[str, str]) -> np.ndarray:
    lowest, highest = code_range(bits)
    divisor = alpha + EPSILON if deviations.get("epsilon") in ("divisor-only", "other") \
        else alpha
    t = (values - beta) / divisor
    rule = deviations.get("tie_rule", "upper-cell")
    if rule == "lower-cell":
        codes = np.where(t == np.floor(t), t, np.floor(t) + 1)
    elif rule == "half-even":
        codes = np.round(t + 0.5)
    elif rule == "half-away":
        y = t + 0.5
        codes = np.copysign(np.floor(np.abs(y) + 0.5), y)
    elif rule == "other":  # ties toward zero
        y = t + 0.5
        codes = np.where(y - np.floor(y) == 0.5, np.trunc(y), np.floor(y + 0.5))
    else:
        codes = np.floor(t) + 1
    if deviations.get("code_range") != "unclipped":
        codes = np.clip(codes, lowest, highest)
    if divisor == 0.0:
        if deviations.get("degenerate") == "nan":
            return np.full(values.shape, np.nan)
        codes = np.ones(values.shape)
    return codes


def _decode(codes: np.ndarray, values: np.ndarray, alpha: float, beta: float,
            dtype: np.dtype, deviations: dict[str, str]) -> np.ndarray:
    label = deviations.get("zero_point", "0.5")
    z = 0.25 if label == "other" else float(label)
    rule = deviations.get("decode_arithmetic", "once-rounded")
    with np.errstate(all="ignore"):
        if rule == "other":  # float32 arithmetic
            decoded = (np.float32(alpha) * (codes - z).astype(np.float32)
                       + np.float32(beta)).astype(dtype)
        elif rule == "reciprocal":
            decoded = ((codes - z) / np.divide(1.0, np.float64(alpha)) + beta).astype(dtype)
        else:
            decoded = (alpha * (codes - z) + beta).astype(dtype)
        if rule == "straight-through-residue":
            decoded = (values + (decoded - values)).astype(dtype)
    if alpha == 0.0 and deviations.get("degenerate") == "other":
        decoded = np.zeros_like(decoded)
    return decoded


def _rows(weights: np.ndarray, axis: int | None) -> np.ndarray:
    return weights.reshape(1, -1) if axis is None else np.moveaxis(weights, axis, 0).reshape(
        weights.shape[axis], -1)


def _unrows(rows: np.ndarray, shape: tuple[int, ...], axis: int | None) -> np.ndarray:
    if axis is None:
        return rows.reshape(shape)
    moved = list(shape)
    moved.insert(0, moved.pop(axis))
    return np.moveaxis(rows.reshape(moved), 0, axis)


def _step(weights: np.ndarray, bits: int, axis: int | None, alphas: list[float],
          betas: list[float], deviations: dict[str, str]) -> tuple[list[Any], np.ndarray]:
    rows = _rows(weights, axis)
    codes_rows, output_rows = [], []
    for row, alpha, beta in zip(rows, alphas, betas, strict=True):
        codes = _codes(row.astype(np.float64), alpha, beta, bits, deviations)
        output_rows.append(_decode(np.nan_to_num(codes), row, alpha, beta, weights.dtype,
                                   deviations)
                           if not np.isnan(codes).any() else np.full(row.shape, np.nan,
                                                                    dtype=weights.dtype))
        codes_rows.append(np.nan_to_num(codes))
    codes = _unrows(np.array(codes_rows), weights.shape, axis).astype(np.int64)
    output = _unrows(np.array(output_rows), weights.shape, axis).astype(weights.dtype)
    return codes.reshape(-1).tolist(), output


def make_solve(deviations: dict[str, str], *, output_only: bool = False,
               pipeline_only: bool = False, dtypes: tuple[str, ...] = ("float32", "float64")
               ) -> Any:
    """A ``solve(request)`` for μL2Q with `deviations` injected (see :data:`DEVIATIONS`).

    ``output_only``: answers carry ŵ only (no α, β, codes); ``pipeline_only``: no encode
    step; ``dtypes``: the input dtypes it accepts (others are refused).
    """
    unknown = {aspect for aspect in deviations if aspect not in DEVIATIONS}
    assert not unknown, unknown

    def solve(request: dict[str, Any]) -> dict[str, Any]:
        dtype = request["dtype"]
        if dtype not in dtypes:
            raise Refused(f"this implementation handles {', '.join(dtypes)} only")
        weights = from_hex(request["input"]["hex"], dtype).reshape(request["shape"])
        bits, axis = int(request["bits"]), request["axis"]
        parameter = request["parameter_dtype"]
        if axis is not None:
            axis %= weights.ndim
            if deviations.get("per_channel") == "refused":
                raise Refused("no per-channel mode")
        result: dict[str, Any] = {"id": request["id"]}
        if request.get("quantize", True):
            if axis is not None and deviations.get("per_channel") == "ignored":
                alpha, beta = _row_statistics(weights.reshape(-1), bits, deviations)
                channels = weights.shape[axis]
                alphas, betas = [alpha] * channels, [beta] * channels
            else:
                pairs = [_row_statistics(row, bits, deviations) for row in _rows(weights, axis)]
                alphas, betas = [a for a, _ in pairs], [b for _, b in pairs]
            codes, output = _step(weights, bits, axis, alphas, betas, deviations)
            part: dict[str, Any] = {"output": {"hex": to_hex(output, dtype)}}
            if not output_only:
                part.update({"alpha": {"hex": to_hex(alphas, parameter)},
                             "beta": {"hex": to_hex(betas, parameter)}, "codes": codes})
            result["quantize"] = part
        if not pipeline_only and request.get("encode") is not None:
            given = request["encode"]
            alphas = from_hex(given["alpha"]["hex"], parameter).tolist()
            betas = from_hex(given["beta"]["hex"], parameter).tolist()
            codes, output = _step(weights, bits, axis, alphas, betas, deviations)
            step: dict[str, Any] = {"output": {"hex": to_hex(output, dtype)}}
            if not output_only:
                step["codes"] = codes
            result["encode"] = step
        return result

    return solve


def profile_solve(profile: str) -> Any:
    """This package's `profile` (paper, caffe) answering requests that ask for the definition.

    The caffe profile's α, β are float32 numbers; they are sent back in the request's
    parameter dtype (float64: exactly).
    """

    def solve(request: dict[str, Any]) -> dict[str, Any]:
        parameter = request["parameter_dtype"]
        own = "float32" if profile == "caffe" else parameter
        converted = dict(request, profile=profile, parameter_dtype=own)
        if request.get("encode") is not None:
            encode = {name: {"hex": to_hex(from_hex(value["hex"], parameter), own)}
                      for name, value in request["encode"].items()}
            converted["encode"] = encode
        result = reference_solve(converted)
        part = result.get("quantize")
        if part is not None:
            for name in ("alpha", "beta"):
                part[name] = {"hex": to_hex(from_hex(part[name]["hex"], own), parameter)}
            if any(code is None for code in part["codes"]):
                del part["codes"]
        encoded = result.get("encode")
        if encoded is not None and any(code is None for code in encoded["codes"]):
            del encoded["codes"]
        return result

    return solve


__all__ = ["DEFINITION_LABELS", "DEVIATIONS", "EPSILON", "MASKED", "all_pairs",
           "expected_labels", "make_solve", "profile_solve"]


# ---------------------------------------------------------------------- comparison schemes

SCHEME_DEVIATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "binary": {"sign_of_zero": ("minus-one", "sign-bit", "zero"), "scale": ("other",)},
    "ternary": {"threshold_rule": ("inclusive",), "threshold_factor": ("other",),
                "zero_tensor": ("nan",)},
    "fixed_point": {"rounding": ("half-even", "half-up", "floor", "truncate"),
                    "clipping": ("unclipped",), "exponent": ("log2",),
                    "zero_tensor": ("nan",)},
    "clip": {"rounding": ("half-even", "floor"), "clipping": ("unclipped",),
             "zero_tensor": ("nan",)},
}
"""Every deviation the zoo injects into each comparison scheme (binary's α = mean|w| of
zeros is 0 and ŵ = 0·sign(w) = 0 under every sign rule: no zero-tensor deviation is natural
there)."""

SCHEME_DEFINITIONS = {
    "binary": {"sign_of_zero": "plus-one", "scale": "mean-abs", "zero_tensor": "zero"},
    "ternary": {"threshold_rule": "strict", "threshold_factor": "0.7", "zero_tensor": "zero"},
    "fixed_point": {"rounding": "half-away", "clipping": "clipped", "exponent": "frexp",
                    "zero_tensor": "zero"},
    "clip": {"rounding": "half-away", "clipping": "clipped", "zero_tensor": "zero"},
}
"""What the definition does on each scheme's aspects (docs/spec.md §5)."""

_ROUND = {
    "half-away": lambda x: np.copysign(np.floor(np.abs(x) + 0.5), x),
    "half-even": np.round,
    "half-up": lambda x: np.floor(x + 0.5),
    "floor": np.floor,
    "truncate": np.trunc,
}


def _scheme_parameters(scheme: str, row: np.ndarray, bits: int, deviations: dict[str, str]
                       ) -> tuple[float, float | None]:
    """α (and Δ) of one channel, float64 row."""
    magnitude = np.abs(row)
    if scheme == "binary":
        return (float(magnitude.max()) if deviations.get("scale") == "other"
                else float(magnitude.mean())), None
    if scheme == "ternary":
        factor = 0.75 if deviations.get("threshold_factor") == "other" else 0.7
        delta = factor * float(magnitude.mean())
        beyond = magnitude[magnitude > delta]
        if beyond.size == 0:
            return (math.nan if deviations.get("zero_tensor") == "nan" else 0.0), delta
        return float(beyond.mean()), delta
    largest = float(magnitude.max())
    if scheme == "clip":
        return largest / (2 ** (bits - 1) - 1), None
    if largest == 0.0:
        return 0.0, None
    if deviations.get("exponent") == "log2":
        exponent = math.floor(float(np.log2(row.dtype.type(largest))))
    else:
        exponent = math.frexp(largest)[1] - 1
    return 2.0 ** (exponent - (bits - 2)), None


def _scheme_codes(scheme: str, row: np.ndarray, alpha: float, delta: float | None,
                  bits: int, deviations: dict[str, str]) -> np.ndarray:
    values = row.astype(np.float64)
    if scheme == "binary":
        rule = deviations.get("sign_of_zero", "plus-one")
        codes = np.where(values > 0, 1.0, np.where(values < 0, -1.0, 1.0))
        zero = values == 0
        if rule == "minus-one":
            codes[zero] = -1.0
        elif rule == "sign-bit":
            codes[zero] = np.where(np.signbit(values[zero]), -1.0, 1.0)
        elif rule == "zero":
            codes[zero] = 0.0
        return codes
    if scheme == "ternary":
        assert delta is not None
        if deviations.get("threshold_rule") == "inclusive":
            return (values >= delta).astype(float) - (values <= -delta).astype(float)
        return (values > delta).astype(float) - (values < -delta).astype(float)
    half = 2 ** (bits - 1)
    lowest, highest = (-half, half - 1) if scheme == "fixed_point" else (1 - half, half - 1)
    with np.errstate(all="ignore"):
        scaled = values / alpha
    if alpha == 0.0 and deviations.get("zero_tensor") != "nan":
        return np.zeros(values.shape)
    codes = _ROUND[deviations.get("rounding", "half-away")](scaled)
    if deviations.get("clipping") != "unclipped":
        codes = np.clip(codes, lowest, highest)
    return codes


def make_scheme_solve(scheme: str, deviations: dict[str, str], *, output_only: bool = False
                      ) -> Any:
    """A ``solve(request)`` for a comparison scheme with `deviations` injected."""
    assert set(deviations) <= set(SCHEME_DEVIATIONS[scheme]), deviations

    def answer(weights: np.ndarray, dtype: str, alpha: float, delta: float | None,
               bits: int, parameter: str, with_parameters: bool) -> dict[str, Any]:
        codes = _scheme_codes(scheme, weights.reshape(-1), alpha, delta, bits, deviations)
        with np.errstate(all="ignore"):
            output = (alpha * codes).astype(dtype)
        part: dict[str, Any] = {"output": {"hex": to_hex(output, dtype)}}
        if not output_only and np.all(np.isfinite(codes)):
            part["codes"] = [int(c) for c in codes]
            if with_parameters:
                part["alpha"] = {"hex": to_hex([alpha], parameter)}
                part["beta"] = {"hex": to_hex([0.0], parameter)}
                if delta is not None:
                    part["threshold"] = {"hex": to_hex([delta], parameter)}
        return part

    def solve(request: dict[str, Any]) -> dict[str, Any]:
        assert request["scheme"] == scheme and request["axis"] is None
        dtype, parameter = request["dtype"], request["parameter_dtype"]
        weights = from_hex(request["input"]["hex"], dtype)
        bits = int(request["bits"])
        result: dict[str, Any] = {"id": request["id"]}
        if request.get("quantize", True):
            alpha, delta = _scheme_parameters(scheme, weights, bits, deviations)
            result["quantize"] = answer(weights, dtype, alpha, delta, bits, parameter, True)
        given = request.get("encode")
        if given is not None:
            alpha = float(from_hex(given["alpha"]["hex"], parameter)[0])
            delta = (float(from_hex(given["threshold"]["hex"], parameter)[0])
                     if "threshold" in given else None)
            result["encode"] = answer(weights, dtype, alpha, delta, bits, parameter, False)
        return result

    return solve


GARBAGE = (0.0, -0.0, math.inf, -math.inf, math.nan, 1e-320, 3e38, -1.0, 5e-324)
"""Values a garbled answer is made of: zeros, infinities, NaN, subnormals, extremes."""


def garbled_solve(seed: int) -> Any:
    """The definition with its answers garbled at random (parts dropped, replaced by
    special values or junk, errors, non-objects): a hostile implementation."""
    import random

    chooser = random.Random(seed)
    base = make_solve({})

    def garble(part: dict[str, Any]) -> None:
        for key in list(part):
            draw = chooser.random()
            if draw < 0.15:
                del part[key]
            elif draw < 0.3 and key in ("alpha", "beta", "output"):
                dtype = "float64" if len(part[key]["hex"][0]) == 16 else "float32"
                part[key]["hex"] = to_hex([chooser.choice(GARBAGE) for _ in part[key]["hex"]],
                                          dtype)
            elif draw < 0.4 and key == "codes":
                part[key] = [chooser.randint(-10**6, 10**6) for _ in part[key]]
            elif draw < 0.45:
                part[key] = chooser.choice([None, 1, "x", [], {"hex": ["zz"]}])

    def solve(request: dict[str, Any]) -> Any:
        result = base(request)
        draw = chooser.random()
        if draw < 0.05:
            return {"id": request["id"], "error": "refused"}
        if draw < 0.08:
            return 42
        for name in ("quantize", "encode"):
            if isinstance(result.get(name), dict):
                garble(result[name])
        return result

    return solve
