r"""What a failing case says about the implementation: differences, patterns, aspects.

The checker (:mod:`.compare`) finds *that* a case fails; this module says *how*, in lines a
person can act on:

* differences in three units — ulps, absolute |got − expected| and relative
  |got − expected|/|expected|;
* the code book on both sides: α, β and, where the case carries σ in ``stats.details``, the
  normalised step λ_eff = α/σ that each side used;
* up to three differing elements (index, input, expected and actual code and ŵ);
* one line on the pattern of ŵ − ŵ_ref in units of the reference's α (a constant shift, a
  sign flip, codes that differ only where the input lies on a threshold, at odd or even
  thresholds);
* the **aspects** the failure points to, named as ``ul2q-ref diagnose`` names them
  (``lambda``, ``std_estimator``, ``epsilon``, ``zero_point``, ``tie_rule``,
  ``statistics_precision``, ``per_channel``, ``code_range``, ``degenerate``, ``subnormals``,
  ``decode_arithmetic``; ``lambda_above_8`` for k > 8, ``other`` when none fits). One case
  rarely separates interacting aspects (λ, the σ estimator and ε all move α), so these are
  leads for ``diagnose``, not verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..codebook import CODE_FORMATS, scheme_code_range
from ..gaussian import PAPER_TABLE_I
from ..profiles.caffe import LAMBDA_TABLE as CAFFE_LAMBDA_TABLE
from .encoding import describe

ASPECTS = (
    "lambda", "lambda_above_8", "std_estimator", "epsilon", "zero_point", "tie_rule",
    "statistics_precision", "per_channel", "code_range", "degenerate", "subnormals",
    "decode_arithmetic", "other",
)
"""The aspect names failures point to (``ul2q-ref diagnose`` reports the same names)."""

MAX_ELEMENTS = 3
"""How many differing elements a failure lists."""


def code_range(scheme: str, bits: int) -> tuple[int, int]:
    """The smallest and largest code of `scheme` at `bits` bits (from the scheme records)."""
    return scheme_code_range(scheme, bits)


def zero_point(scheme: str) -> float:
    """z of `scheme`'s code book ŵ = α(q − z) + β."""
    return CODE_FORMATS[scheme].zero_point


def number(value: float) -> str:
    """A float for a report line: 6 significant digits, NaN and ±inf by name."""
    return f"{value:.6g}"


def difference(expected: float, got: float) -> str:
    """``abs 1.2e-07, rel 3.4e-06``: the absolute and relative difference of two floats."""
    if np.isnan(expected) or np.isnan(got):
        return "abs n/a (NaN), rel n/a"
    absolute = abs(float(got) - float(expected))
    if expected == 0:
        return f"abs {absolute:.3g}, rel n/a (expected 0)"
    return f"abs {absolute:.3g}, rel {absolute / abs(float(expected)):.3g}"


def lambda_line(alpha_expected: np.ndarray, alpha_got: np.ndarray | None,
                sigma: np.ndarray | None) -> str | None:
    """``λ_eff = α/σ: expected … got …`` (first channel where they differ), or None without σ."""
    if sigma is None or alpha_got is None:
        return None
    channel = _first_difference(alpha_expected, alpha_got)
    s = float(sigma[channel])
    if not s > 0:
        return f"λ_eff = α/σ: undefined (σ = {number(s)})"
    where = "" if sigma.size == 1 else f"[{channel}]"
    return (f"λ_eff{where} = α/σ: expected {number(alpha_expected[channel] / s)} got "
            f"{number(alpha_got[channel] / s)} (σ = {number(s)} from the case's details)")


def _first_difference(a: np.ndarray, b: np.ndarray) -> int:
    differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    found = np.flatnonzero(differ)
    return int(found[0]) if found.size else 0


# --------------------------------------------------------------------------- elements


def index_text(flat: int, shape: tuple[int, ...]) -> str:
    """Element `flat` (C order) as report lines write it: ``5``, or ``(0, 1, 1)`` for 3-D."""
    if len(shape) <= 1:
        return str(int(flat))
    return str(tuple(int(i) for i in np.unravel_index(flat, shape)))


