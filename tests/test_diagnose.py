"""``ul2q_ref.crosscheck.diagnose`` on the mutant zoo: every injected deviation is named.

The mutants (tests/diagnose_zoo.py) are the definition written out with one or two
deviations injected; the expected labels are the injected ones (and the definition's for
every other aspect), never the diagnosis's own output.
"""

from __future__ import annotations

import itertools

import pytest
from diagnose_zoo import (
    DEFINITION_LABELS,
    DEVIATIONS,
    MASKED,
    all_pairs,
    expected_labels,
    garbled_solve,
    make_solve,
    profile_solve,
)

from ul2q_ref.crosscheck.check import function_provider, self_provider
from ul2q_ref.crosscheck.diagnosis import DEVIATES, MATCHES, UNKNOWN, VERDICTS, diagnose
from ul2q_ref.crosscheck.reference_impl import solve as reference_solve

SINGLES = [{aspect: label} for aspect, labels in DEVIATIONS.items() for label in labels]


def _name(deviations: dict[str, str]) -> str:
    return "+".join(f"{aspect}={label}" for aspect, label in deviations.items())


def _representative_pairs() -> list[dict[str, str]]:
    """One pair per two aspects: the first deviation of each that some input can show."""
    pairs = []
    for first, second in itertools.combinations(DEVIATIONS, 2):
        for a, b in itertools.product(DEVIATIONS[first], DEVIATIONS[second]):
            if frozenset({(first, a), (second, b)}) not in MASKED:
                pairs.append({first: a, second: b})
                break
    return pairs


def test_this_package_comes_out_clean() -> None:
    diagnosis = diagnose(self_provider)
    assert diagnosis.labels() == DEFINITION_LABELS
    assert all(finding.verdict == MATCHES for finding in diagnosis.findings)
    assert diagnosis.closest == {"name": "exact", "agreement": 12, "of": 12, "differs": []}
    assert diagnosis.deviations == []


def test_a_plain_solve_function_is_accepted() -> None:
    """diagnose(solve) wraps a solve(request) function itself; providers are used as given."""
    assert diagnose(reference_solve).labels() == DEFINITION_LABELS
    assert diagnose(function_provider(reference_solve)).labels() == DEFINITION_LABELS
    assert diagnose(lambda r: reference_solve(r)).labels() == DEFINITION_LABELS

    def provider(batch: list) -> dict:  # a provider by its annotation
        return function_provider(reference_solve)(batch)

    assert diagnose(provider).labels() == DEFINITION_LABELS


@pytest.mark.parametrize("deviations", SINGLES, ids=_name)
def test_every_single_deviation_is_named(deviations: dict[str, str]) -> None:
    diagnosis = diagnose(make_solve(deviations))
    assert diagnosis.labels() == expected_labels(deviations)
    assert {f.aspect for f in diagnosis.deviations} == set(deviations)


@pytest.mark.parametrize("deviations", _representative_pairs(), ids=_name)
def test_pairs_of_deviations_are_named(deviations: dict[str, str]) -> None:
    assert diagnose(make_solve(deviations)).labels() == expected_labels(deviations)


def test_the_zoo_sizes() -> None:
    """32 single deviations; 458 pairs once the seven masked ones are left out."""
    assert len(SINGLES) == 32
    assert len(all_pairs()) == 458
    assert len(_representative_pairs()) == 66


def test_the_paper_profile_is_named_as_the_paper() -> None:
    diagnosis = diagnose(profile_solve("paper"))
    assert diagnosis.labels() == expected_labels({"lambda": "table-1",
                                                  "lambda_above_8": "paper-range-rule"})
    assert diagnosis.closest["name"] == "paper"
    assert diagnosis.closest["agreement"] == 12


