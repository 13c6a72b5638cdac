r"""The μL2Q aspects: the probes that isolate each one, and the fit of each.

The definition is α = λ_k* σ (σ the population standard deviation), β = μ,
q = clip(⌊(w − β)/α⌋ + 1, 1 − 2^(k−1), 2^(k−1)), ŵ = α(q − ½) + β rounded once. Every aspect
below is one way an implementation can depart from it, and each is measured on probes built
so that the other aspects cannot move the measurement:

* ``std_estimator``: n = 2 and n = 3 tensors at k = 1: α_n/σ_n is the same for both under
  the population σ and √(4/3) times larger at n = 2 under the unbiased σ (÷(n − 1)).
* ``epsilon``: the n = 2 tensor scaled by 2⁻²⁰ and 2⁻¹⁹: α(s) = λσs + ε, so
  ε = 2α(2⁻²⁰) − α(2⁻¹⁹) whatever λ and the estimator are; a tensor at the same scale with
  values just beyond the thresholds ±α shows a divisor α + ε that is not stored.
* ``lambda`` and ``lambda_above_8``: one tensor per k = 1..16 at scales 1, 2 and 4 (powers of
  two: exact): α(2) − α(1) and α(4) − α(2) give the law (∝ s: a step relative to σ; ∝ s²: σ
  entering twice, the range rules) free of any additive ε, then λ_k per k.
* ``zero_point``: z = q − (ŵ − β)/α with this project's codes q for values away from every
  threshold.
* ``tie_rule``: values exactly on thresholds, through the encode step (α = 0.25, β = 3: exact
  in any arithmetic) and, without an encode step, through the whole pipeline placed on the
  implementation's own thresholds β + jα (its returned α, β; re-placed in a second and third
  round while the statistics are held fixed by a balancing pair ±b).
* ``statistics_precision``: float32 input with mean 1000 and spread 10⁻³.
* ``per_channel``: two channels with scales 1 and 100.
* ``code_range``: two ±40σ outliers at k = 2.
* ``degenerate``: constant tensors (dyadic values, so that even a one-pass float32 variance
  is exactly 0) of several sizes, and n = 1 (under the population σ).
* ``subnormals``: float64 weights of about 10⁻³¹⁰.
* ``decode_arithmetic``: ŵ of given codes in float32 and float64, compared bit for bit with
  α(q − z) + β rounded once, (q − z)/(1/α) + β, and w + (ŵ − w).

An implementation that answers only ŵ gets α from the gaps between its levels
(:func:`~.observe.level_step`) and β from the definition's mean; aspects that need what it
does not return are "not determinable".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...codebook import code_range
from ...gaussian import PAPER_TABLE_I, optimal_lambda
from ...profiles.caffe import LAMBDA_TABLE as CAFFE_LAMBDA_TABLE
from ...profiles.caffe import RANGE_SIGMAS
from ...stats import moments
from ..case import Case
from .model import Finding, judged, undetermined
from .observe import Observation, codes_from_output, level_step
from .probes import Rounds, evidence, probe, rng, symmetric_normal

ASPECTS = ("lambda", "lambda_above_8", "std_estimator", "epsilon", "zero_point", "tie_rule",
           "statistics_precision", "per_channel", "code_range", "degenerate", "subnormals",
           "decode_arithmetic")
"""The μL2Q aspects, in the order findings are reported."""

DEFINITION = {
    "lambda": "exact", "lambda_above_8": "exact", "std_estimator": "population",
    "epsilon": "none", "zero_point": "0.5", "tie_rule": "upper-cell",
    "statistics_precision": "float64", "per_channel": "supported", "code_range": "clipped",
    "degenerate": "beta-exactly", "subnormals": "exact", "decode_arithmetic": "once-rounded",
}
"""The label of each aspect that the definition (this package) has."""

LAMBDA_TOLERANCE = 3e-5
"""Relative distance within which a fitted λ_k counts as one of the known values (the known
tables are at least 8e-5 apart; float32 statistics stay well within it)."""

SCALES = (1.0, 2.0, 4.0)
EPS_SCALE = 2.0**-20
TIE_THRESHOLDS = (-4, -2, -1, 0, 1, 2, 4)
FLOAT64_ONLY = ("std-", "eps-", "lam-", "subnormal-f64")
"""Probes sent in float64 only; copied to float32 for an implementation that refuses float64."""
TIE_ALPHA, TIE_BETA = 2.0**30, 3.0 * 2.0**30
"""The encode-step tie probes' α and β: exact in float32, and so large that an additive
ε ≤ 1e-7 is below half an ulp of α (it cannot move a threshold)."""
TIE_SCALE = 2.0**32
"""The whole-pipeline tie tensor's scale: α ≈ 3e9, so again an additive ε vanishes."""


