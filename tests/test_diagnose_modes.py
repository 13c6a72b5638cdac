"""Implementations that answer less: ŵ only, the whole pipeline only, one dtype only.

Each gets every aspect its answers can show and "not determinable" for the rest; which ones
are which is reasoned here from what each mode leaves out (docs/crosscheck.md, "Diagnosis").
"""

from __future__ import annotations

import pytest
from diagnose_zoo import DEVIATIONS, expected_labels, make_solve

from ul2q_ref.crosscheck.diagnosis import UNKNOWN, diagnose

MODES = {
    "output-only": {"output_only": True},
    "pipeline-only": {"pipeline_only": True},
    "output-and-pipeline-only": {"output_only": True, "pipeline_only": True},
    "float64-only": {"dtypes": ("float64",)},
    "float32-only": {"dtypes": ("float32",)},
}


def undeterminable(mode: str, deviations: dict[str, str]) -> set[str]:
    """The aspects a mutant answering in `mode` cannot show, and why."""
    unknown: set[str] = set()
    if mode.startswith("output"):
        unknown.add("statistics_precision")  # β is not returned
        if "decode_arithmetic" in deviations and deviations.get("subnormals") != "nan":
            # subnormals are then read off ŵ alone, through a decode that is not α(q − z) + β
            # rounded once (1/α = inf, float32 arithmetic, w + (ŵ − w) all lose them); a NaN
            # ŵ is NaN whatever the decode
            unknown.add("subnormals")
    if mode == "output-and-pipeline-only":
        # no encode step and no α, β, codes: nothing can be placed on a threshold, no ŵ can
        # be compared with its codes, so the decode is unknown and subnormals with it
        unknown |= {"tie_rule", "decode_arithmetic"}
        if deviations.get("subnormals") != "nan":
            unknown.add("subnormals")
    if mode == "float64-only":
        unknown.add("statistics_precision")  # probed with float32 input
    if mode == "float32-only":
        # λ, ε, the estimator and subnormals are probed again with float32 copies (a second
        # round); subnormals only count when the statistics are known to be float64 (float32
        # squares of subnormals underflow whatever the subnormal handling)
        if "statistics_precision" in deviations:
            unknown.add("subnormals")
        if deviations.get("decode_arithmetic", "once-rounded") in ("once-rounded", "reciprocal"):
            # float32 ŵ cannot tell α(q − z) + β from (q − z)/(1/α) + β computed in
            # float64 (they differ by less than half a float32 ulp); other formulas it can
            unknown.add("decode_arithmetic")
    return unknown


def exhibited(mode: str, deviations: dict[str, str]) -> dict[str, str]:
    """The deviations a mutant shows on the inputs it accepts in `mode`.

    The zoo's ``subnormals=other`` (σ underflowing to 0) happens for float64 input only:
    float32 subnormals (≥ 1.4e-45) squared in float64 (≥ 2e-90) do not underflow.
    """
    if mode == "float32-only" and deviations.get("subnormals") == "other":
        return {aspect: label for aspect, label in deviations.items() if aspect != "subnormals"}
    return deviations


CASES = [(mode, {aspect: label}) for mode in MODES
         for aspect, labels in DEVIATIONS.items() for label in labels]
CASES += [(mode, {}) for mode in MODES]


@pytest.mark.parametrize(("mode", "deviations"), CASES,
                         ids=[f"{m}-{'+'.join(f'{a}={b}' for a, b in d.items()) or 'clean'}"
                              for m, d in CASES])
def test_each_mode_gets_the_aspects_it_can(mode: str, deviations: dict[str, str]) -> None:
    diagnosis = diagnose(make_solve(deviations, **MODES[mode]))
    unknown = undeterminable(mode, deviations)
    want = {aspect: (None if aspect in unknown else label)
            for aspect, label in expected_labels(exhibited(mode, deviations)).items()}
    assert diagnosis.labels() == want
    for finding in diagnosis.findings:
        assert (finding.verdict == UNKNOWN) == (want[finding.aspect] is None)
