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
        if deviations.get("decode_arithmetic") == "reciprocal":
            # ŵ of a subnormal α through 1/α = inf is β everywhere: from ŵ alone that is
            # a σ of 0 or the decode; the tests of the decode cannot resolve it
            unknown.add("subnormals")
    if mode == "output-and-pipeline-only":
        # no encode step and no α, β, codes: nothing can be placed on a threshold, and no
        # ŵ can be compared with its codes
        unknown |= {"tie_rule", "decode_arithmetic"}
        if deviations.get("subnormals") == "other":
            unknown.add("subnormals")  # ŵ = β everywhere, and the decode is not known
    if mode == "float64-only":
        unknown.add("statistics_precision")  # probed with float32 input
    if mode == "float32-only":
        # λ, ε, the estimator and subnormals are probed again with float32 copies (a second
        # round); but float32 statistics square float32 subnormals to 0 whatever the
        # subnormal handling, so that aspect is then not determinable
        if deviations.get("statistics_precision") == "float32":
            unknown.add("subnormals")
        if deviations.get("decode_arithmetic") != "straight-through-residue":
            # float32 ŵ cannot tell α(q − z) + β from (q − z)/(1/α) + β computed in
            # float64 (they differ by less than half a float32 ulp); w + (ŵ − w) it can
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
        assert (finding.verdict == UNKNOWN) == (finding.aspect in unknown)
