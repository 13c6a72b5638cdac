"""Every pair of injected deviations is named exactly (the full set; a subset runs in
tests/test_diagnose.py)."""

from __future__ import annotations

import pytest
from diagnose_zoo import all_pairs, expected_labels, make_solve

from ul2q_ref.crosscheck.diagnosis import diagnose


@pytest.mark.slow
def test_every_pair_of_deviations_is_named() -> None:
    wrong = []
    for deviations in all_pairs():
        labels = diagnose(make_solve(deviations)).labels()
        if labels != expected_labels(deviations):
            wrong.append((deviations, {aspect: label for aspect, label in labels.items()
                                       if label != expected_labels(deviations)[aspect]}))
    assert wrong == []