def element_lines(
    label: str,
    indices: Sequence[int],
    shape: tuple[int, ...],
    weights: np.ndarray,
    dtype: str,
    expected_codes: np.ndarray,
    known: np.ndarray,
    got_codes: np.ndarray | None,
    expected_output: np.ndarray,
    got_output: np.ndarray,
    distance: np.ndarray,
    alpha: np.ndarray,
) -> list[str]:
    """One line per differing element (the first :data:`MAX_ELEMENTS` of `indices`)."""
    lines = []
    for rank, flat in enumerate(list(indices)[:MAX_ELEMENTS]):
        where = index_text(flat, shape)
        expected_code = int(expected_codes[flat]) if known[flat] else "undefined"
        if got_codes is None:
            got_code = "not given"
        elif got_codes[flat] == NULL_CODE:
            got_code = "null"
        else:
            got_code = str(int(got_codes[flat]))
        step = float(alpha[flat])
        shift = float(got_output[flat]) - float(expected_output[flat])
        units = (f", ŵ − ŵ_ref = {shift / step:+.3f} α" if step > 0 and np.isfinite(shift)
                 else "")
        which = "first" if rank == 0 else "next"
        lines.append(
            f"{label}: {which} difference at index {where}: input "
            f"{describe(weights[flat], dtype)}, code expected {expected_code} got {got_code}, "
            f"ŵ expected {describe(expected_output[flat], dtype)} "
            f"got {describe(got_output[flat], dtype)} ({ulps(distance[flat])}){units}"
        )
    return lines


NULL_CODE = int(np.iinfo(np.int64).min)
"""How an undefined (``null``) code is held in the checker's int64 arrays."""


def ulps(value: float) -> str:
    """``3 ulps``; ``NaN vs number`` for an infinite distance."""
    if value == float("inf"):
        return "NaN vs number"
    return f"{int(value)} ulp{'s' if value != 1 else ''}"


# --------------------------------------------------------------------------- patterns


@dataclass
class Pattern:
    """The pattern of a failure: one line, and the aspects it points to."""

    line: str
    aspects: list[str]


def pattern(
    bad: np.ndarray,
    code_bad: np.ndarray | None,
    got_codes: np.ndarray | None,
    expected_codes: np.ndarray,
    expected_output: np.ndarray,
    got_output: np.ndarray,
    alpha: np.ndarray,
    on_boundary: np.ndarray,
    threshold: np.ndarray,
    scheme: str,
    distance: np.ndarray,
    outside: np.ndarray | None = None,
) -> Pattern:
    r"""Describe ŵ − ŵ_ref (in units of the reference's α) over the differing elements.

    Parameters
    ----------
    bad : numpy.ndarray
        Booleans: the elements that fail (codes or ŵ).
    code_bad : numpy.ndarray or None
        Booleans: the elements whose codes fail (None when codes were not compared).
    on_boundary : numpy.ndarray
        Booleans: inputs on a cell boundary of the reference (the next float below or above
        has another code).
    threshold : numpy.ndarray
        Where `on_boundary`: the index j of that boundary, threshold β + jα between codes j
        and j + 1 (μL2Q): expected code − 1 at the lowest input of a cell, the expected code
        at the highest.
    alpha : numpy.ndarray
        The reference's α per element (for the units of the shifts).
    outside : numpy.ndarray, optional
        Booleans: the implementation's codes outside the scheme's code range.
    """
    expected = expected_output.astype(np.float64)
    got = got_output.astype(np.float64)
    count, size = int(bad.sum()), bad.size
    got_nan = np.isnan(got) & ~np.isnan(expected)
    if got_nan[bad].all():
        return Pattern(f"ŵ is NaN where the reference's is a number ({count} of {size})",
                       ["degenerate"])
    if np.isnan(expected[bad]).all():
        return Pattern(f"the reference's ŵ is NaN where the implementation's is a number "
                       f"({count} of {size})", ["degenerate"])
    finite = bad & np.isfinite(expected) & np.isfinite(got)
    flipped = finite & (expected != 0) & (got == -expected)
    if finite.any() and flipped[finite].all():
        return Pattern(f"sign flipped: ŵ = −ŵ_ref at every differing element ({count} of "
                       f"{size})", ["other"])
    cells = _whole_cells(bad, code_bad, expected_output, got_output, alpha, on_boundary)
    if cells is not None:
        implied = expected_codes.copy()
        implied[bad] += cells[bad]
        found = _code_pattern(bad, implied, expected_codes, on_boundary, threshold, scheme, size)
        return Pattern(f"ŵ is off by whole cells (codes not given; read from ŵ): {found.line}",
                       found.aspects)
    if code_bad is not None and got_codes is not None and code_bad.any():
        if outside is not None and not (code_bad & ~outside).any():
            return Pattern(f"codes differ only where the implementation's code is outside "
                           f"the code range ({int(code_bad.sum())} of {size}): not clipped",
                           ["code_range"])
        return _code_pattern(code_bad, got_codes, expected_codes, on_boundary, threshold,
                             scheme, size)
    with np.errstate(all="ignore"):
        shifts = (got - expected) / alpha
    usable = finite & (alpha > 0)
    agree = "; codes agree" if code_bad is not None else ""
    if finite.any() and np.isfinite(distance[bad]).all() and float(np.max(distance[bad])) <= 4:
        return Pattern(f"ŵ differs by at most {ulps(float(np.max(distance[bad])))}{agree}: "
                       "the decoding arithmetic", ["decode_arithmetic"])
    if usable.any():
        values = shifts[usable]
        low, high = float(values.min()), float(values.max())
        middle = float(np.median(values))
        if high - low <= 1e-3 and abs(middle) < 5e-4:
            return Pattern(f"ŵ is within 0.001 α of the reference at every differing element"
                           f"{agree}: the decoding arithmetic", ["decode_arithmetic"])
        slack = _rounding_in_alpha(expected_output, got_output, alpha)[usable]
        widest = float(slack.max())
        constant = high - low <= 1e-3 or (
            widest <= MAX_ROUNDING_SLACK
            and float(np.max(values - slack) - np.min(values + slack)) <= 1e-3)
        if constant:
            side = "below" if middle < 0 else "above"
            every = "every ŵ is" if count == size else f"ŵ is, at {count} of {size} elements,"
            within = (f" (±{widest:.3f} α: ŵ is rounded to {expected_output.dtype.name})"
                      if widest >= 5e-4 else "")
            return Pattern(f"{every} {abs(middle):.3f} α {side} the reference{within}{agree}",
                           ["zero_point"])
        return Pattern(f"ŵ − ŵ_ref ranges from {low:+.3f} α to {high:+.3f} α over {count} of "
                       f"{size} elements (median {middle:+.3f} α)", ["other"])
    return Pattern(f"{count} of {size} elements differ", ["other"])


