"""The comparison schemes' aspects on their own mutant zoo (tests/diagnose_zoo.py)."""

from __future__ import annotations

import itertools

import pytest
from diagnose_zoo import SCHEME_DEFINITIONS, SCHEME_DEVIATIONS, make_scheme_solve

from ul2q_ref.crosscheck.check import self_provider
from ul2q_ref.crosscheck.diagnosis import UNKNOWN, diagnose

SINGLES = [(scheme, {aspect: label}) for scheme, aspects in SCHEME_DEVIATIONS.items()
           for aspect, labels in aspects.items() for label in labels]
PAIRS = [(scheme, {a: x, b: y}) for scheme, aspects in SCHEME_DEVIATIONS.items()
         for a, b in itertools.combinations(aspects, 2)
         for x, y in itertools.product(aspects[a], aspects[b])]


def _id(case: tuple[str, dict[str, str]]) -> str:
    scheme, deviations = case
    return scheme + ":" + "+".join(f"{a}={b}" for a, b in deviations.items())


@pytest.mark.parametrize("scheme", sorted(SCHEME_DEFINITIONS))
def test_this_package_comes_out_clean(scheme: str) -> None:
    diagnosis = diagnose(self_provider, scheme=scheme)
    assert diagnosis.labels() == SCHEME_DEFINITIONS[scheme]
    assert diagnosis.closest["name"] == "ul2q-ref"
    assert diagnosis.deviations == []


@pytest.mark.parametrize("scheme", sorted(SCHEME_DEFINITIONS))
def test_the_clean_mutant_comes_out_clean(scheme: str) -> None:
    """The zoo's own scheme implementation without deviations is the definition."""
    assert diagnose(make_scheme_solve(scheme, {}), scheme=scheme).labels() == \
        SCHEME_DEFINITIONS[scheme]


@pytest.mark.parametrize("case", SINGLES + PAIRS, ids=[_id(c) for c in SINGLES + PAIRS])
def test_every_scheme_deviation_is_named(case: tuple[str, dict[str, str]]) -> None:
    scheme, deviations = case
    labels = diagnose(make_scheme_solve(scheme, deviations), scheme=scheme).labels()
    assert labels == {**SCHEME_DEFINITIONS[scheme], **deviations}


def test_output_only_leaves_what_needs_alpha_or_delta_undetermined() -> None:
    """ŵ only: Δ is not returned, so ternary's factor is not determinable; the rest are."""
    diagnosis = diagnose(make_scheme_solve("ternary", {"threshold_rule": "inclusive"},
                                           output_only=True), scheme="ternary")
    assert diagnosis.labels() == {"threshold_rule": "inclusive", "threshold_factor": None,
                                  "zero_tensor": "zero"}
    assert diagnosis.finding("threshold_factor").verdict == UNKNOWN
    fixed = diagnose(make_scheme_solve("fixed_point", {"exponent": "log2"}, output_only=True),
                     scheme="fixed_point")
    assert fixed.labels() == {**SCHEME_DEFINITIONS["fixed_point"], "exponent": "log2"}
