r"""The comparison schemes' aspects: binary, ternary, fixed point and clip (ŵ = αq, β = 0).

============  =======================  ============================================  ==========
scheme        aspect                   labels                                        definition
============  =======================  ============================================  ==========
binary        ``sign_of_zero``         plus-one, minus-one, sign-bit, zero, other     plus-one
binary        ``scale``                mean-abs, other (value: α/mean|w|)            mean-abs
ternary       ``threshold_rule``       strict, inclusive, other                      strict
ternary       ``threshold_factor``     0.7, other (value: Δ/mean|w|)                 0.7
fixed_point   ``exponent``             frexp, log2, other                            frexp
fixed_point,  ``rounding``             half-away, half-even, half-up, floor,         half-away
clip                                   truncate, other
fixed_point,  ``clipping``             clipped, unclipped, other                     clipped
clip
every scheme  ``zero_tensor``          zero, nan, other                              zero
============  =======================  ============================================  ==========

Probes: ±0 among ±1, ±½, ±2 (sign of zero, read off ŵ: no α needed); Δ = 0.375 and α = ½
given with values exactly on ±Δ; α = 0.125 given with values at w/α = j + ½ (ties), at
j + 0.3 and j + 0.7, and at ±100α (beyond every code range); max|w| one ulp below 2⁻²⁰ in
float64 and in float32, where ⌊log₂ max|w|⌋ from a rounded ``log2`` is one too large (the
step doubles), with max|w| = 2⁻²⁰ itself as the control; and a tensor of zeros.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...schemes import clip_range, fixed_point_range, power_of_two_step, round_half_away
from ..case import Case
from .model import Finding, judged, undetermined
from .observe import Observation, level_step
from .probes import Rounds, evidence, probe, symmetric_normal

DEFINITIONS: dict[str, dict[str, str]] = {
    "binary": {"sign_of_zero": "plus-one", "scale": "mean-abs", "zero_tensor": "zero"},
    "ternary": {"threshold_rule": "strict", "threshold_factor": "0.7", "zero_tensor": "zero"},
    "fixed_point": {"rounding": "half-away", "clipping": "clipped", "exponent": "frexp",
                    "zero_tensor": "zero"},
    "clip": {"rounding": "half-away", "clipping": "clipped", "zero_tensor": "zero"},
}
"""Each scheme's aspects and the definition's label of each (docs/spec.md §5)."""

ROUNDING_STEP = 0.125
TERNARY_DELTA, TERNARY_ALPHA = 0.375, 0.5
SIGN_PROBE = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
ROUNDING_BITS = 4


def definition_row(scheme: str) -> dict[str, str]:
    """The definition's labels for `scheme`'s aspects."""
    return dict(DEFINITIONS[scheme])


def _rounding_values() -> np.ndarray:
    ties = np.arange(-3, 3) + 0.5
    off = np.concatenate([np.arange(-3, 3) + 0.3, np.arange(-3, 3) + 0.7])
    return np.concatenate([ties, off]) * ROUNDING_STEP


ROUNDING_RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "half-away": round_half_away,
    "half-even": np.round,
    "half-up": lambda x: np.floor(x + 0.5),
    "floor": np.floor,
    "truncate": np.trunc,
}
"""How w/α becomes an integer, by label."""


def first_round_cases(scheme: str) -> list[Case]:
    """Every probe of `scheme` (one round: none depends on an answer)."""
    cases = [probe(f"{scheme}-zeros", "a tensor of zeros", scheme, _bits(scheme),
                   np.zeros(8))]
    if scheme == "binary":
        cases.append(probe("binary-sign", "+0 and −0 among ±1, ±½, ±2", "binary", 1,
                           SIGN_PROBE))
        cases.append(probe("binary-sign-float32", "+0 and −0 among ±1, ±½, ±2", "binary", 1,
                           SIGN_PROBE.astype(np.float32)))
        cases.append(probe("binary-scale", "α = mean|w|", "binary", 1,
                           symmetric_normal("binary-scale", 12)))
    elif scheme == "ternary":
        values = np.array([TERNARY_DELTA, -TERNARY_DELTA, 0.0, 1.0, -1.0])
        above = np.nextafter(values[:2], np.inf)
        below = np.nextafter(values[:2], -np.inf)
        cases.append(probe("ternary-threshold", "Δ = 0.375, α = ½ given: |w| = Δ exactly",
                           "ternary", 2, np.concatenate([values, above, below]),
                           given=(TERNARY_ALPHA, 0.0, TERNARY_DELTA)))
        cases.append(probe("ternary-factor", "Δ = 0.7·mean|w|", "ternary", 2,
                           symmetric_normal("ternary-factor", 12)))
    else:
        cases.append(probe(f"{scheme}-rounding", "α = 0.125 given: w/α = j + ½, j + 0.3, "
                           "j + 0.7", scheme, ROUNDING_BITS, _rounding_values(),
                           given=(ROUNDING_STEP, 0.0, None)))
        cases.append(probe(f"{scheme}-clipping", "α = 0.125 given: w/α = ±100", scheme,
                           ROUNDING_BITS, np.array([100.0, -100.0, 1.0]) * ROUNDING_STEP,
                           given=(ROUNDING_STEP, 0.0, None)))
    if scheme == "fixed_point":
        for dtype in ("float64", "float32"):
            top = np.nextafter(np.array(2.0**-20, dtype=dtype), np.array(0.0, dtype=dtype))
            for name, largest in (("below", top), ("at", np.array(2.0**-20, dtype=dtype))):
                values = np.concatenate([[largest], symmetric_normal("exponent", 6) * 2**-23])
                cases.append(probe(f"fixed_point-exponent-{name}-{dtype}",
                                   f"max|w| {name} 2^-20: ⌊log₂ max|w|⌋", "fixed_point", 8,
                                   values.astype(dtype)))
    return cases


def _bits(scheme: str) -> int:
    return {"binary": 1, "ternary": 2}.get(scheme, ROUNDING_BITS)


class SchemeDiagnosis:
    """Sends the probes of one comparison scheme and fits its aspects."""

    def __init__(self, scheme: str, rounds: Rounds) -> None:
        self.scheme = scheme
        self.rounds = rounds
        self.obs: dict[str, Observation] = {}

    def run(self) -> list[Finding]:
        """Every aspect's finding, in the order of :data:`DEFINITIONS`."""
        self.obs = self.rounds.ask(first_round_cases(self.scheme), f"{self.scheme} aspects")
        fits = {"sign_of_zero": self.sign_of_zero, "scale": self.scale,
                "threshold_rule": self.threshold_rule,
                "threshold_factor": self.threshold_factor, "rounding": self.rounding,
                "clipping": self.clipping, "exponent": self.exponent,
                "zero_tensor": self.zero_tensor}
        findings = []
        for aspect in DEFINITIONS[self.scheme]:
            try:
                with np.errstate(all="ignore"):
                    findings.append(fits[aspect]())
            except (ArithmeticError, ValueError, TypeError, IndexError, KeyError) as error:
                findings.append(undetermined(
                    aspect, f"the answers could not be fitted ({type(error).__name__}: "
                            f"{str(error)[:120]})"))
        return findings

    def _get(self, name: str) -> Observation | None:
        return self.obs.get(f"diag-{name}")

    def _encoded_codes(self, aspect: str, name: str, alpha: float, given: str
                       ) -> tuple[Observation, np.ndarray] | Finding:
        """The codes the encode step of probe `name` answered, and its observation.

        Codes are those returned, else ŵ/α rounded (α = `alpha`, the step the probe gave).
        Without an encode step or without codes and ŵ: the undetermined finding of
        `aspect` (`given` names the parameter the encode step would have been given).
        """
        obs = self._get(name)
        if obs is None or obs.encode is None:
            return undetermined(aspect, f"no encode step ({given} cannot be given)")
        codes = _codes(obs.encode, alpha)
        if codes is None:
            return undetermined(aspect, "no codes and no ŵ")
        return obs, codes

    def _judged(self, aspect: str, label: str | None, value: Any = None,
                evidence: dict[str, Any] | None = None) -> Finding:
        return judged(aspect, label, DEFINITIONS[self.scheme][aspect], value, evidence)

    # ------------------------------------------------------------------ binary

    def sign_of_zero(self) -> Finding:
        """Codes of +0 and −0 read off ŵ: equal to ŵ(1) is +1, to ŵ(−1) is −1, 0 is 0."""
        for name in ("binary-sign", "binary-sign-float32"):
            obs = self._get(name)
            if obs is None or obs.pipeline is None or obs.pipeline.output is None:
                continue
            output = obs.pipeline.output
            plus, minus = output[2], output[3]
            signs: list[int | None] = []
            for value in output[:2]:
                if value == plus and plus != minus:
                    signs.append(1)
                elif value == minus and plus != minus:
                    signs.append(-1)
                elif value == 0.0:
                    signs.append(0)
                else:
                    signs.append(None)
            rules: dict[tuple[int | None, int | None], str] = {
                (1, 1): "plus-one", (-1, -1): "minus-one", (1, -1): "sign-bit", (0, 0): "zero"}
            label = rules.get((signs[0], signs[1]), "other")
            return self._judged("sign_of_zero", label, None,
                                evidence(obs, f"ŵ(±0) = ŵ(1) = {float(plus)!r}",
                                          f"ŵ(+0) = {float(output[0])!r}, "
                                          f"ŵ(−0) = {float(output[1])!r}"))
        return undetermined("sign_of_zero", "no ŵ for the ±0 probe")

    def scale(self) -> Finding:
        """α (returned, or ŵ of the largest value) over mean|w|."""
        obs = self._get("binary-scale")
        if obs is None or obs.pipeline is None:
            return undetermined("scale", "no answer to the scale probe")
        part = obs.pipeline
        if part.alpha is not None:
            alpha = float(part.alpha[0])
        elif part.output is not None:
            alpha = float(np.max(part.output))
        else:
            return undetermined("scale", "no α and no ŵ")
        mean = float(np.mean(np.abs(obs.case.weights)))
        ratio = alpha / mean if mean else math.nan
        label = "mean-abs" if abs(ratio - 1.0) < 1e-9 else "other"
        return self._judged("scale", label, _rounded(ratio),
                            evidence(obs, f"α = {mean!r}", f"α = {alpha!r}"))

    # ------------------------------------------------------------------ ternary

    def threshold_rule(self) -> Finding:
        """|w| = Δ exactly: code 0 (strict >) or ±1 (inclusive ≥)."""
        found = self._encoded_codes("threshold_rule", "ternary-threshold", TERNARY_ALPHA, "Δ")
        if isinstance(found, Finding):
            return found
        obs, codes = found
        on = (int(codes[0]), int(codes[1]))
        label = {(0, 0): "strict", (1, -1): "inclusive"}.get(on, "other")
        return self._judged("threshold_rule", label, None,
                            evidence(obs, "codes 0, 0 at w = ±Δ", f"codes {on[0]}, {on[1]}"))

    def threshold_factor(self) -> Finding:
        """Δ/mean|w| from the returned threshold."""
        obs = self._get("ternary-factor")
        if obs is None or obs.pipeline is None or obs.pipeline.threshold is None:
            return undetermined("threshold_factor", "Δ is not returned")
        record = float(obs.pipeline.threshold[0])
        mean = float(np.mean(np.abs(obs.case.weights)))
        ratio = record / mean
        label = "0.7" if abs(ratio - 0.7) < 1e-9 else "other"
        return self._judged("threshold_factor", label, _rounded(ratio),
                            evidence(obs, f"Δ = {0.7 * mean!r}", f"Δ = {record!r}"))

    # ------------------------------------------------------------------ fixed point, clip

    def _limits(self) -> tuple[int, int]:
        return (fixed_point_range if self.scheme == "fixed_point" else clip_range)(
            ROUNDING_BITS)

    def rounding(self) -> Finding:
        """Which rule turns w/α into a code, from ties j + ½ and values j + 0.3, j + 0.7."""
        found = self._encoded_codes("rounding", f"{self.scheme}-rounding", ROUNDING_STEP, "α")
        if isinstance(found, Finding):
            return found
        obs, codes = found
        scaled = obs.case.weights / ROUNDING_STEP
        lowest, highest = self._limits()
        label = next((name for name, rule in ROUNDING_RULES.items()
                      if np.array_equal(np.clip(rule(scaled), lowest, highest), codes)),
                     "other")
        expected = np.clip(round_half_away(scaled), lowest, highest).astype(int)
        differ = np.flatnonzero(codes != expected)
        index = int(differ[0]) if differ.size else 0
        return self._judged("rounding", label, None, evidence(
            obs, f"code {int(expected[index])} at w/α = {float(scaled[index])}",
            f"code {int(codes[index])}"))

    def clipping(self) -> Finding:
        """Codes of w/α = ±100: saturated at the range's ends, or not."""
        found = self._encoded_codes("clipping", f"{self.scheme}-clipping", ROUNDING_STEP, "α")
        if isinstance(found, Finding):
            return found
        obs, codes = found
        lowest, highest = self._limits()
        got = (int(codes[0]), int(codes[1]))
        label = {(highest, lowest): "clipped", (100, -100): "unclipped"}.get(got, "other")
        return self._judged("clipping", label, list(got),
                            evidence(obs, f"codes {highest}, {lowest}",
                                      f"codes {got[0]}, {got[1]}"))

    def exponent(self) -> Finding:
        """α with max|w| one ulp below 2⁻²⁰ (and at it): frexp's exact ⌊log₂⌋ or log2's."""
        ratios: dict[str, float] = {}
        shown: Observation | None = None
        for dtype in ("float64", "float32"):
            for where in ("below", "at"):
                obs = self._get(f"fixed_point-exponent-{where}-{dtype}")
                alpha = _alpha(obs)
                if obs is None or alpha is None:
                    continue
                largest = np.abs(obs.case.weights).max().astype(np.float64)
                ratios[f"{where}-{dtype}"] = alpha / float(power_of_two_step(largest, 8))
                if where == "below" and (shown is None or ratios[f"{where}-{dtype}"] != 1.0):
                    shown = obs
        if shown is None or not any(key.startswith("below") for key in ratios):
            return undetermined("exponent", "no α (returned or from the levels of ŵ)")
        at_ok = all(abs(r - 1.0) < 1e-12 for k, r in ratios.items() if k.startswith("at"))
        below = [r for k, r in ratios.items() if k.startswith("below")]
        if at_ok and all(abs(r - 1.0) < 1e-12 for r in below):
            label = "frexp"
        elif at_ok and all(abs(r - 1.0) < 1e-12 or abs(r - 2.0) < 1e-12 for r in below) and \
                any(abs(r - 2.0) < 1e-12 for r in below):
            label = "log2"
        else:
            label = "other"
        largest = np.abs(shown.case.weights).max().astype(np.float64)
        return self._judged("exponent", label, {key: _rounded(r) for key, r in ratios.items()},
                            evidence(shown, f"α = {float(power_of_two_step(largest, 8))!r}",
                                      f"α = {_alpha(shown)!r}",
                                      "α over the definition's α, per probe"))

    # ------------------------------------------------------------------ every scheme

    def zero_tensor(self) -> Finding:
        """A tensor of zeros: ŵ = 0 (α = 0), NaN, or something else."""
        obs = self._get(f"{self.scheme}-zeros")
        if obs is None or obs.pipeline is None or obs.pipeline.output is None:
            return undetermined("zero_tensor", "no ŵ for the zeros" if obs is None or
                                not obs.refused else f"the probe was refused: {obs.error}")
        output = obs.pipeline.output
        if np.all(np.isnan(output)):
            label = "nan"
        elif np.all(output == 0.0):
            label = "zero"
        else:
            label = "other"
        return self._judged("zero_tensor", label, None,
                            evidence(obs, "ŵ = 0", f"ŵ = {float(output[0])!r}"))