def test_the_caffe_profile_is_named_as_caffe() -> None:
    """The caffe profile: Caffe's λ table and 6.2σ rule, its + 1e-7, C round of t + ½,
    float32 statistics (float64 input is rounded to float32, so 1e-310 becomes 0) and ŵ
    divided by the stored reciprocal (docs/crosscheck.md, §1 and §2)."""
    diagnosis = diagnose(profile_solve("caffe"))
    assert diagnosis.labels() == expected_labels({
        "lambda": "caffe-table", "lambda_above_8": "caffe-6.2-sigma",
        "epsilon": "added-to-alpha", "tie_rule": "half-away",
        "statistics_precision": "float32", "subnormals": "flushed",
        "decode_arithmetic": "reciprocal"})
    assert diagnosis.closest["name"] == "caffe"
    assert diagnosis.closest["agreement"] == 12
    epsilon = diagnosis.finding("epsilon").value
    assert abs(epsilon - 1e-7) < 1e-12  # the fitted ε is Caffe's 1e-7


def test_fitted_values_are_the_injected_ones() -> None:
    """λ per k of the Table I mutant is Table I; ε of the ε mutant is 1e-7; z is 0."""
    lam = diagnose(make_solve({"lambda": "table-1"})).finding("lambda").value
    assert lam["1"] == 1.5959 and lam["8"] == 0.0304
    epsilon = diagnose(make_solve({"epsilon": "added-to-alpha"})).finding("epsilon").value
    assert abs(epsilon - 1e-7) < 1e-15
    divisor = diagnose(make_solve({"epsilon": "divisor-only"})).finding("epsilon").value
    assert abs(divisor - 1e-7) < 1e-8  # bracketed by the codes of values 0.75 % apart
    c = diagnose(make_solve({"lambda_above_8": "range-c"})).finding("lambda_above_8").value
    assert abs(c["c"] - 8.0) < 1e-9
    assert diagnose(make_solve({"zero_point": "0"})).finding("zero_point").value == 0.0


def test_findings_carry_evidence_with_expected_and_got() -> None:
    diagnosis = diagnose(make_solve({"std_estimator": "unbiased"}))
    finding = diagnosis.finding("std_estimator")
    assert finding.verdict == DEVIATES
    assert finding.evidence["probe"] == "diag-std-n2"
    assert finding.evidence["input"] == "[-1, 1] float64"
    assert finding.evidence["expected"] != finding.evidence["got"]
    assert abs(finding.value - (4.0 / 3.0) ** 0.5) < 1e-6


def test_a_refused_request_is_not_a_deviation_of_every_aspect() -> None:
    """An implementation that refuses everything: nothing is determinable, nothing deviates."""

    def refuse(request: dict) -> dict:
        raise ValueError("not implemented")

    diagnosis = diagnose(refuse)
    assert all(finding.verdict == UNKNOWN for finding in diagnosis.findings)
    assert diagnosis.closest["of"] == 0


@pytest.mark.parametrize("seed", range(30))
def test_garbled_answers_give_findings_not_crashes(seed: int) -> None:
    """Dropped parts, ±inf, NaN, subnormal α, junk codes, errors: every aspect still gets a
    verdict, and every fit handles what it was given (no fit fails and is caught)."""
    diagnosis = diagnose(garbled_solve(seed))
    assert [f.aspect for f in diagnosis.findings] == list(DEFINITION_LABELS)
    for finding in diagnosis.findings:
        assert finding.verdict in VERDICTS
        assert "could not be fitted" not in finding.evidence.get("note", "")


def test_caffe_without_an_encode_step_is_still_caffe() -> None:
    """Only the whole pipeline: the tie rule comes from values placed on Caffe's own
    thresholds (two more rounds), the decode from its returned α, β; the same labels."""
    caffe = profile_solve("caffe")

    def pipeline_only(request: dict) -> dict:
        result = caffe(request)
        result.pop("encode", None)
        return result

    diagnosis = diagnose(pipeline_only)
    assert diagnosis.finding("tie_rule").evidence["probe"].startswith("diag-ties-pipeline")
    assert diagnosis.rounds > 1
    assert diagnosis.labels() == diagnose(caffe).labels()
    assert diagnosis.closest["name"] == "caffe"


def test_the_pytorch_bridge_comes_out_clean() -> None:
    """The PyTorch bridge (ul2q_ref.torch, μL2Q exact profile) is a second implementation
    of the definition: no aspect deviates."""
    torch_bridge = pytest.importorskip("ul2q_ref.torch", reason="the bridge needs PyTorch")
    diagnosis = diagnose(torch_bridge.solve_crosscheck_request)
    assert diagnosis.labels() == DEFINITION_LABELS
