"""The accuracy part's judgements live in results.json; report.md only formats them.

:mod:`ul2q_ref.reproduce.accuracy` computes the noise estimate, the paper's orderings and the
Table IV agreement (checked here against hand-computed cases);
:mod:`ul2q_ref.reproduce.report` shows what results.json holds and nothing else (checked by
taking the judgements out of, or changing them in, the results it renders).
"""

from __future__ import annotations

import copy
import math

import pytest

from ul2q_ref.reproduce import accuracy, report


def row(run, mean, sd=None, bits=None, paper=None):
    scheme = accuracy.RUNS[run][0]
    return {"run": run, "scheme": scheme, "bits": accuracy.RUNS[run][1] if bits is None else bits,
            "layers": {"conv1": {"scheme": scheme, "bits": accuracy.RUNS[run][1]}},
            "per_seed_percent": [mean], "test_accuracy_percent": mean, "sd_percent": sd,
            "paper_accuracy_percent": paper,
            "difference_to_paper_points": None if paper is None else mean - paper,
            "difference_to_float_points": 0.0}


def part(rows, test_images=10_000):
    settings = {"data": "mnist", "model": "lenet5", "epochs": 1, "batch": 64, "lr": 0.01,
                "lr_policy": "fixed", "momentum": 0.9, "weight_decay": 5e-4}
    return {"settings": settings, "seeds": [0, 1], "layers": "paper", "test_images": test_images,
            "train_images": 60_000, **accuracy.summarise(rows, test_images)}


def test_noise_is_the_binomial_standard_error_of_the_float_run():
    noise = accuracy.noise([row("ul2q-2", 97.0), row("float", 99.0)], 10_000)
    # by hand: SE = 100·sqrt(0.99·0.01/10000) = 100·sqrt(9.9e-7) = 0.0994987437...
    assert noise["reference_run"] == "float" and noise["test_images"] == 10_000
    assert noise["standard_error_points"] == pytest.approx(0.09949874371066199, rel=1e-12)
    assert noise["meaningful_difference_points"] == pytest.approx(0.28142494558940577,
                                                                  rel=1e-12)
    assert accuracy.noise([], 10_000) is None and accuracy.noise([row("float", 99.0)], None) is None


@pytest.mark.parametrize(("better", "worse", "verdict"), [
    ((99.5, 0.1), (99.0, 0.1), "holds"),                  # gap 0.5 ≥ 2·0.1414
    ((99.1, 0.1), (99.0, 0.1), "holds on the means"),     # 0 ≤ 0.1 < 0.2828
    ((98.9, 0.1), (99.0, 0.1), "not on the means"),       # −0.2828 < −0.1 < 0
    ((98.0, 0.1), (99.0, 0.1), "does not hold"),          # −1 ≤ −0.2828
    ((99.0, None), (99.0, None), "holds"),                # one seed, gap 0
    ((98.99, None), (99.0, None), "does not hold"),       # one seed, gap < 0
])
def test_orderings_are_judged_with_the_combined_spread(better, worse, verdict):
    rows = [row("ul2q-1", *better), row("binary", *worse)]
    [judged] = accuracy.orderings(rows)
    assert (judged["better"], judged["worse"], judged["verdict"]) == ("ul2q-1", "binary", verdict)
    assert judged["gap_points"] == better[0] - worse[0]
    assert judged["combined_sd_points"] == math.hypot(better[1] or 0.0, worse[1] or 0.0)


def test_orderings_need_both_runs():
    assert accuracy.orderings([row("ul2q-2", 99.0), row("binary", 98.0)]) == []


@pytest.mark.parametrize(("difference", "within"), [(-0.149, True), (-0.153, True),
                                                     (-0.156, False), (0.4, True)])
def test_table_iv_agreement_is_judged_on_the_reported_two_decimals(difference, within):
    rows = [row("ul2q-2", 99.0 + difference, paper=99.0), row("ul2q-4", 99.2, paper=99.12)]
    agreement = accuracy.table_iv(rows)
    assert set(agreement["difference_points_by_bits"]) == {"2", "4"}
    assert agreement["within_margin"] is within
    assert accuracy.table_iv([row("float", 99.0)]) is None


def test_the_report_shows_the_judgements_results_json_holds():
    data = part([row("float", 99.0, 0.05), row("ul2q-1", 99.2, 0.1, paper=99.06),
                 row("binary", 98.9, 0.1)])
    text = report._accuracy(data, {})
    noise = data["noise"]
    assert f"standard error of {noise['standard_error_points']:.2f} points" in text
    assert f"about {noise['meaningful_difference_points']:.2f} points" in text
    [judged] = data["orderings"]
    assert f"μL2Q 1-bit ≥ binary (BWN): {judged['verdict']} ({judged['gap_points']:+.2f}" in text
    assert "μL2Q mean minus Table IV, by k: 1: +0.14 points (within 0.15" in text


def test_the_report_computes_no_judgement_of_its_own():
    data = part([row("float", 99.0, 0.05), row("ul2q-1", 99.2, 0.1, paper=99.06),
                 row("binary", 98.9, 0.1)])
    bare = copy.deepcopy(data)
    for key in ("noise", "orderings", "table_iv"):
        del bare[key]
    text = report._accuracy(bare, {})
    for phrase in ("Noise:", "standard error", "orderings", "Table IV, by k", "combined sd"):
        assert phrase not in text
    changed = copy.deepcopy(data)  # numbers no computation from the rows would give
    changed["noise"]["standard_error_points"] = 7.777
    changed["orderings"][0]["verdict"] = "VERDICT-FROM-JSON"
    changed["table_iv"]["within_margin"] = False
    text = report._accuracy(changed, {})
    assert "standard error of 7.78 points" in text
    assert "VERDICT-FROM-JSON" in text
    assert "more than 0.15 points below at some k" in text