def _float(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _population_std(case: Case) -> float:
    return float(moments(np.asarray(case.weights, dtype=np.float64).reshape(-1), None)[1][0])


@dataclass
class Pipeline:
    """The whole pipeline's answer to a probe with the parts it left out recovered.

    ``alpha_source`` says where α came from: ``"returned"`` or ``"levels"`` (the gaps of ŵ);
    β is the definition's mean when not returned (``beta_returned`` False).
    """

    alpha: np.ndarray
    beta: np.ndarray
    codes: np.ndarray | None
    output: np.ndarray | None
    alpha_source: str
    beta_returned: bool
    alpha_error: float = 0.0
    """Relative uncertainty of α: 0 when returned; from ŵ's rounding when read off levels."""


@dataclass
class Fit:
    """What is known so far about the implementation (used by later fits)."""

    zero_point: float | None = None
    estimator: str | None = None
    epsilon: float | None = None
    lambda_k: dict[int, float] = field(default_factory=dict)
    precision: str | None = None


class UL2QDiagnosis:
    """Designs the μL2Q probes, sends them in rounds and fits every aspect."""

    def __init__(self, rounds: Rounds) -> None:
        self.rounds = rounds
        self.obs: dict[str, Observation] = {}
        self.fit = Fit()
        self.findings: dict[str, Finding] = {}
        self.alias: dict[str, str] = {}
        """Probe names answered by a float32 copy (an implementation refusing float64)."""

    # ------------------------------------------------------------------ probe design

    _first_round: tuple[Case, ...] | None = None
    """The first round's probes, built once per process (they are fixed and never changed)."""

    def first_round(self) -> list[Case]:
        """Every probe that does not depend on an earlier answer."""
        if UL2QDiagnosis._first_round is None:
            UL2QDiagnosis._first_round = tuple(self._design_first_round())
        return list(UL2QDiagnosis._first_round)

    def _design_first_round(self) -> list[Case]:
        cases = [
            probe("std-n2", "n = 2: the population σ is 1, the unbiased one √2", "ul2q", 1,
                  np.array([-1.0, 1.0])),
            probe("std-n3", "n = 3: the population σ is √2, the unbiased one √3", "ul2q", 1,
                  np.array([-2.0, 1.0, 1.0])),
            probe("eps-s20", "n = 2 scaled by 2^-20: an additive ε is ~7 % of α", "ul2q", 1,
                  np.array([-1.0, 1.0]) * EPS_SCALE),
            probe("eps-s19", "n = 2 scaled by 2^-19", "ul2q", 1,
                  np.array([-1.0, 1.0]) * 2 * EPS_SCALE),
            self._divisor_probe(),
        ]
        for bits in range(1, 17):
            base = self._lambda_tensor(bits)
            for scale in SCALES:
                cases.append(probe(f"lam-k{bits}-x{scale:g}", f"k = {bits}, scale {scale:g}",
                                   "ul2q", bits, base * scale))
        cases += [
            probe("zero-point", "z = q − (ŵ − β)/α away from thresholds", "ul2q", 3,
                  symmetric_normal("zero-point", 24)),
            probe("zero-point-float32", "z = q − (ŵ − β)/α away from thresholds", "ul2q", 3,
                  symmetric_normal("zero-point", 24).astype(np.float32)),
            *self._per_channel_probes(),
            *self._code_range_probes(),
            self._precision_probe(),
            *self._degenerate_probes(),
            probe("subnormal-f64", "positive float64 weights of about 1e-310", "ul2q", 2,
                  np.abs(symmetric_normal("subnormal", 4)) * 1e-310),
            probe("subnormal-f32", "float32 weights of about 1e-40", "ul2q", 2,
                  (symmetric_normal("subnormal", 4) * 1e-40).astype(np.float32)),
            *self._decode_probes(),
            *self._encode_tie_probes(),
            self._pipeline_tie_probe(None),
        ]
        return cases

    def _lambda_tensor(self, bits: int) -> np.ndarray:
        """64 normal values plus 32 spread over ±3α (so neighbouring levels occur)."""
        frame = symmetric_normal(f"lam-k{bits}", 32)
        step = optimal_lambda(bits) * float(np.std(frame))
        cluster = (np.arange(16) + 0.5) * (3.0 / 16.0) * step
        return np.concatenate([frame, cluster, -cluster])

    def _divisor_probe(self) -> Case:
        """Scale 2^-20, values at t = (w − β)/α ∈ ±[1.004, 1.3]: a divisor α + ε moves them."""
        frame = symmetric_normal("eps-div", 24)
        sigma = float(np.std(frame))
        alpha = optimal_lambda(2) * sigma
        cluster = alpha * (1.004 + 0.0075 * np.arange(40))
        weights = np.concatenate([frame, cluster, -cluster]) * EPS_SCALE
        return probe("eps-div", "values just beyond the thresholds ±α at scale 2^-20", "ul2q",
                     2, weights)

    def _per_channel_probes(self) -> list[Case]:
        """Two channels (scales 1 and 100), and the same as one tensor, in both dtypes."""
        rows = np.stack([symmetric_normal("channel-0", 24),
                         100.0 * symmetric_normal("channel-1", 24)])
        cases = []
        for dtype in ("float64", "float32"):
            cases.append(probe(f"per-channel-{dtype}", "axis 0: channel scales 1 and 100",
                               "ul2q", 2, rows.astype(dtype), axis=0))
            cases.append(probe(f"per-tensor-{dtype}", "the per-channel probe as one tensor",
                               "ul2q", 2, rows.astype(dtype)))
        return cases

    def _code_range_probes(self) -> list[Case]:
        weights = np.concatenate([symmetric_normal("code-range", 12), [40.0, -40.0]])
        return [probe("code-range", "two ±40σ outliers at k = 2", "ul2q", 2, weights),
                probe("code-range-float32", "two ±40σ outliers at k = 2", "ul2q", 2,
                      weights.astype(np.float32))]

    def _precision_probe(self) -> Case:
        noise = rng("precision").standard_normal(256) * 1e-3
        weights = (1000.0 + noise).astype(np.float32)
        return probe("precision-f32", "float32, mean 1000, spread 1e-3", "ul2q", 2, weights)

    def _degenerate_probes(self) -> list[Case]:
        cases = []
        for n, value, dtype in ((2, 0.5, "float64"), (5, -2.0, "float64"),
                                (64, 0.25, "float64"), (5, 0.5, "float32"),
                                (1, 0.75, "float64")):
            cases.append(probe(f"const-n{n}-{dtype}", f"{n} equal values {value:g}: σ = 0",
                               "ul2q", 2, np.full(n, value, dtype=dtype)))
        return cases

    def _decode_probes(self) -> list[Case]:
        """k = 8 tensors whose ŵ tells α(q − z) + β from (q − z)/(1/α) + β and w + (ŵ − w).

        The encode step gets an α whose reciprocal fl(1/α) is off by at least 0.3 ulp (so
        that dividing by it rounds differently from multiplying by α for many codes);
        the whole pipeline uses the implementation's own α, so four float64 tensors with
        different α make it unlikely that all of them hide the difference.
        """
        cases = []
        for name, dtype in (("float64", "float64"), ("float64-b", "float64"),
                            ("float64-c", "float64"), ("float64-d", "float64"),
                            ("float32", "float32")):
            values = rng(f"decode-{name}").standard_normal(254) * 0.05
            values = np.concatenate([values, [3.0, -3.0]]).astype(dtype)
            mean, std = moments(values.astype(np.float64), None)
            alpha = poorly_inverted(optimal_lambda(8) * float(std[0]))
            case = probe(f"decode-{name}", "k = 8: ŵ of the codes, in both steps", "ul2q", 8,
                         values, given=(alpha, float(mean[0]), None))
            whole = probe(f"decode-{name}", "", "ul2q", 8, values)
            case.stats, case.tolerance = whole.stats, whole.tolerance
            case.flags = [flag for flag in case.flags if flag != "encode-only"]
            cases.append(case)
        return cases

    def _encode_tie_probes(self) -> list[Case]:
        cases = []
        lowest, highest = code_range(4)
        for dtype in ("float64", "float32"):
            on = np.array([TIE_BETA + TIE_ALPHA * j for j in range(lowest, highest)],
                          dtype=dtype)
            below = np.nextafter(on, np.array(-np.inf, dtype=dtype))
            above = np.nextafter(on, np.array(np.inf, dtype=dtype))
            weights = np.concatenate([on, below, above])
            cases.append(probe(f"ties-encode-{dtype}", "α = 2^30, β = 3·2^30 given: values on "
                               "every threshold β + jα (exact in any arithmetic)", "ul2q", 4,
                               weights, given=(TIE_ALPHA, TIE_BETA, None)))
        return cases

    def _pipeline_tie_probe(self, placed: tuple[float, float, float] | None,
                            number: int = 1) -> Case:
        """The whole-pipeline tie tensor: ±dyadic values, ties at β + jα, a balancing ±b.

        `placed` = (α, β, b) puts the ties on the thresholds of that α, β; None places them
        on the definition's own (found by iterating the reference in process).
        """
        values = rng("ties-pipeline").integers(64, 512, 255) / 128.0 * TIE_SCALE
        frame = np.concatenate([values, -values])
        if placed is None:
            alpha, beta, balance = self._reference_placement(frame)
        else:
            alpha, beta, balance = placed
        ties = np.array([on_threshold(alpha, beta, j) for j in TIE_THRESHOLDS])
        weights = np.concatenate([frame, ties, [balance, -balance]])
        return probe(f"ties-pipeline-r{number}", "whole pipeline: values on the "
                     "implementation's own thresholds β + jα", "ul2q", 4, weights)

    def _reference_placement(self, frame: np.ndarray) -> tuple[float, float, float]:
        alpha, beta, balance = optimal_lambda(4) * TIE_SCALE, 0.0, 3.0 * TIE_SCALE
        for _ in range(8):
            ties = np.array([on_threshold(alpha, beta, j) for j in TIE_THRESHOLDS])
            weights = np.concatenate([frame, ties, [balance, -balance]])
            mean, std = moments(weights, None)
            alpha, beta = optimal_lambda(4) * float(std[0]), float(mean[0])
        return alpha, beta, balance

    # ------------------------------------------------------------------ running

    def run(self) -> dict[str, Finding]:
        """Send the probes (one to three rounds), fit every aspect; findings by aspect."""
        self.obs.update(self.rounds.ask(self.first_round(), "μL2Q aspects"))
        self._float32_round()
        fits = (
            (self.fit_zero_point, ("zero_point",)),
            (self.fit_std_estimator, ("std_estimator",)),
            (self.fit_epsilon, ("epsilon",)),
            (self.fit_lambda, ("lambda", "lambda_above_8")),
            (self.fit_precision, ("statistics_precision",)),
            (self.fit_per_channel, ("per_channel",)),
            (self.fit_code_range, ("code_range",)),
            (self.fit_degenerate, ("degenerate",)),
            (self.fit_decode, ("decode_arithmetic",)),
            (self.fit_subnormals, ("subnormals",)),
            (self.fit_ties, ("tie_rule",)),
        )
        for fit, aspects in fits:
            try:
                with np.errstate(all="ignore"):
                    fit()
            except (ArithmeticError, ValueError, TypeError, IndexError, KeyError) as error:
                # answers no fit was written for (e.g. α = ±inf where a ratio is taken):
                # the aspect is not determinable, and the report says why
                for aspect in aspects:
                    self.findings[aspect] = undetermined(
                        aspect, f"the answers could not be fitted ({type(error).__name__}: "
                                f"{str(error)[:120]})")
        return {aspect: self.findings[aspect] for aspect in ASPECTS}

    def observation(self, name: str) -> Observation | None:
        """The answer to the probe `name` (or to its float32 copy, see :meth:`_float32_round`)."""
        return self.obs.get(f"diag-{self.alias.get(name, name)}")

    def _float32_round(self) -> None:
        """If float64 is refused and float32 answered: float32 copies of the float64 probes.

        The λ, ε and estimator probes are exact in float32 (dyadic scales of values that
        are rounded to float32 first); the subnormal probe becomes positive float32 values
        near 1e-40.
        """
        refused = self.obs.get("diag-std-n2")
        answered = self.obs.get("diag-zero-point-float32")
        if refused is None or not refused.refused or answered is None or answered.refused:
            return
        cases = []
        for case in self.first_round():
            name = case.id.removeprefix("diag-")
            if not name.startswith(FLOAT64_ONLY) or case.dtype != "float64":
                continue
            weights = case.weights.astype(np.float32)
            if name == "subnormal-f64":
                weights = np.abs(symmetric_normal("subnormal", 4) * 1e-40).astype(np.float32)
            cases.append(probe(f"{name}-as-float32", f"{case.comment} (float32)", "ul2q",
                               case.bits, weights))
            self.alias[name] = f"{name}-as-float32"
        self.obs.update(self.rounds.ask(cases, "float32 copies of the float64 probes"))

    def pipeline(self, case_id: str, *, need_codes: bool = False) -> Pipeline | None:
        """The whole pipeline's answer to a probe, parts recovered; None if unusable."""
        obs = self.observation(case_id)
        if obs is None or obs.pipeline is None:
            return None
        part = obs.pipeline
        case = obs.case
        if case.axis is not None:
            return None
        error = 0.0
        if part.alpha is not None:
            alpha, source = part.alpha, "returned"
        elif part.output is not None:
            step = level_step(part.output)
            if step is None:
                return None
            alpha, source = np.array([step]), "levels"
            largest = np.max(np.abs(part.output[np.isfinite(part.output)]))
            error = 4.0 * float(np.spacing(largest.astype(case.dtype))) / step
        else:
            return None
        beta_returned = part.beta is not None
        beta = part.beta if part.beta is not None else np.asarray(case.encode_beta)
        codes = part.codes
        if codes is None and part.output is not None and self.fit.zero_point is not None:
            codes = codes_from_output(part.output, alpha[0], beta[0], self.fit.zero_point)
        if need_codes and codes is None:
            return None
        return Pipeline(alpha, beta, codes, part.output, source, beta_returned, error)

    # ------------------------------------------------------------------ fits

    def fit_zero_point(self) -> None:
        """z = q − (ŵ − β)/α with this project's codes, on values away from thresholds."""
        name = "zero-point"
        if self.pipeline(name) is None and self.pipeline("zero-point-float32") is not None:
            name = "zero-point-float32"
        found = self.pipeline(name)
        obs = self.observation(name)
        if found is None or found.output is None or obs is None:
            self.findings["zero_point"] = undetermined(
                "zero_point", _why(obs, "no ŵ (or no α) from the whole pipeline"))
            return
        alpha, beta = float(found.alpha[0]), float(found.beta[0])
        if not (math.isfinite(alpha) and alpha > 0 and math.isfinite(beta)):
            self.findings["zero_point"] = undetermined("zero_point", f"α = {alpha} is not > 0")
            return
        weights = obs.case.weights.astype(np.float64)
        t = (weights - beta) / alpha
        lowest, highest = code_range(obs.case.bits)
        ours = np.floor(t) + 1
        usable = (np.abs(t - np.rint(t)) > 0.05) & (ours > lowest) & (ours < highest)
        if not usable.any():
            self.findings["zero_point"] = undetermined("zero_point", "no value away from "
                                                       "the thresholds")
            return
        z_values = ours[usable] - (found.output[usable] - beta) / alpha
        z = float(np.median(z_values))
        label = _nearest_label(z, {"0.5": 0.5, "0": 0.0, "1": 1.0}, 1e-3)
        if label is not None:
            self.fit.zero_point = {"0.5": 0.5, "0": 0.0, "1": 1.0}[label]
        elif np.ptp(z_values) < 1e-6:
            self.fit.zero_point = round(z, 6)  # another z, but the same for every value
        first = int(np.flatnonzero(usable)[0])
        expected = (f"ŵ = {float(alpha * (ours[first] - 0.5) + beta)!r} at "
                    f"w = {float(weights[first])!r}")
        got = f"ŵ = {float(found.output[first])!r}"
        self.findings["zero_point"] = judged(
            "zero_point", label or "other", DEFINITION["zero_point"], round(z, 9),
            evidence(obs, expected, got, f"α {_source(found.alpha_source)}"))

    def _ratio(self, case_id: str) -> tuple[float | None, Pipeline | None]:
        found = self.pipeline(case_id)
        obs = self.observation(case_id)
        if found is None or obs is None or _float(found.alpha[0]) is None:
            return None, None
        return float(found.alpha[0]) / _population_std(obs.case), found

    def fit_std_estimator(self) -> None:
        """Population or unbiased σ from α/σ at n = 2 and n = 3 (k = 1, scale 1)."""
        r2, found2 = self._ratio("std-n2")
        r3, _ = self._ratio("std-n3")
        obs = self.observation("std-n2")
        if r2 is None or r3 is None or found2 is None or obs is None:
            self.findings["std_estimator"] = undetermined(
                "std_estimator", _why(obs, "no α from the n = 2 and n = 3 probes"))
            return
        if not (r3 > 0 and math.isfinite(r2)):
            self.findings["std_estimator"] = undetermined(
                "std_estimator", f"α/σ is {r2} at n = 2 and {r3} at n = 3")
            return
        ratio = r2 / r3
        label = _nearest_label(ratio, {"population": 1.0, "unbiased": math.sqrt(4.0 / 3.0)},
                               1e-4) or "other"
        if label != "other":
            self.fit.estimator = label
        expected = f"α = {float(obs.case.encode_alpha[0])!r}"
        got = f"α = {float(found2.alpha[0])!r} ({_source(found2.alpha_source)})"
        note = (f"(α/σ at n = 2)/(α/σ at n = 3) = {ratio:.6f}: 1 for the population σ, "
                f"√(4/3) = 1.154701 for the unbiased one")
        if self.fit.estimator == "unbiased":
            one = self.observation("const-n1-float64")
            if one is not None and (one.refused or _has_nan(one)):
                note += "; n = 1 gives NaN or an error (÷(n − 1) = 0)"
        self.findings["std_estimator"] = judged("std_estimator", label,
                                                DEFINITION["std_estimator"], round(ratio, 6),
                                                evidence(obs, expected, got, note))

    def _estimator_factor(self, n: int) -> float | None:
        if self.fit.estimator == "population":
            return 1.0
        if self.fit.estimator == "unbiased":
            return math.sqrt(n / (n - 1.0)) if n > 1 else None
        return None

    def fit_epsilon(self) -> None:
        """ε = 2α(2⁻²⁰) − α(2⁻¹⁹) (any λ, any estimator); a divisor α + ε not stored."""
        small = self.pipeline("eps-s20")
        double = self.pipeline("eps-s19")
        obs = self.observation("eps-s20")
        if small is None or double is None or obs is None:
            self.findings["epsilon"] = undetermined(
                "epsilon", _why(obs, "no α at scales 2^-20 and 2^-19"))
            return
        a1, a2 = float(small.alpha[0]), float(double.alpha[0])
        stored = 2.0 * a1 - a2
        if not math.isfinite(stored):
            self.findings["epsilon"] = undetermined("epsilon", f"α = {a1} at scale 2^-20")
            return
        expected = f"α = {float(obs.case.encode_alpha[0])!r} (2α(2^-20) − α(2^-19) = 0)"
        got = f"α = {a1!r} ({_source(small.alpha_source)}); 2α(2^-20) − α(2^-19) = {stored:.4g}"
        divisor = self._divisor_epsilon()
        if abs(stored) > 1e-5 * abs(a1):
            self.fit.epsilon = stored
            if divisor is not None:  # stored in α, and the codes divide by more still
                div_obs, shown, value = divisor
                self.findings["epsilon"] = judged(
                    "epsilon", "other", "none",
                    {"stored": float(f"{stored:.6g}"), "divisor": float(f"{value:.6g}")},
                    evidence(div_obs, shown[0], shown[1], f"α holds ε = {stored:.4g}, and the "
                             "codes divide by more than that α"))
                return
            self.findings["epsilon"] = judged("epsilon", "added-to-alpha", "none",
                                              float(f"{stored:.6g}"), evidence(obs, expected, got))
            return
        self.fit.epsilon = 0.0
        if divisor is None:
            self.findings["epsilon"] = judged("epsilon", "none", "none", 0.0,
                                              evidence(obs, expected, got))
            return
        div_obs, shown, value = divisor
        self.findings["epsilon"] = judged("epsilon", "divisor-only", "none",
                                          float(f"{value:.6g}"),
                                          evidence(div_obs, shown[0], shown[1],
                                                   "α is stored without ε, but the codes "
                                                   "divide by α + ε"))

    def _divisor_epsilon(self) -> tuple[Observation, tuple[str, str], float] | None:
        """If codes divide by more than the stored α: the bound on that divisor minus α."""
        found = self.pipeline("eps-div", need_codes=True)
        obs = self.observation("eps-div")
        if found is None or found.codes is None or obs is None:
            return None
        alpha, beta = float(found.alpha[0]), float(found.beta[0])
        weights = obs.case.weights.astype(np.float64)
        lowest, highest = code_range(obs.case.bits)
        with np.errstate(all="ignore"):
            ours = np.clip(np.floor((weights - beta) / alpha) + 1, lowest, highest)
        codes = found.codes.reshape(-1)
        differ = codes != ours
        if not differ.any():
            return None
        inward = np.abs(codes - 0.5) < np.abs(ours - 0.5)
        if not np.all(inward[differ]):
            return None
        low, high = divisor_bounds(weights - beta, codes, lowest, highest)
        low = max(low, alpha)
        value = (low + high) / 2.0 - alpha if math.isfinite(high) else low - alpha
        first = int(np.flatnonzero(differ)[0])
        shown = (f"code {int(ours[first])} at w = {float(weights[first])!r} (α = {alpha!r})",
                 f"code {int(codes[first])}")
        return obs, shown, value

    def fit_lambda(self) -> None:
        """λ_k per k from α(2) − α(1) and α(4) − α(2), per law; both λ aspects."""
        laws: dict[int, tuple[str, float]] = {}
        first_obs: dict[int, Observation] = {}
        for bits in range(1, 17):
            found = [self.pipeline(f"lam-k{bits}-x{scale:g}") for scale in SCALES]
            obs = self.observation(f"lam-k{bits}-x1")
            if any(f is None for f in found) or obs is None:
                continue
            a1, a2, a4 = (float(f.alpha[0]) for f in found if f is not None)
            first_obs[bits] = obs
            if max(f.alpha_error for f in found if f is not None) > LAMBDA_TOLERANCE / 3:
                laws[bits] = ("imprecise", math.nan)
                continue
            with np.errstate(all="ignore"):
                d1, d2 = np.float64(a2) - a1, np.float64(a4) - a2
            if not (math.isfinite(d1) and math.isfinite(d2)) or d1 <= 0:
                laws[bits] = ("other", math.nan)
                continue
            ratio = d2 / d1
            if abs(ratio - 2.0) < 0.01:
                laws[bits] = ("linear", d1)
            elif abs(ratio - 4.0) < 0.02:
                laws[bits] = ("quadratic", d1 / 3.0)
            else:
                laws[bits] = ("other", ratio)
        self.findings["lambda"] = self._lambda_low(laws, first_obs)
        self.findings["lambda_above_8"] = self._lambda_high(laws, first_obs)

    def _sigma(self, obs: Observation) -> float | None:
        factor = self._estimator_factor(obs.case.weights.size)
        return None if factor is None else _population_std(obs.case) * factor

    def _lambda_low(self, laws: dict[int, tuple[str, float]],
                    first: dict[int, Observation]) -> Finding:
        widths = [k for k in range(1, 9) if k in laws]
        if not widths:
            return undetermined("lambda", _why(self.observation("lam-k1-x1"),
                                               "no α for k ≤ 8"))
        if self.fit.estimator is None:
            return undetermined("lambda", "the σ estimator is not known, so α/σ is not λ")
        if any(laws[k][0] == "imprecise" for k in widths):
            return undetermined("lambda", "α read off the levels of a float32 ŵ is not precise "
                                          "enough to tell the λ tables apart")
        fitted: dict[int, float] = {}
        for k in widths:
            sigma = self._sigma(first[k])
            law, value = laws[k]
            fitted[k] = value / sigma if law == "linear" and sigma else math.nan
        self.fit.lambda_k.update({k: v for k, v in fitted.items() if math.isfinite(v)})
        tables = {
            "exact": {k: optimal_lambda(k) for k in widths},
            "table-1": {k: PAPER_TABLE_I[k][0] for k in widths},
            "caffe-table": {k: float(np.float32(CAFFE_LAMBDA_TABLE[k - 1])) for k in widths},
        }
        label = "other"
        for name, table in tables.items():
            if all(_close(fitted[k], table[k], LAMBDA_TOLERANCE) for k in widths):
                label = name
                break
        shown = next((k for k in widths
                      if not _close(fitted[k], tables["exact"][k], LAMBDA_TOLERANCE)), widths[0])
        obs = first[shown]
        got = self.pipeline(f"lam-k{shown}-x1")
        got_alpha = float(got.alpha[0]) if got is not None else math.nan
        note = f"λ_{shown} fitted {fitted[shown]:.9g}, λ_{shown}* = {optimal_lambda(shown):.9g}"
        fitted_values = {str(k): _rounded(v) for k, v in fitted.items()}
        return judged("lambda", label, "exact", fitted_values,
                      evidence(obs, f"α = {float(obs.case.encode_alpha[0])!r}",
                               f"α = {got_alpha!r}", note))

    def _lambda_high(self, laws: dict[int, tuple[str, float]],
                     first: dict[int, Observation]) -> Finding:
        widths = [k for k in range(9, 17) if k in laws]
        if not widths:
            return undetermined("lambda_above_8", _why(self.observation("lam-k9-x1"),
                                                       "no α for k > 8"))
        if self.fit.estimator is None:
            return undetermined("lambda_above_8", "the σ estimator is not known")
        if any(laws[k][0] == "imprecise" for k in widths):
            return undetermined("lambda_above_8", "α read off the levels of a float32 ŵ is not "
                                                  "precise enough")
        kinds = {laws[k][0] for k in widths}
        value: dict[str, Any] = {"law": "/".join(sorted(kinds))}
        label = "other"
        if kinds == {"linear"}:
            lam = {k: laws[k][1] / (self._sigma(first[k]) or math.nan) for k in widths}
            value.update({str(k): _rounded(v) for k, v in lam.items()})
            if all(_close(lam[k], optimal_lambda(k), LAMBDA_TOLERANCE) for k in widths):
                label = "exact"
            else:
                c = {k: lam[k] * (2.0**k - 1.0) for k in widths}
                if all(_close(c[k], c[widths[0]], 1e-4) for k in widths):
                    label = "range-c"
                    value = {"law": "linear", "c": _rounded(c[widths[0]])}
        elif kinds == {"quadratic"}:
            a = {k: laws[k][1] for k in widths}
            ratios_paper, ratios_caffe = [], []
            for k in widths:
                case = first[k].case
                sigma = self._sigma(first[k]) or math.nan
                spread = float(np.ptp(case.weights.astype(np.float64)))
                ratios_paper.append(a[k] / (sigma * spread / (2.0**k - 1.0)))
                ratios_caffe.append(a[k] / (RANGE_SIGMAS * sigma * sigma / (2.0**k - 1.0)))
            if all(abs(r - 1.0) < 1e-4 for r in ratios_paper):
                label = "paper-range-rule"
            elif all(abs(r - 1.0) < 1e-4 for r in ratios_caffe):
                label = "caffe-6.2-sigma"
            value["alpha_over_sigma_squared"] = {
                str(k): _rounded(a[k] / (self._sigma(first[k]) or math.nan) ** 2)
                for k in widths}
        obs = first[widths[0]]
        got = self.pipeline(f"lam-k{widths[0]}-x1")
        got_alpha = float(got.alpha[0]) if got is not None else math.nan
        note = ("α at scales 1, 2, 4 grows like the scale (a step relative to σ) or like its "
                f"square (σ enters twice): here {value['law']}")
        return judged("lambda_above_8", label, "exact", value,
                      evidence(obs, f"α = {float(obs.case.encode_alpha[0])!r}",
                               f"α = {got_alpha!r}", note))

    def _predicted_alpha(self, case: Case) -> float | None:
        """α the fitted λ, estimator and ε give for a k = `case.bits` probe."""
        lam = self.fit.lambda_k.get(case.bits)
        factor = self._estimator_factor(case.weights.size)
        if lam is None or factor is None or self.fit.epsilon is None:
            return None
        return lam * _population_std(case) * factor + self.fit.epsilon

    def fit_precision(self) -> None:
        """float64 or float32 statistics of float32 input (mean 1000, spread 1e-3)."""
        obs = self.observation("precision-f32")
        part = obs.pipeline if obs is not None else None
        if obs is None or part is None or part.beta is None:
            self.findings["statistics_precision"] = undetermined(
                "statistics_precision", _why(obs, "β is not returned"))
            return
        assert obs.case.stats is not None and obs.case.tolerance is not None
        beta_ref = float(obs.case.stats.beta[0])
        beta = float(part.beta[0])
        allowed = int(obs.case.tolerance["beta"] or 0)
        beta_ok = abs(beta - beta_ref) <= allowed * math.ulp(beta_ref)
        expected = f"β = {beta_ref!r}"
        got = f"β = {beta!r}"
        label = "other"
        if beta_ok:
            predicted = self._predicted_alpha(obs.case)
            if part.alpha is None or predicted is None:
                self.findings["statistics_precision"] = undetermined(
                    "statistics_precision", "β is the float64 mean, but α is not returned or "
                    "cannot be predicted (λ, the σ estimator or ε unknown)")
                return
            alpha = float(part.alpha[0])
            got += f", α = {alpha!r}"
            expected += f", α ≈ {predicted!r} (the fitted λ, σ and ε)"
            label = "float64" if _close(alpha, predicted, 1e-6) else "other"
        elif math.isfinite(beta) and float(np.float32(beta)) == beta:
            label = "float32"
        self.fit.precision = label
        self.findings["statistics_precision"] = judged(
            "statistics_precision", label, "float64", None, evidence(obs, expected, got))

    def fit_per_channel(self) -> None:
        """supported (α per channel, in ratio ≈ 100), ignored (one α), refused (error)."""
        obs = None
        for dtype in ("float64", "float32"):
            whole = self.observation(f"per-tensor-{dtype}")
            if whole is not None and not whole.refused:
                obs = self.observation(f"per-channel-{dtype}")
                break
        if obs is None:
            self.findings["per_channel"] = undetermined(
                "per_channel", "the same tensor without an axis is refused too")
            return
        expected_alpha = obs.case.encode_alpha
        expected = f"α = [{float(expected_alpha[0])!r}, {float(expected_alpha[1])!r}]"
        if obs.refused:
            self.findings["per_channel"] = judged("per_channel", "refused", "supported", None,
                                                  evidence(obs, expected, f"error: {obs.error}"))
            return
        part = obs.pipeline
        alphas: list[float] | None = None
        source = "returned"
        if part is not None and part.alpha is not None:
            alphas = [float(a) for a in part.alpha]
        elif part is not None and part.output is not None:
            steps = [level_step(row) for row in part.output.reshape(obs.case.weights.shape)]
            if all(step is not None for step in steps):
                alphas, source = [float(s) for s in steps if s is not None], "levels"
        if alphas is None:
            self.findings["per_channel"] = undetermined("per_channel", "no α and no ŵ levels")
            return
        want = float(expected_alpha[1] / expected_alpha[0])
        ratio = alphas[1] / alphas[0] if alphas[0] > 0 else math.nan
        if _close(ratio, want, 1e-5):
            label = "supported"
        elif _close(ratio, 1.0, 1e-9):
            label = "ignored"
        else:
            label = "other"
        self.findings["per_channel"] = judged(
            "per_channel", label, "supported", _rounded(ratio),
            evidence(obs, expected, f"α = {alphas} ({_source(source)})",
                     f"α[1]/α[0] = {ratio:.6g}, the channels' σ ratio is {want:.6g}"))

    def fit_code_range(self) -> None:
        """clipped (codes stay in 1 − 2^(k−1)..2^(k−1)) or unclipped, with ±40σ outliers."""
        name = "code-range"
        if self.pipeline(name, need_codes=True) is None:
            name = "code-range-float32"
        found = self.pipeline(name, need_codes=True)
        obs = self.observation(name)
        if found is None or found.codes is None or obs is None:
            self.findings["code_range"] = undetermined(
                "code_range", _why(obs, "no codes (and no ŵ with α and z to read them from)"))
            return
        lowest, highest = code_range(obs.case.bits)
        codes = found.codes.reshape(-1)
        label = "clipped" if codes.min() >= lowest and codes.max() <= highest else "unclipped"
        index = int(np.argmax(np.abs(obs.case.weights)))
        self.findings["code_range"] = judged(
            "code_range", label, "clipped", [int(codes.min()), int(codes.max())],
            evidence(obs, f"code {int(obs.case.codes.reshape(-1)[index])} at "
                          f"w = {float(obs.case.weights[index])!r} (range {lowest}..{highest})",
                     f"code {int(codes[index])}"))

    def fit_degenerate(self) -> None:
        """σ = 0: ŵ = β exactly (up to a fitted additive ε: ŵ = β + ε(1 − z)), NaN, other."""
        names = ["const-n2-float64", "const-n5-float64", "const-n64-float64",
                 "const-n5-float32"]
        if self.fit.estimator == "population":
            names.append("const-n1-float64")
        kinds: list[tuple[str, Observation, str]] = []
        shift = (self.fit.epsilon or 0.0) * (1.0 - (self.fit.zero_point or 0.5))
        for name in names:
            obs = self.observation(name)
            if obs is None or obs.pipeline is None or obs.pipeline.output is None:
                continue
            output = obs.pipeline.output
            value = float(obs.case.weights.reshape(-1)[0])
            if np.all(np.isnan(output)):
                kinds.append(("nan", obs, "NaN"))
                continue
            tolerance = abs(shift) * 0.5 + 4.0 * float(np.spacing(np.float32(abs(value))))
            exact = np.all(output == value) if shift == 0.0 else \
                np.all(np.abs(output - (value + shift)) <= tolerance)
            if not exact and self.fit.epsilon is None:
                continue  # an unknown additive ε might explain it
            kinds.append(("beta-exactly" if exact else "other", obs,
                          f"ŵ = {float(output[0])!r}"))
        if not kinds:
            self.findings["degenerate"] = undetermined(
                "degenerate", _why(self.observation("const-n2-float64"),
                                   "no ŵ, or ŵ ≠ β with ε unknown"))
            return
        labels = {kind for kind, _, _ in kinds}
        label = labels.pop() if len(labels) == 1 else "other"
        shown = next(((o, g) for kind, o, g in kinds if kind != "beta-exactly"),
                     (kinds[0][1], kinds[0][2]))
        obs, got = shown
        note = "" if shift == 0.0 else f"with the fitted ε, ŵ = β + ε(1 − z) = β + {shift:.3g}"
        self.findings["degenerate"] = judged(
            "degenerate", label, "beta-exactly", None,
            evidence(obs, f"ŵ = {float(obs.case.weights.reshape(-1)[0])!r} (β exactly)", got,
                     note))

    def fit_subnormals(self) -> None:
        """Positive float64 weights near 1e-310: exact, flushed (as if zero), NaN or other.

        With α returned: flushed is α = ε (σ of zeros) with β = 0; the definition's α is
        λσ + ε from the fitted model. Without α: flushed is ŵ = ε(1 − z) everywhere (the
        σ = 0 rule on zeros), and α comes from the levels of ŵ.
        """
        obs = self.observation("subnormal-f64")
        if obs is None or obs.pipeline is None or obs.pipeline.output is None:
            self.findings["subnormals"] = undetermined("subnormals", _why(obs, "no ŵ"))
            return
        if "subnormal-f64" in self.alias and self.fit.precision != "float64":
            self.findings["subnormals"] = undetermined(
                "subnormals", "only float32 is answered and its statistics are not float64: "
                              "float32 squares of subnormals underflow whatever the handling")
            return
        part = obs.pipeline
        output = part.output
        assert output is not None
        epsilon = self.fit.epsilon or 0.0
        shift = epsilon * (1.0 - (self.fit.zero_point or 0.5))
        expected = f"α = {float(obs.case.encode_alpha[0])!r}"
        predicted = self._predicted_alpha(obs.case)
        alpha = float(part.alpha[0]) if part.alpha is not None else None
        beta = float(part.beta[0]) if part.beta is not None else None
        beta_ref = float(obs.case.encode_beta[0])
        if alpha is not None and not math.isnan(alpha):
            got = f"α = {alpha!r}, β = {beta!r}"
            if abs(alpha - epsilon) <= 1e-4 * abs(epsilon) and beta == 0.0:
                label = "flushed"
            elif predicted is not None and _close(alpha, predicted, 1e-6) and \
                    beta is not None and _close(beta, beta_ref, 1e-6):
                label = "exact"
            elif predicted is None:
                self.findings["subnormals"] = undetermined(
                    "subnormals", "λ, σ or ε is not known, so the expected α is not")
                return
            else:
                label = "other"
        elif np.all(np.isnan(output)) or alpha is not None:
            label, got = "nan", "NaN"
        elif (decoded := self.findings.get("decode_arithmetic")) is None or \
                decoded.label != "once-rounded":
            self.findings["subnormals"] = undetermined(
                "subnormals", "from ŵ alone the statistics cannot be told from a decode that "
                              "is not known to be α(q − z) + β rounded once")
            return
        elif np.all(np.abs(output - shift) <= abs(shift) * 0.5):
            label, got = "flushed", f"ŵ = {float(output[0])!r} everywhere"
        else:
            step = level_step(output)
            got = f"α from the levels of ŵ = {step!r}"
            if predicted is None:
                self.findings["subnormals"] = undetermined(
                    "subnormals", "λ, σ or ε is not known, so the expected α is not")
                return
            multiple = step / predicted if step is not None else math.nan
            label = "exact" if math.isfinite(multiple) and multiple > 0.5 and \
                abs(multiple - round(multiple)) < 1e-6 * multiple else "other"
        other = self.observation("subnormal-f32")
        note = ""
        if other is not None and other.pipeline is not None and \
                other.pipeline.output is not None and np.any(np.isnan(other.pipeline.output)):
            note = "float32 weights of about 1e-40 give NaN"
            if self.fit.precision == "float32":
                note += " (explained by the float32 statistics: the squares underflow)"
        self.findings["subnormals"] = judged("subnormals", label, "exact", None,
                                             evidence(obs, expected, got, note))

    def fit_decode(self) -> None:
        """Which formula gives ŵ from the codes, bit for bit, in float64 and float32."""
        matched: list[set[str]] = []
        shown: tuple[Observation, str, str] | None = None
        if self.fit.zero_point is None:
            self.findings["decode_arithmetic"] = undetermined(
                "decode_arithmetic", "the zero point is not known")
            return
        for name in ("float64", "float64-b", "float64-c", "float64-d", "float32"):
            obs = self.observation(f"decode-{name}")
            if obs is None:
                continue
            dtype = obs.case.dtype
            parts = self._decode_parts(obs)
            if parts is None:
                continue
            codes, alpha, beta, output = parts
            z = self.fit.zero_point
            candidates = decode_candidates(obs.case.weights, codes, alpha, beta, z)
            fits = {name for name, values in candidates.items()
                    if np.array_equal(values.view(_uint(values)), output.astype(dtype)
                                      .view(_uint(values)))}
            matched.append({name.split(":")[0] for name in fits})
            if shown is None or not fits:
                once = candidates["once-rounded"]
                differ = np.flatnonzero(once != output)
                index = int(differ[0]) if differ.size else 0
                shown = (obs, f"ŵ = {float(once[index])!r} (α(q − z) + β rounded once)",
                         f"ŵ = {float(output[index])!r}")
        if not matched or shown is None:
            self.findings["decode_arithmetic"] = undetermined(
                "decode_arithmetic", "no codes with ŵ and α (returned or given) to compare")
            return
        common = set.intersection(*matched)
        if len(common) > 1:
            alternatives = " from ".join(sorted(common))
            self.findings["decode_arithmetic"] = undetermined(
                "decode_arithmetic", f"the probes answered cannot tell {alternatives}")
            return
        label = next((name for name in ("once-rounded", "reciprocal",
                                        "straight-through-residue") if name in common), "other")
        self.findings["decode_arithmetic"] = judged(
            "decode_arithmetic", label, "once-rounded", None,
            evidence(shown[0], shown[1], shown[2],
                     "candidates matching bit for bit: "
                     + "; ".join(", ".join(sorted(m)) or "none" for m in matched)))

    def _decode_parts(self, obs: Observation
                      ) -> tuple[np.ndarray, float, float, np.ndarray] | None:
        z = self.fit.zero_point if self.fit.zero_point is not None else 0.5
        if obs.encode is not None and obs.encode.output is not None:
            alpha = float(obs.case.encode_alpha[0])
            beta = float(obs.case.encode_beta[0])
            part = obs.encode
        elif obs.pipeline is not None and obs.pipeline.output is not None and \
                obs.pipeline.alpha is not None and obs.pipeline.beta is not None:
            alpha, beta = float(obs.pipeline.alpha[0]), float(obs.pipeline.beta[0])
            part = obs.pipeline
        else:
            return None
        assert part.output is not None
        if not (math.isfinite(alpha) and alpha > 0 and math.isfinite(beta)):
            return None
        codes = part.codes
        if codes is None:
            codes = codes_from_output(part.output, alpha, beta, z)
        if codes is None:
            return None
        return codes, alpha, beta, part.output

    def fit_ties(self) -> None:
        """Which cell a value exactly on a threshold goes to: encode step, else pipeline."""
        for dtype in ("float64", "float32"):
            obs = self.observation(f"ties-encode-{dtype}")
            if obs is None or obs.encode is None:
                continue
            codes = obs.encode.codes
            if codes is None and obs.encode.output is not None and \
                    self.fit.zero_point is not None:
                codes = codes_from_output(obs.encode.output, TIE_ALPHA, TIE_BETA,
                                          self.fit.zero_point)
            if codes is None:
                continue
            lowest, highest = code_range(4)
            count = highest - lowest
            directions = {j: _direction(int(codes[i]), j)
                          for i, j in enumerate(range(lowest, highest))}
            self._tie_finding(directions, obs, codes[:count], "encode step", "")
            return
        self._pipeline_ties()

    def _pipeline_ties(self) -> None:
        placed = self.pipeline("ties-pipeline-r1", need_codes=True)
        obs = self.observation("ties-pipeline-r1")
        if placed is None or obs is None or not placed.beta_returned or \
                placed.alpha_source != "returned":
            self.findings["tie_rule"] = undetermined(
                "tie_rule", _why(obs, "no encode step, and the whole pipeline returns no α, β "
                                      "and codes to place values on its thresholds"))
            return
        frame_size = obs.case.weights.size - len(TIE_THRESHOLDS) - 2
        for number in (2, 3):
            verified = self._verified_ties(obs, placed, frame_size)
            if len(verified) == len(TIE_THRESHOLDS):
                break
            alpha, beta = float(placed.alpha[0]), float(placed.beta[0])
            balance = self._balance(obs, alpha, frame_size)
            if balance is None:
                break
            case = self._pipeline_tie_probe((alpha, beta, balance), number)
            self.obs.update(self.rounds.ask([case], "ties on the implementation's own "
                                                    "thresholds"))
            obs = self.obs[case.id]
            found = self.pipeline(f"ties-pipeline-r{number}", need_codes=True)
            if found is None:
                break
            placed = found
        verified = self._verified_ties(obs, placed, frame_size)
        if len(verified) < 3 or not any(j > 0 for j in verified) or \
                not any(j < 0 for j in verified):
            self.findings["tie_rule"] = undetermined(
                "tie_rule", "the values could not be placed on the implementation's own "
                            "thresholds bit for bit")
            return
        assert placed.codes is not None
        codes = placed.codes.reshape(-1)
        directions = {j: _direction(int(codes[frame_size + TIE_THRESHOLDS.index(j)]), j)
                      for j in verified}
        self._tie_finding(directions, obs, codes[frame_size:frame_size + len(TIE_THRESHOLDS)],
                          "whole pipeline, on the implementation's own thresholds", "")

    def _verified_ties(self, obs: Observation, found: Pipeline, frame_size: int) -> list[int]:
        alpha, beta = float(found.alpha[0]), float(found.beta[0])
        weights = obs.case.weights.reshape(-1)
        verified = []
        for index, j in enumerate(TIE_THRESHOLDS):
            w = float(weights[frame_size + index])
            if alpha > 0 and (w - beta) / alpha == j:
                verified.append(j)
        return verified

    def _balance(self, obs: Observation, alpha: float, frame_size: int) -> float | None:
        """b for the next round: Σw² unchanged when the ties move to the new α."""
        weights = obs.case.weights.reshape(-1)
        old_ties = weights[frame_size:frame_size + len(TIE_THRESHOLDS)]
        old_balance = float(weights[-2])
        new_square = sum((j * alpha) ** 2 for j in TIE_THRESHOLDS)
        old_square = float(np.sum((old_ties - old_ties[TIE_THRESHOLDS.index(0)]) ** 2))
        target = old_balance**2 - (new_square - old_square) / 2.0
        return math.sqrt(target) if target > 0 else None

    def _tie_finding(self, directions: dict[int, str | None], obs: Observation,
                     codes: np.ndarray, where: str, note: str) -> None:
        label = classify_ties(directions)
        shown = next((j for j in sorted(directions, key=abs) if directions[j] != "up"),
                     next(iter(directions)))
        pipeline = obs.case.id.startswith("diag-ties-pipeline")
        index = TIE_THRESHOLDS.index(shown) if pipeline else shown - code_range(4)[0]
        w = float(obs.case.weights.reshape(-1)[-len(TIE_THRESHOLDS) - 2 + index] if pipeline
                  else obs.case.weights.reshape(-1)[index])
        value = {str(j): directions[j] for j in sorted(directions)}
        text = f"{where}; t = (w − β)/α = {shown}" + (f"; {note}" if note else "")
        self.findings["tie_rule"] = judged(
            "tie_rule", label, "upper-cell", value,
            evidence(obs, f"code {shown + 1} at w = {w!r}", f"code {int(codes[index])}", text))


# ---------------------------------------------------------------------- small pure helpers


def on_threshold(alpha: float, beta: float, j: int) -> float:
    """A float64 w with fl(fl(w − β)/α) = j exactly, next to β + jα (β itself for j = 0)."""
    if j == 0:
        return beta
    w = beta + j * alpha
    for _ in range(8):
        t = (w - beta) / alpha
        if t == j:
            return w
        w = float(np.nextafter(w, math.inf if t < j else -math.inf))
    return beta + j * alpha


def divisor_bounds(offsets: np.ndarray, codes: np.ndarray, lowest: int, highest: int
                   ) -> tuple[float, float]:
    """The divisors d > 0 that give every code: q − 1 ≤ (w − β)/d < q for each value.

    `offsets` are w − β; codes at either end of the range (clipped) say nothing and are
    skipped. Returns the interval (low, high) of d the codes allow (high may be inf).
    """
    low, high = 0.0, math.inf
    for x, q in zip(offsets.tolist(), codes.tolist(), strict=True):
        if x == 0 or not lowest < q < highest:
            continue
        if x > 0:
            if q > 0:
                low = max(low, x / q)
            if q - 1 > 0:
                high = min(high, x / (q - 1))
        else:
            if q < 0:
                high = min(high, x / q)
            if q - 1 < 0:
                low = max(low, x / (q - 1))
    return low, high


def poorly_inverted(alpha: float) -> float:
    """The float64 nearest `alpha` (within 64 ulps) whose fl(1/α)·α is 0.3 ulp or more from 1.

    Multiplying by α and dividing by fl(1/α) then round differently for many codes.
    """
    candidate = alpha
    for _ in range(64):
        if abs(_reciprocal_error(candidate)) >= 0.3 * 2.0**-53:
            return candidate
        candidate = float(np.nextafter(candidate, math.inf))
    return alpha


def _reciprocal_error(alpha: float) -> float:
    """fl(1/α)·α − 1 exactly (as a float), from the exact rational product."""
    from fractions import Fraction

    return float(Fraction(1.0 / alpha) * Fraction(alpha) - 1)


def classify_ties(directions: dict[int, str | None]) -> str:
    """The tie rule a pattern of directions ("up"/"down" per threshold t = j) shows."""
    if any(d is None for d in directions.values()):
        return "other"
    if all(d == "up" for d in directions.values()):
        return "upper-cell"
    if all(d == "down" for d in directions.values()):
        return "lower-cell"
    if all(d == ("up" if j > 0 else "down") for j, d in directions.items() if j != 0):
        return "half-away"
    for parity in (0, 1):
        if all(d == ("up" if j % 2 == parity else "down") for j, d in directions.items()):
            return "half-even"
    return "other"


def _direction(code: int, j: int) -> str | None:
    return "up" if code == j + 1 else "down" if code == j else None


def decode_candidates(weights: np.ndarray, codes: np.ndarray, alpha: float, beta: float,
                      z: float) -> dict[str, np.ndarray]:
    """ŵ of `codes` by each known decode formula, in the dtype of `weights`."""
    dtype = weights.dtype
    shifted = codes.reshape(weights.shape).astype(np.float64) - z
    once = (alpha * shifted + beta).astype(dtype)
    with np.errstate(all="ignore"):
        reciprocal64 = (shifted / (1.0 / alpha) + beta).astype(dtype)
        r32 = np.float32(1.0 / np.float64(np.float32(alpha)))
        reciprocal32 = (shifted / np.float64(r32) + np.float64(np.float32(beta))
                        ).astype(np.float32).astype(dtype)
        residue = (weights + (once - weights).astype(dtype)).astype(dtype)
    return {"once-rounded": once, "reciprocal:64": reciprocal64,
            "reciprocal:32": reciprocal32, "straight-through-residue": residue}


def _uint(values: np.ndarray) -> np.dtype:
    return np.dtype(np.uint32 if values.dtype == np.float32 else np.uint64)


def _source(alpha_source: str) -> str:
    return "returned" if alpha_source == "returned" else "from the gaps between ŵ levels"


def _has_nan(obs: Observation) -> bool:
    part = obs.pipeline
    return part is not None and part.output is not None and bool(np.any(np.isnan(part.output)))


def _close(a: float, b: float, relative: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= relative * abs(b)


def _nearest_label(value: float, options: dict[str, float], tolerance: float) -> str | None:
    for name, target in options.items():
        if math.isfinite(value) and abs(value - target) <= tolerance * max(1.0, abs(target)):
            return name
    return None


def _rounded(value: float) -> float | None:
    return float(f"{value:.9g}") if math.isfinite(value) else None


def _why(obs: Observation | None, default: str) -> str:
    if obs is not None and obs.refused:
        return f"the probe was refused: {obs.error}"
    return default


__all__ = ["ASPECTS", "DEFINITION", "UL2QDiagnosis", "classify_ties", "decode_candidates",
           "on_threshold"]
