"""The checker as a user meets it: what its lines say when a command misbehaves.

From a hostile review of issue 18 items 2, 3 and 7 (each test states the line that was
wrong before): a failure the checker made (a timeout, a case not run, a crash) is not "the
implementation reported an error"; a failure without a comparison points to no aspect; a
log line on stdout does not abort a batch or fail a case; a batch that crashes part way
keeps the results it wrote.
"""

from __future__ import annotations

import json
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ul2q_ref.crosscheck import adapters, check, encoding, explain, vectors

ROOT = Path(__file__).resolve().parents[1]
CASES = ["ul2q-exact-k2-float32-random", "ul2q-exact-k2-float64-random",
         "ul2q-exact-k3-float32-random"]

# Answers with this package (so every answered case passes), after `chatter` on stdout,
# and exits with status 3 after answering `answered` requests (-1: answers all).
SCRIPT = textwrap.dedent("""\
    import sys
    from ul2q_ref.crosscheck.reference_impl import answer, solve
    chatter, answered = sys.argv[1], int(sys.argv[2])
    if chatter:
        print(chatter, flush=True)
    for number, line in enumerate(sys.stdin):
        if number == answered:
            sys.stderr.write("pretend crash\\n")
            sys.exit(3)
        print(answer(line, solve), flush=True)
    """)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vectors")
    vectors.write_suite(directory)
    chosen = check.select_cases(vectors.load_suite(directory).cases, patterns=CASES)
    assert [case.id for case in chosen] == CASES
    return chosen