def _whole_cells(bad: np.ndarray, code_bad: np.ndarray | None, expected_output: np.ndarray,
                 got_output: np.ndarray, alpha: np.ndarray,
                 on_boundary: np.ndarray) -> np.ndarray | None:
    """Without codes: ŵ − ŵ_ref in whole cells per element, when that is what ŵ shows.

    Only when every differing ŵ is a nonzero whole number of α away (within the rounding
    of ŵ) and the differences are on thresholds or not all the same — a constant shift of
    whole cells at every element is as much a zero point as different codes, and stays one.
    """
    if code_bad is not None:
        return None
    with np.errstate(all="ignore"):
        shifts = (got_output.astype(np.float64) - expected_output.astype(np.float64)) / alpha
        slack = _rounding_in_alpha(expected_output, got_output, alpha)
        steps = np.rint(shifts)
    usable = np.isfinite(shifts) & (alpha > 0) & (slack <= MAX_ROUNDING_SLACK)
    whole = usable & (np.abs(shifts - steps) <= 1e-3 + slack) & (steps != 0)
    if not bad.any() or not whole[bad].all():
        return None
    if not (on_boundary[bad].all() or np.unique(steps[bad]).size > 1):
        return None
    return np.where(bad, steps, 0).astype(np.int64)


MAX_ROUNDING_SLACK = 0.1
"""The largest rounding of ŵ (in units of α) under which a shift of ŵ is still called constant."""


def _rounding_in_alpha(expected_output: np.ndarray, got_output: np.ndarray,
                       alpha: np.ndarray) -> np.ndarray:
    r"""How far ŵ − ŵ_ref may be from the unrounded shift, in units of α, per element.

    Each side's ŵ is rounded to its dtype, by at most half an ulp:
    (ulp(ŵ_ref) + ulp(ŵ))/(2α). In float32 with a large mean and a small α this is a
    sizeable fraction of α (about 0.05 α at β = 1000, σ = 0.001, k = 2).
    """
    with np.errstate(all="ignore"):
        spacing = (np.spacing(np.abs(expected_output)).astype(np.float64)
                   + np.spacing(np.abs(got_output)).astype(np.float64))
        return np.asarray(spacing / (2.0 * alpha), dtype=np.float64)


def _code_pattern(code_bad: np.ndarray, got_codes: np.ndarray, expected_codes: np.ndarray,
                  on_boundary: np.ndarray, threshold: np.ndarray, scheme: str,
                  size: int) -> Pattern:
    delta = got_codes[code_bad] - expected_codes[code_bad]
    lowest, highest = int(delta.min()), int(delta.max())
    by = f"by exactly {lowest:+d}" if lowest == highest else f"by {lowest:+d} to {highest:+d}"
    differing = int(code_bad.sum())
    on = int((code_bad & on_boundary).sum())
    if on == differing:
        text = f"codes differ only where the input is on a threshold ({differing} of {size}), {by}"
        if lowest == highest == -1:
            text += " (the lower cell)"
        if scheme == "ul2q":
            thresholds = sorted({int(j) for j in threshold[code_bad]})
            odd = {j % 2 for j in thresholds}
            parity = "odd thresholds only" if odd == {1} else "even thresholds only" \
                if odd == {0} else "odd and even thresholds"
            listed = ", ".join(str(j) for j in thresholds[:6]) + (", …" if len(thresholds) > 6
                                                                 else "")
            text += f", at {parity} (j = {listed}; threshold j is β + jα)"
        return Pattern(text, ["tie_rule"])
    return Pattern(f"codes differ {by} at {differing} of {size} elements, {on} of them on a "
                   f"threshold", ["other"])