def _codes(part: Any, alpha: float) -> np.ndarray | None:
    if part.codes is not None:
        return np.asarray(part.codes)
    if part.output is None or not np.all(np.isfinite(part.output)):
        return None
    return np.rint(part.output / alpha).astype(np.int64)


def _alpha(obs: Observation | None) -> float | None:
    if obs is None or obs.pipeline is None:
        return None
    if obs.pipeline.alpha is not None:
        return float(obs.pipeline.alpha[0])
    if obs.pipeline.output is not None:
        return level_step(obs.pipeline.output)
    return None


def _rounded(value: float) -> float | None:
    return float(f"{value:.9g}") if math.isfinite(value) else None


def _diagnose(scheme: str) -> Callable[[Rounds], list[Finding]]:
    def run(rounds: Rounds) -> list[Finding]:
        return SchemeDiagnosis(scheme, rounds).run()

    return run


SCHEME_DIAGNOSES: dict[str, Callable[[Rounds], list[Finding]]] = {
    scheme: _diagnose(scheme) for scheme in DEFINITIONS}
"""The diagnosis of each comparison scheme: ``rounds -> findings``."""

__all__ = ["DEFINITIONS", "ROUNDING_RULES", "SCHEME_DIAGNOSES", "SchemeDiagnosis",
           "definition_row", "first_round_cases"]