@pytest.fixture()
def script(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = tmp_path / "impl.py"
    path.write_text(SCRIPT)

    def command(chatter: str = "", answered: int = -1) -> str:
        return f"{sys.executable} {path} '{chatter}' {answered}"

    return command


def test_a_timeout_is_the_checkers_finding_not_the_implementations_error(cases, tmp_path):
    # Before: "the implementation reported an error: timed out after 1 s", and the grouping
    # "failures point to: other 3" although nothing was compared.
    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(60)\n")
    provider = check.command_provider(f"{sys.executable} {hang}", timeout=0.5,
                                      give_up_after=1)
    report = check.check_suite(cases, provider)
    lines = report.render().splitlines()
    assert lines[1] == "     no result: timed out after 0.5 s"
    assert lines[3] == "     no result: not run: the command timed out on 1 consecutive cases"
    assert not any("reported an error" in line for line in lines)
    assert not any(line.startswith("failures point to") for line in lines)
    assert lines[-2] == ("failures without a comparison: 3 (no result, an error, or a "
                         "malformed result: they point to no aspect)")
    assert lines[-1] == "0 passed, 3 failed"


def test_an_error_the_implementation_reports_is_still_called_so(cases):
    def solve(request):
        return {"id": request["id"], "error": "timed out after 1 s"}  # its own words

    report = check.check_suite(cases, check.function_provider(solve))
    outcome = report.outcomes[0]
    assert outcome.lines == ["the implementation reported an error: timed out after 1 s"]
    assert not outcome.compared and outcome.aspects == []


def test_a_log_line_before_the_result_does_not_fail_a_case(cases, script):
    # Before: "unusable output: not JSON (Expecting value …)" for every case.
    report = check.check_suite(cases, check.command_provider(script("loading model")))
    assert report.summary() == "3 passed, 0 failed"


def test_log_lines_in_a_batch_are_ignored_and_counted(cases, script):
    # Before: "ul2q-ref check: error: output line 1: not JSON (…)", the whole run abandoned
    # (and '[1, 2]' on a line, which the docstring said answers no case, did the same).
    for chatter, why in (
            ("loading model", "not JSON (Expecting value: line 1 column 1 (char 0))"),
            ("[1, 2]", "the result is not a JSON object: '[1, 2]'")):
        report = check.check_suite(cases, check.batch_provider(script(chatter)))
        assert report.summary() == "3 passed, 0 failed"
        assert report.notes == ["note: 1 output line(s) are not results and were ignored "
                                f"(first: line 1, {chatter!r}: {why})"]


def test_a_batch_that_crashes_part_way_keeps_what_it_answered(cases, script):
    # Before: "ul2q-ref check: error: python exited with status 3", every result lost.
    report = check.check_suite(cases, check.batch_provider(script(answered=1)))
    lines = report.render().splitlines()
    crashed = f"{sys.executable} ended with exit status 3: pretend crash"
    assert lines[0] == f"note: {crashed}; the results it wrote before are checked"
    assert lines[1] == f"PASS {CASES[0]}"
    assert lines[2:6] == [f"FAIL {CASES[1]}",
                          f"     no result: {crashed} (before answering this case)",
                          f"FAIL {CASES[2]}",
                          f"     no result: {crashed} (before answering this case)"]
    assert lines[-1] == "1 passed, 2 failed"


def test_a_batch_that_answers_nothing_is_still_a_run_level_error(cases, script):
    with pytest.raises(check.CheckError, match="ended with exit status 3: pretend crash$"):
        check.check_suite(cases, check.batch_provider(script(answered=0)))


# --------------------------------------------------------------------------- adapt(fn)

W = np.linspace(-1.0, 1.0, 6, dtype=np.float32)
W_HAT = np.where(W < 0, -0.5, 0.5).astype(np.float32)  # any ŵ of the right shape and dtype


def _request(bits: int = 2) -> dict:
    return {"id": "x", "scheme": "ul2q", "bits": bits, "axis": None, "dtype": "float32",
            "shape": [6], "parameter_dtype": "float64",
            "input": {"hex": encoding.to_hex(W, "float32")}, "quantize": True}


@pytest.mark.parametrize("returned, message", [
    # Before: a (6, 1) ŵ was flattened and compared; (3,) became "expected 6 value(s)".
    (W_HAT.reshape(6, 1), "quantize()'s w_hat has shape (6, 1); expected the input's shape "
                          "(6,)"),
    (np.float32(0.5), "quantize()'s w_hat has shape (); expected the input's shape (6,)"),
    # Before: a complex ŵ passed after a ComplexWarning.
    (W_HAT + 0j, "quantize()'s w_hat has dtype complex64; expected real numbers"),
    (np.array(["a"] * 6), "quantize()'s w_hat has dtype <U1; expected real numbers"),
    # Before: codes 0.5 were truncated to 0 by int().
    ((0.1, 0.0, np.array([0.5, 0, 0, 1, 1, 2]), W_HAT),
     "quantize()'s codes are not whole numbers (first: 0.5 at index 0)"),
    ((0.1, 0.0, np.array([0, 0, 0, 1, 1, np.nan]), W_HAT),
     "quantize()'s codes are not whole numbers (first: nan at index 5)"),
    ((0.1, 0.0, W_HAT), "quantize() returned a tuple of 3; expected w_hat or (alpha, beta, "
                        "codes, w_hat)"),
    ({"alpha": 0.1, "beta": 0.0, "what": W_HAT},
     'quantize() returned a dict without "w_hat" (its keys: alpha, beta, what)'),
    (None, "quantize() returned None; expected w_hat or (alpha, beta, codes, w_hat)"),
])
def test_adapt_names_what_is_wrong_with_a_return_value(returned, message):
    solve = adapters.adapt(lambda w, bits: returned)
    with pytest.raises(ValueError) as raised:
        solve(_request())
    assert str(raised.value) == message


def test_adapt_takes_a_list_as_w_hat_and_whole_float_codes():
    # Before: a list was read as (α, β, codes, ŵ), so a 4-element list was misread and any
    # other length was refused; float codes 1.0, 2.0 (TensorFlow's habit) are whole numbers.
    result = adapters.adapt(lambda w, bits: [float(x) for x in W_HAT])(_request())
    assert result["quantize"]["output"]["hex"] == encoding.to_hex(W_HAT, "float32")
    codes = np.array([-1.0, -1.0, 0.0, 1.0, 2.0, 2.0], dtype=np.float32)
    result = adapters.adapt(lambda w, bits: (0.5, 0.0, codes, W_HAT))(_request())
    assert result["quantize"]["codes"] == [-1, -1, 0, 1, 2, 2]


def test_adapt_refuses_what_is_not_a_function():
    with pytest.raises(TypeError, match=r"^adapt: quantize must be a function, got int$"):
        adapters.adapt(42)
    with pytest.raises(TypeError, match=r"^adapt: encode must be a function, got str$"):
        adapters.adapt(lambda w, bits: w, encode="encode")


# --------------------------------------------------------------------------- explanations


def test_a_zero_point_shift_under_float32_rounding_is_still_a_zero_point():
    # Before: "ŵ − ŵ_ref ranges from +0.498 α to +0.501 α …", aspect "other". β = 1000 and
    # α = 0.001 in float32: ŵ is rounded to ulp(1000) = 2^-14, 0.061 α, so the shift of
    # α/2 is seen only to ±0.061 α. The median is computed here in exact arithmetic.
    alpha, beta = 0.001, 1000.0
    codes = np.array([-1, 0, 0, 1, 2, -1], dtype=np.int64)
    expected = np.array([alpha * (q - 0.5) + beta for q in codes], dtype=np.float32)
    got = np.array([alpha * q + beta for q in codes], dtype=np.float32)
    shifts = sorted(Fraction(float(g)) - Fraction(float(e))
                    for e, g in zip(expected, got, strict=True))
    median = (shifts[2] + shifts[3]) / 2 / Fraction(alpha)
    bad = np.ones(6, dtype=bool)
    found = explain.pattern(bad, np.zeros(6, dtype=bool), codes, codes, expected, got,
                            np.full(6, alpha), np.zeros(6, dtype=bool), codes,
                            "ul2q", np.full(6, 8.0))
    assert found.aspects == ["zero_point"]
    assert found.line == (f"every ŵ is {float(median):.3f} α above the reference (±0.061 α: "
                          "ŵ is rounded to float32); codes agree")


@pytest.mark.parametrize("flags, aspect", [(["subnormal"], "subnormals"),
                                           (["huge-mean"], "statistics_precision")])
def test_alpha_zero_where_the_reference_has_one_is_not_lambda(flags, aspect):
    # Before: α = 0 against α_ref = 7.7e-311 (σ flushed to 0 on subnormal input) pointed to
    # "lambda": the relative difference, 1, is beyond 10⁻³.
    found = explain.statistics_aspects(np.array([7.7e-311]), np.array([0.0]), False,
                                       np.array([7.73e-311]), 24, 2, flags)
    assert found == [aspect]


def test_the_given_alpha_beta_line_names_the_channel_of_the_first_difference(tmp_path):
    # Before: "encode: α … (channel 0 of 6), β … (channel 0 of 6)" beside a first difference
    # at index (1, 1), whose channel (axis 0) is 1.
    import struct

    from ul2q_ref.crosscheck.reference_impl import solve

    vectors.write_suite(tmp_path)
    case = check.select_cases(vectors.load_suite(tmp_path).cases,
                              patterns=["ul2q-exact-k4-float64-near-threshold"])[0]
    assert case.weights.shape == (6, 3) and case.axis == 0
    result = solve(vectors.request_for(case))
    result["encode"]["codes"][1 * 3 + 1] -= 1  # element (1, 1) only
    outcome = check.check_case(case, result, check.Options())
    alpha_bits = struct.pack(">d", float(case.encode_alpha[1])).hex()
    beta_bits = struct.pack(">d", float(case.encode_beta[1])).hex()
    given = [line for line in outcome.lines if line.endswith("(given to both sides)")]
    assert len(given) == 1
    assert given[0].startswith(f"encode: α 0x{alpha_bits} (")
    assert f"(channel 1 of 6), β 0x{beta_bits} (" in given[0]
    assert given[0].endswith("(channel 1 of 6) (given to both sides)")


def test_adapt_torch_module_refuses_what_is_not_a_module_or_factory():
    with pytest.raises(TypeError, match=r"^adapt_torch_module: expected a torch.nn.Module or "
                                        r"a factory \(bits, axis\) -> module, got int$"):
        adapters.adapt_torch_module(42)


def test_unclipped_codes_make_a_code_range_pattern_not_other():
    # Before: "codes differ by -1 to +1 at 2 of 4 elements, 0 of them on a threshold"
    # (aspect "other") beside the line flagging the same codes as out of range.
    expected = np.array([-1, 0, 1, 2], dtype=np.int64)  # k = 2: codes -1..2
    got = np.array([-2, 0, 1, 3], dtype=np.int64)        # floor((w − β)/α) + 1, unclipped
    outside = np.array([True, False, False, True])
    w_ref = np.array([-0.15, -0.05, 0.05, 0.15])
    w_got = np.array([-0.25, -0.05, 0.05, 0.25])
    found = explain.pattern(outside, expected != got, got, expected, w_ref, w_got,
                            np.full(4, 0.1), np.zeros(4, dtype=bool), expected, "ul2q",
                            np.full(4, 1e15), outside)
    assert found.line == ("codes differ only where the implementation's code is outside the "
                          "code range (2 of 4): not clipped")
    assert found.aspects == ["code_range"]


def test_an_out_of_range_code_is_located_like_the_element_lines(tmp_path):
    # Before: "(first: 2 at index 5)" beside element lines that say "index (0, 1, 1)".
    from ul2q_ref.crosscheck.reference_impl import solve

    vectors.write_suite(tmp_path)
    case = check.select_cases(vectors.load_suite(tmp_path).cases,
                              patterns=["ul2q-exact-k1-float32-random"])[0]
    assert case.weights.shape == (2, 3, 4)
    result = solve(vectors.request_for(case))
    result["quantize"]["codes"][5] = 2  # k = 1: codes 0..1; flat 5 is (0, 1, 1)
    lines = check.check_case(case, result, check.Options()).lines
    assert ("quantize: 1 code(s) outside the ul2q range 0..1 at k = 1 (first: 2 at index "
            "(0, 1, 1))") in lines


def test_a_small_positive_excess_on_a_tiny_alpha_also_points_to_epsilon():
    # Before: only "lambda_above_8": α = 10⁻⁶ + 10⁻⁸ is 1 % above α_ref = 10⁻⁶, beyond 10⁻³
    # relative, but the excess 10⁻⁸ is what an additive ε gives.
    found = explain.statistics_aspects(np.array([1e-6]), np.array([1e-6 + 1e-8]), False,
                                       np.array([1e-4]), 24, 9, [])
    assert found == ["lambda_above_8", "epsilon"]


def test_stats_ulps_any_says_the_statistics_differ_instead_of_within_tolerance(tmp_path):
    # Before: "PASS … (within tolerance)" although no tolerance was given and α was off by
    # 433617743611 ulps (λ from the paper's Table I): the statistics were simply not compared.
    from ul2q_ref.crosscheck.reference_impl import solve

    vectors.write_suite(tmp_path)
    case = check.select_cases(vectors.load_suite(tmp_path).cases,
                              patterns=["ul2q-exact-k2-float32-random"])[0]
    result = solve(vectors.request_for(case))
    alpha = encoding.from_hex(result["quantize"]["alpha"]["hex"], "float64")[0]
    result["quantize"]["alpha"] = {"hex": encoding.to_hex(
        np.array([np.nextafter(alpha, np.inf)]), "float64")}  # one ulp above
    report = check.check_suite([case], check.function_provider(lambda request: result),
                               check.Options(0, "any"))
    assert report.render().splitlines()[0] == (
        "PASS ul2q-exact-k2-float32-random (statistics not compared (--stats-ulps any): "
        "alpha 1 ulp, beta 0 ulps from the reference's; codes and ŵ checked with its own "
        "α, β)")
    tolerant = check.check_suite([case], check.function_provider(lambda request: result),
                                 check.Options(0, 1))
    assert tolerant.render().splitlines()[0] == ("PASS ul2q-exact-k2-float32-random (within "
                                                 "tolerance)")


def test_a_command_ended_by_a_signal_is_named_and_an_empty_stderr_adds_no_colon(cases,
                                                                              tmp_path):
    # Before: "exit status 139: " (the reaper reports signal N as 128 + N, like a shell).
    script = tmp_path / "segv.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    report = check.check_suite(cases[:1], check.command_provider(f"{sys.executable} {script}"))
    assert report.outcomes[0].lines == ["no result: exit status 139 (SIGSEGV)"]


def test_a_batch_that_answers_no_case_says_so(cases, tmp_path):
    # Before: only "no result for this case" per case, with nothing about the command.
    script = tmp_path / "silent.py"
    script.write_text("import sys\nsys.stdin.read()\n")
    report = check.check_suite(cases, check.batch_provider(f"{sys.executable} {script}"))
    assert report.notes == [f"note: {sys.executable} answered none of the 3 cases"]


def test_adapt_passes_a_keyword_only_axis_by_keyword():
    # Before: "TypeError: <lambda>() takes 2 positional arguments but 3 were given".
    seen = []

    def quantize(w, bits, *, axis=None):
        seen.append(axis)
        return W_HAT

    result = adapters.adapt(quantize)(_request())
    assert seen == [None]
    assert result["quantize"]["output"]["hex"] == encoding.to_hex(W_HAT, "float32")


def test_a_per_case_result_for_another_case_is_not_compared(cases, tmp_path):
    # Before: the result was compared whatever its id, so a stale or cached answer for
    # another case showed up as differences in codes and ŵ.
    from ul2q_ref.crosscheck.reference_impl import solve

    other = json.dumps(solve(vectors.request_for(cases[1])))
    script = tmp_path / "stale.py"
    script.write_text(f"import sys\nsys.stdin.read()\nprint({other!r})\n")
    report = check.check_suite(cases[:1], check.command_provider(f"{sys.executable} {script}"))
    assert report.outcomes[0].lines == [
        f"no result: the result names case '{CASES[1]}', not this one"]


def test_a_w_hat_only_tie_rule_is_read_from_whole_cells_not_called_a_zero_point():
    # Before: "ŵ is, at 2 of 4 elements, 1.000 α below the reference" (aspect zero_point)
    # for a ŵ-only implementation taking the lower cell on thresholds. α = 1, β = 0, k = 2:
    # q = ⌊w⌋ + 1 gives codes [0, 1, 1, 2] for w = [-0.5, 0, 0.5, 1]; w = 0 and w = 1 lie
    # on thresholds j = 0 and j = 1, where the lower cell gives codes 0 and 1.
    expected_codes = np.array([0, 1, 1, 2], dtype=np.int64)
    w_ref = np.array([-0.5, 0.5, 0.5, 1.5])   # α(q − ½) + β
    w_got = np.array([-0.5, -0.5, 0.5, 0.5])
    bad = w_ref != w_got
    on_boundary = np.array([False, True, False, True])
    threshold = np.array([0, 0, 1, 1])          # expected code − 1 at a cell's lowest input
    found = explain.pattern(bad, None, None, expected_codes, w_ref, w_got, np.ones(4),
                            on_boundary, threshold, "ul2q", np.full(4, 1e15))
    assert found.line == ("ŵ is off by whole cells (codes not given; read from ŵ): codes "
                          "differ only where the input is on a threshold (2 of 4), by exactly "
                          "-1 (the lower cell), at odd and even thresholds (j = 0, 1; "
                          "threshold j is β + jα)")
    assert found.aspects == ["tie_rule"]
    # the same whole-cell shift at every element stays a zero point (z = 1.5 reads alike)
    shifted = explain.pattern(np.ones(4, dtype=bool), None, None, expected_codes, w_ref,
                              w_ref - 1.0, np.ones(4), on_boundary, threshold, "ul2q",
                              np.full(4, 1e15))
    assert shifted.line == "every ŵ is 1.000 α below the reference"
    assert shifted.aspects == ["zero_point"]


def test_codes_are_not_invented_from_a_w_hat_off_its_own_code_book(tmp_path):
    # Before: for ŵ = αq + β (zero point 0) without codes, q = round((ŵ − β)/α + ½) rounded
    # q + ½ half to even, inventing "codes differ by exactly +1 at 14 of 24 elements" and
    # "3 code(s) outside the ul2q range" (aspects other, code_range).
    from ul2q_ref.crosscheck.reference_impl import solve

    vectors.write_suite(tmp_path)
    case = check.select_cases(vectors.load_suite(tmp_path).cases,
                              patterns=["ul2q-exact-k2-float32-random"])[0]
    result = solve(vectors.request_for(case))
    part = result["quantize"]
    alpha = encoding.from_hex(part["alpha"]["hex"], "float64")[0]
    beta = encoding.from_hex(part["beta"]["hex"], "float64")[0]
    codes = np.array(part.pop("codes"), dtype=np.float64)
    part["output"] = {"hex": encoding.to_hex((alpha * codes + beta).astype(np.float32),
                                             "float32")}
    outcome = check.check_case(case, result, check.Options())
    assert ("quantize: codes not given, and not inferred: ŵ is 0.500 α off the code book "
            "α(q − 0.5) + β of its own α, β, so ŵ alone is compared") in outcome.notes
    assert "quantize: pattern: every ŵ is 0.500 α above the reference" in outcome.lines
    assert outcome.aspects == ["zero_point"]