# --------------------------------------------------------------------------- statistics


def statistics_aspects(
    alpha_expected: np.ndarray,
    alpha_got: np.ndarray,
    beta_off: bool,
    sigma: np.ndarray | None,
    count: int,
    bits: int,
    flags: Sequence[str],
) -> list[str]:
    r"""The aspects a statistics-step failure points to.

    * NaN on one side only: ``degenerate`` (or ``subnormals`` for subnormal input);
    * β off: ``statistics_precision`` (β = μ has no other ingredient);
    * α = 0 where the reference's is not (σ came out 0): ``subnormals`` for subnormal input
      (flushed or underflowed squares), ``statistics_precision`` otherwise (cancellation);
    * α/α_ref = √(n/(n − 1)) (n values per channel): ``std_estimator``;
    * λ_eff = α/σ equal (to 10⁻⁶) to the paper's Table I or Caffe's table at k ≤ 8:
      ``lambda``; α off by more than 10⁻³ relative: ``lambda`` (``lambda_above_8`` for
      k > 8), and ``epsilon`` too when the excess is positive and below 10⁻⁵ absolute (an
      additive ε on a tiny α); α off by a small positive amount (< 10⁻⁵ absolute):
      ``epsilon`` or ``statistics_precision``; the same α on every channel where the
      reference's differ: ``per_channel``.
    """
    aspects: list[str] = []
    nan_mismatch = np.isnan(alpha_expected) != np.isnan(alpha_got)
    if nan_mismatch.any():
        aspects.append("subnormals" if "subnormal" in flags else "degenerate")
        return aspects
    if beta_off:
        aspects.append("statistics_precision")
    differ = alpha_expected != alpha_got
    if not differ.any():
        return aspects
    if np.any(differ & (alpha_got == 0) & (alpha_expected != 0)):  # σ computed as 0
        flushed = "subnormals" if "subnormal" in flags else "statistics_precision"
        return [*aspects, flushed] if flushed not in aspects else aspects
    if (alpha_got.size > 1 and np.all(alpha_got == alpha_got[0])
            and not np.all(alpha_expected == alpha_expected[0])):
        return [*aspects, "per_channel"]
    expected, got = alpha_expected[differ], alpha_got[differ]
    degenerate = "constant" in flags or "one-element" in flags
    if degenerate and np.all(expected == 0) and np.all(got > 0):
        return [*aspects, "epsilon", "degenerate"]
    with np.errstate(all="ignore"):
        ratio = got / expected
    if count > 1 and np.allclose(ratio, np.sqrt(count / (count - 1)), rtol=1e-7, atol=0):
        return [*aspects, "std_estimator"]
    if bits <= 8 and sigma is not None and _matches_a_table(alpha_got, sigma, bits):
        return [*aspects, "lambda"]
    relative = np.abs(ratio - 1.0)
    small_excess = bool(np.all(got - expected > 0) and np.all(got - expected < 1e-5))
    if np.all(relative > 1e-3):
        # a tiny α (large k, small σ) turns an additive ε into a large relative excess
        return [*aspects, "lambda" if bits <= 8 else "lambda_above_8",
                *(["epsilon"] if small_excess else [])]
    if small_excess:
        return [*aspects, "epsilon", "statistics_precision"]
    return [*aspects, "statistics_precision"]


def _matches_a_table(alpha: np.ndarray, sigma: np.ndarray, bits: int) -> bool:
    usable = sigma > 0
    if not usable.any():
        return False
    lam = alpha[usable] / sigma[usable]
    for table_value in (PAPER_TABLE_I[bits][0], CAFFE_LAMBDA_TABLE[bits - 1]):
        if np.allclose(lam, table_value, rtol=1e-6, atol=0):
            return True
    return False


def fallback_aspects(flags: Sequence[str]) -> list[str]:
    """Aspects a case's flags suggest when the failure itself names none."""
    found = []
    if "subnormal" in flags:
        found.append("subnormals")
    if "constant" in flags or "one-element" in flags or "zero-channel" in flags:
        found.append("degenerate")
    if "per-channel" in flags:
        found.append("per_channel")
    return found or ["other"]


__all__ = [
    "ASPECTS",
    "MAX_ELEMENTS",
    "MAX_ROUNDING_SLACK",
    "NULL_CODE",
    "Pattern",
    "code_range",
    "difference",
    "element_lines",
    "fallback_aspects",
    "index_text",
    "lambda_line",
    "number",
    "pattern",
    "statistics_aspects",
    "ulps",
    "zero_point",
]
