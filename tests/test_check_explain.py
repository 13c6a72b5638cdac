"""The checker explains failures (issue 18, item 2): hand-made wrong results, hand-derived lines.

Every case is small enough to work out on paper. The main one: w = [−1, 1, −1, 1] (float64),
2-bit μL2Q, exact profile, so μ = 0 and σ = 1 exactly, α = λ₂* (≈ 0.995687), β = 0;
(w − β)/α = ±1.0043, so the codes are q = ⌊±1.0043⌋ + 1 = [−1, 2, −1, 2] and
ŵ = α(q − ½) = [−1.5α, 1.5α, −1.5α, 1.5α]. Each test injects one known defect into that
result and states the explanation the defect must produce, derived from the formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ul2q_ref.crosscheck import check, vectors
from ul2q_ref.crosscheck.encoding import to_hex
from ul2q_ref.crosscheck.reference_impl import solve
from ul2q_ref.gaussian import PAPER_TABLE_I, optimal_lambda

W = np.array([-1.0, 1.0, -1.0, 1.0])
Q = np.array([-1, 2, -1, 2])


@pytest.fixture(scope="module")
def case():
    return vectors.build_case("hand-k2", "hand-made", ["random"], "ul2q", "exact", 2, W)


def whole(alpha, beta, codes, output, dtype="float64"):
    part = {"alpha": {"hex": to_hex([alpha], "float64")},
            "beta": {"hex": to_hex([beta], "float64")},
            "output": {"hex": to_hex(output, dtype)}}
    if codes is not None:
        part["codes"] = [int(q) for q in codes]
    return part


def run(case, result, options=None):
    report = check.check_suite([case], lambda _: {case.id: {"id": case.id, **result}}, options)
    return report, report.outcomes[0]


def test_the_hand_case_is_what_the_docstring_says(case):
    lam = optimal_lambda(2)
    assert case.stats.alpha[0] == lam and case.stats.beta[0] == 0.0
    assert case.stats.details["std"][0] == 1.0
    assert case.codes.tolist() == Q.tolist()
    assert case.output.tolist() == (lam * (Q - 0.5)).tolist()


def test_a_zero_point_of_one_is_every_w_half_an_alpha_below(case):
    lam = optimal_lambda(2)
    # ŵ' = α(q − 1) + β, so ŵ' − ŵ = α(q − 1) − α(q − ½) = −½α at every element
    report, outcome = run(case, {"quantize": whole(lam, 0.0, Q, lam * (Q - 1.0))})
    assert not outcome.passed
    assert ("quantize: pattern: every ŵ is 0.500 α below the reference; codes agree"
            in outcome.lines)
    assert outcome.aspects == ["zero_point"]
    # α, β on both sides, λ_eff = α/σ = λ₂* on both (σ = 1)
    assert f"quantize: λ_eff = α/σ: expected {lam:.6g} got {lam:.6g} (σ = 1 from the case's " \
           "details)" in outcome.lines
    assert any(line.startswith("quantize: α 0x") and line.endswith("on both sides")
               for line in outcome.lines)
    # the largest difference: ½α absolute, relative ½α / 1.5α = 1/3 (ŵ = ±1.5α everywhere)
    head = next(line for line in outcome.lines if line.startswith("quantize: codes differ"))
    assert f"abs {0.5 * lam:.3g}, rel {1 / 3:.3g}" in head
    assert head.startswith("quantize: codes differ at 0 of 4, ŵ at 4 of 4")
    # up to three elements, each with its shift in units of α
    elements = [line for line in outcome.lines if "difference at index" in line]
    assert len(elements) == 3
    assert elements[0].startswith("quantize: first difference at index 0: input "
                                  "0xbff0000000000000 (-1.0), code expected -1 got -1")
    assert all(line.endswith("ŵ − ŵ_ref = -0.500 α") for line in elements)
    assert report.grouping() == [
        "failures by flag: random 1",
        "failures point to: zero_point 1 (leads, not verdicts: `ul2q-ref diagnose` "
        "separates the aspects)"]


def test_a_sign_flip_is_named(case):
    lam = optimal_lambda(2)
    _, outcome = run(case, {"quantize": whole(lam, 0.0, 1 - Q, -lam * (Q - 0.5))})
    assert "quantize: pattern: sign flipped: ŵ = −ŵ_ref at every differing element (4 of 4)" \
        in outcome.lines


def test_a_code_outside_the_range_is_flagged(case):
    lam = optimal_lambda(2)
    codes = Q.copy()
    codes[1] = 3                       # k = 2: codes run from 1 − 2 = −1 to 2
    _, outcome = run(case, {"quantize": whole(lam, 0.0, codes, lam * (codes - 0.5))})
    assert ("quantize: 1 code(s) outside the ul2q range -1..2 at k = 2 (first: 3 at index 1)"
            in outcome.lines)
    assert "code_range" in outcome.aspects


def test_the_papers_table_shows_as_lambda_with_the_step_on_both_sides(case):
    lam, table = optimal_lambda(2), PAPER_TABLE_I[2][0]       # 0.995687 vs 0.9894
    report, outcome = run(case, {"quantize": whole(table, 0.0, Q, table * (Q - 0.5))})
    assert outcome.lines[0].startswith("quantize: statistics off by alpha ")
    assert outcome.lines[0].endswith(", beta 0 ulps (parameter dtype float64)")
    assert f"abs {lam - table:.3g}, rel {(lam - table) / lam:.3g} (allowed 0)" in \
        outcome.lines[1]
    assert f"quantize: λ_eff = α/σ: expected {lam:.6g} got 0.9894 (σ = 1 from the case's " \
           "details)" in outcome.lines
    assert ("quantize: with its own α, β the codes and ŵ are the definition's encode step: "
            "only the statistics step differs") in outcome.lines
    assert outcome.aspects == ["lambda"]
    # --stats-ulps any: statistics not compared, the pipeline checked with its own α, β
    tolerant, outcome = run(case, {"quantize": whole(table, 0.0, Q, table * (Q - 0.5))},
                            check.Options(0, "any"))
    assert tolerant.passed == 1 and not outcome.bit_exact


def test_the_unbiased_std_shows_as_std_estimator(case):
    # σ' = √(n/(n − 1))·σ = √(4/3) for n = 4; then w/α' = ±0.8698, so q' = [0, 1, 0, 1]
    alpha = optimal_lambda(2) * math.sqrt(4 / 3)
    codes = np.array([0, 1, 0, 1])
    _, outcome = run(case, {"quantize": whole(alpha, 0.0, codes, alpha * (codes - 0.5))})
    assert outcome.aspects == ["std_estimator"]


def test_half_even_on_t_minus_half_differs_at_odd_thresholds_only():
    # encode step, α = ¼, β = 0: t = w/α = −2, −1, 0, 1, 2, 3 (all on thresholds)
    w = np.array([-0.5, -0.25, 0.0, 0.25, 0.5, 0.75])
    case = vectors.build_case("ties", "hand-made", ["tie"], "ul2q", "exact", 3, w,
                              given=(0.25, 0.0, None))
    assert case.codes.tolist() == [-1, 0, 1, 2, 3, 4]          # q = t + 1 (upper cell)
    # q' = round-half-even(t − ½) + 1: t − ½ = j − ½ goes to j (j even) or j − 1 (j odd)
    wrong = np.array([-1, -1, 1, 1, 3, 3])
    output = 0.25 * (wrong - 0.5)
    _, outcome = run(case, {"encode": {"codes": wrong.tolist(),
                                       "output": {"hex": to_hex(output, "float64")}}})
    assert ("encode: pattern: codes differ only where the input is on a threshold (3 of 6), "
            "by exactly -1 (the lower cell), at odd thresholds only (j = -1, 1, 3; threshold "
            "j is β + jα)") in outcome.lines
    assert "encode: α 0x3fd0000000000000 (0.25), β 0x0000000000000000 (0.0) (given to both " \
           "sides)" in outcome.lines
    assert outcome.aspects == ["tie_rule"]


def test_nan_on_both_sides_passes_and_says_the_cause_is_not_visible():
    # caffe, five float32 0.3s: E[w²] − μ² rounds to −3.58e-09 (docs/crosscheck.md §2)
    case = vectors.build_case("nan", "hand-made", ["constant"], "ul2q", "caffe", 2,
                              np.full(5, 0.3, dtype=np.float32))
    report, outcome = run(case, solve(vectors.request_for(case)))
    assert report.passed == 1
    assert outcome.notes == [
        "α is NaN on both sides (1 channel(s)): the reference's because the caffe profile's "
        "variance E[w²] − μ² rounds below zero here (σ = NaN); the implementation's cause is "
        "not visible in its result (a negative variance, or 0/0 from n − 1 = 0 at n = 1, look "
        "alike), so equal NaNs pass"]
    assert "PASS nan (α is NaN on both sides" in report.render()


def test_w_hat_only_and_inferred_codes_say_what_was_not_checked(case):
    lam = optimal_lambda(2)
    output = {"hex": to_hex(lam * (Q - 0.5), "float64")}
    report, outcome = run(case, {"quantize": {"output": output}})
    assert report.passed == 1
    assert outcome.notes == ["ŵ only: no α, β given, so the statistics step and the codes "
                             "are not checked; ŵ is compared with the reference's"]
    report, outcome = run(case, {"quantize": {"output": {"hex": to_hex(-lam * (Q - 0.5),
                                                                       "float64")}}})
    assert report.failed == 1
    report, outcome = run(case, {"quantize": whole(lam, 0.0, None, lam * (Q - 0.5))})
    assert report.passed == 1
    assert outcome.notes == ["quantize: codes not given; inferred from ŵ with the "
                             "implementation's own α, β"]


def test_not_answerable_only_for_encode_only_cases(case):
    encode_only = vectors.build_case("enc", "hand-made", ["tie"], "ul2q", "exact", 3,
                                     np.array([0.25]), given=(0.25, 0.0, None))
    result = {"not_answerable": "no encode step"}
    report = check.check_suite([encode_only, case],
                               lambda cases: {c.id: {"id": c.id, **result} for c in cases})
    assert [o.status for o in report.outcomes] == ["not answerable", "fail"]
    assert report.summary() == "0 passed, 1 failed, 1 not answerable"
    assert "N/A  enc (not answerable: no encode step)" in report.render()
    assert ("the implementation says it cannot answer (no encode step); only encode-only "
            "cases may be not answerable") in report.outcomes[1].lines


def test_the_docs_example_prints_what_the_docs_show(tmp_path):
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "crosscheck.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def theirs" in b]
    (shown,) = re.findall(r"```text\n(FAIL ul2q-exact-k2-float32-random\n.*?)```", text, re.S)
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


def test_stats_ulps_any_on_the_command_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    vectors.write_suite(tmp_path / "v")
    done = subprocess.run([sys.executable, "-m", "ul2q_ref", "check", str(tmp_path / "v"),
                           "--self", "--stats-ulps", "any", "--select", "clip-k4-*",
                           "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for arguments, message in ((["--self", "--give-up-after", "2"],
                                "--give-up-after needs --command without --batch"),
                               (["--self", "--max-line-bytes", "10"],
                                "--max-line-bytes needs --command"),
                               (["--self", "--stats-ulps", "some"], "--stats-ulps")):
        done = subprocess.run([sys.executable, "-m", "ul2q_ref", "check", str(tmp_path / "v"),
                               *arguments], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2 and message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
