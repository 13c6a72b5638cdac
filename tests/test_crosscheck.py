"""The cross-checking kit: conformance vectors, the checker, and the protocol."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref.cli import main
from ul2q_ref.crosscheck import SCHEMA_PATH, check, vectors
from ul2q_ref.crosscheck.encoding import from_hex, shift_ulps, to_hex, ulp_distance
from ul2q_ref.crosscheck.reference_impl import solve
from ul2q_ref.gaussian import PAPER_TABLE_I

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("vectors")
    assert main(["vectors", "--out", str(directory)]) == 0
    return directory


@pytest.fixture(scope="module")
def suite(suite_dir) -> vectors.Suite:
    return vectors.load_suite(suite_dir)


def summary_of(text: str) -> tuple[int, int]:
    last = text.rstrip("\n").splitlines()[-1]
    match = SUMMARY.match(last)
    assert match, f"last line is not the summary: {last!r}"
    return int(match[1]), int(match[2])


# --------------------------------------------------------------------------- the suite


def test_suite_is_deterministic_small_and_versioned(suite_dir, tmp_path):
    again = tmp_path / "again"
    vectors.write_suite(again)
    files = sorted(p.relative_to(suite_dir) for p in suite_dir.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (suite_dir / name).read_bytes() == (again / name).read_bytes(), name
    assert sum((suite_dir / name).stat().st_size for name in files) < 2_000_000
    header = json.loads((suite_dir / "vectors.json").read_text(encoding="utf-8"))
    assert header["schema_version"] == vectors.SCHEMA_VERSION
    assert header["generator_version"] == uq.__version__
    assert header["case_count"] == len(header["cases"])


def test_suite_matches_its_json_schema(suite_dir):
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    document = json.loads((suite_dir / "vectors.json").read_text(encoding="utf-8"))
    try:
        import jsonschema
    except ImportError:  # a structural check instead of a hard dependency
        assert set(schema["required"]) <= set(document)
        case_schema = schema["$defs"]["case"]
        for case in document["cases"]:
            assert set(case_schema["required"]) <= set(case) <= set(case_schema["properties"])
            assert set(case["flags"]) <= set(vectors.FLAGS)
        return
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert not errors, errors[0].message


def test_suite_covers_every_width_dtype_profile_and_scheme(suite):
    seen = {(c.scheme, c.profile, c.bits, c.dtype) for c in suite.cases}
    for profile in ("exact", "paper", "caffe"):
        for bits in range(1, 17):
            for dtype in ("float32", "float64"):
                assert ("ul2q", profile, bits, dtype) in seen
    for dtype in ("float32", "float64"):
        assert all(("fixed_point", None, k, dtype) in seen for k in range(1, 17))
        assert all(("clip", None, k, dtype) in seen for k in range(2, 17))
        assert ("binary", None, 1, dtype) in seen and ("ternary", None, 2, dtype) in seen
    flags = {flag for case in suite.cases for flag in case.flags}
    assert flags == set(vectors.FLAGS)


def test_docs_coverage_table_is_true(suite):
    text = (ROOT / "docs" / "crosscheck.md").read_text(encoding="utf-8")
    table = text.split("<!-- coverage-table -->")[1].split("<!-- /coverage-table -->")[0]
    counts = vectors.flag_counts(suite.cases)
    expected = {"all": str(len(suite.cases))}
    for scheme in ("binary", "ternary", "fixed_point", "clip"):
        expected[scheme] = str(counts[f"scheme:{scheme}"])
    for profile in ("exact", "paper", "caffe"):
        expected[f"ul2q / {profile}"] = str(counts[f"profile:{profile}"])
    rows = {}
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| group"):
            name, value = (cell.strip() for cell in line.strip("|").split("|"))
            rows[name] = value
    for name, value in expected.items():
        assert rows[name] == value, name
    for name, value in rows.items():
        if " / " in name and name.split(" / ")[0] not in ("ul2q",):
            keys = name.split(" / ")
            got = [str(counts.get(f"dtype:{k}", counts.get(f"flag:{k}", 0))) for k in keys]
            assert value.split(" / ") == got, name


def test_threshold_cases_put_values_exactly_on_thresholds(suite):
    case = next(c for c in suite.cases if c.id == "ul2q-exact-k3-float32-thresholds")
    assert case.stats is None and "encode-only" in case.flags
    alpha, beta = case.encode_alpha[0], case.encode_beta[0]
    triples = case.weights[:-2].reshape(-1, 3)  # (one ulp below, on, one ulp above) each
    steps = (triples[:, 1].astype(np.float64) - beta) / alpha
    np.testing.assert_array_equal(steps, np.arange(-3, 4))  # every interior threshold
    codes = case.codes[:-2].reshape(-1, 3)
    np.testing.assert_array_equal(codes[:, 1], steps + 1)  # on a threshold: upper cell
    np.testing.assert_array_equal(codes[:, 0], np.maximum(steps, -3))  # below: lower cell
    np.testing.assert_array_equal(case.codes[-2:], [-3, 4])  # far outside: clipped


def test_near_threshold_cases_separate_division_from_reciprocal(suite):
    cases = [c for c in suite.cases if "near-threshold" in c.flags]
    assert len(cases) == 6
    for case in cases:
        values = case.weights.astype(np.float64)
        if case.axis is None:
            alpha, beta = case.encode_alpha[0], case.encode_beta[0]
        else:  # one channel per hit: (one ulp below, the hit, one ulp above)
            alpha, beta = case.encode_alpha[:, None], case.encode_beta[:, None]
        division = np.floor((values - beta) / alpha)
        reciprocal = np.floor((values - beta) * (1.0 / alpha))
        differs = division != reciprocal
        assert np.all(differs if case.axis is None else differs[:, 1]), case.id


def test_nan_cases_have_undefined_codes(suite):
    nan_cases = [c for c in suite.cases if "nan" in c.flags]
    assert nan_cases and all(c.profile == "caffe" for c in nan_cases)
    for case in nan_cases:
        assert np.isnan(case.stats.alpha).any() and not case.defined.all()
        assert np.isnan(case.output).any()


def test_tampered_npy_file_is_reported(suite_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    vectors.write_suite(copy)
    victim = sorted((copy / "data").glob("*.npy"))[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    assert main(["check", str(copy), "--self"]) == 2
    assert "SHA-256 mismatch" in capsys.readouterr().err


# --------------------------------------------------------------------------- the checker


def test_vectors_then_check_against_the_reference_passes_every_case(suite_dir, capsys):
    assert main(["check", str(suite_dir), "--self"]) == 0
    out = capsys.readouterr().out
    passed, failed = summary_of(out)
    assert failed == 0 and passed == len(vectors.load_suite(suite_dir).cases)
    assert out.count("PASS ") == passed and "(within tolerance)" not in out


def test_reference_as_a_batch_command_passes_every_case(suite_dir):
    command = f"{sys.executable} -m ul2q_ref.crosscheck.reference_impl"
    result = subprocess.run(
        [sys.executable, "-m", "ul2q_ref", "check", str(suite_dir), "--command", command,
         "--batch", "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert summary_of(result.stdout)[1] == 0
    assert result.stdout.strip() == result.stdout.strip().splitlines()[-1]  # quiet: summary


def test_reference_as_a_per_case_command(suite_dir, capsys):
    command = f"{sys.executable} -m ul2q_ref.crosscheck.reference_impl"
    status = main(["check", str(suite_dir), "--command", command, "--timeout", "120",
                   "--select", "ul2q-caffe-k2-float32-constant-0.3",
                   "--select", "ternary-k2-float64-thresholds"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert summary_of(out) == (2, 0)


def make_mutant(kind: str):
    """A deliberately wrong μL2Q (exact profile, per tensor); everything else is the reference.

    ``half-even``: q = round-half-even((w − β)/α + ½); ``paper``: λ from Table I;
    ``reciprocal``: q = ⌊(w − β)·(1/α)⌋ + 1.
    """

    def codes_of(w, alpha, beta, bits):
        low, high = uq.code_range(bits)
        values = w.astype(np.float64)
        with np.errstate(all="ignore"):
            if kind == "half-even":
                codes = np.rint((values - beta) / alpha + 0.5)
            elif kind == "reciprocal":
                codes = np.floor((values - beta) * (1.0 / alpha)) + 1
            else:
                codes = np.floor((values - beta) / alpha) + 1
        return np.where(alpha == 0, 1, np.clip(codes, low, high)).astype(np.int64)

    def solve_mutant(request):
        if request["scheme"] != "ul2q" or request["profile"] != "exact" or request["axis"]:
            return solve(request)
        dtype, bits = request["dtype"], request["bits"]
        w = from_hex(request["input"]["hex"], dtype)
        result = {"id": request["id"]}

        def part(alpha, beta):
            codes = codes_of(w, alpha, beta, bits)
            output = (alpha * (codes - 0.5) + beta).astype(dtype)
            return {"codes": codes.tolist(), "output": {"hex": to_hex(output, dtype)}}

        if request["quantize"]:
            mean, std = uq.moments(w)
            lam = (PAPER_TABLE_I[bits][0] if kind == "paper" and bits <= 8
                   else uq.optimal_lambda(bits))
            alpha = lam * std
            result["quantize"] = {"alpha": {"hex": to_hex([alpha], "float64")},
                                  "beta": {"hex": to_hex([mean], "float64")},
                                  **part(alpha, mean)}
        given = request["encode"]
        result["encode"] = part(from_hex(given["alpha"]["hex"], "float64")[0],
                                from_hex(given["beta"]["hex"], "float64")[0])
        return result

    return solve_mutant


@pytest.mark.parametrize(
    ("kind", "must_fail", "phrases"),
    [
        ("half-even", "ul2q-exact-k1-float64-tie-at-mean",
         ["code expected 1 got 0", "codes differ at 1 of 5"]),
        ("reciprocal", "ul2q-exact-k4-float64-near-threshold-tensor",
         ["encode: codes differ at 12 of 12", "code expected"]),
        ("paper", "ul2q-exact-k2-float64-random",
         ["quantize: statistics off by alpha", "(allowed 0)"]),
    ],
)
def test_a_deliberately_wrong_implementation_fails_readably(suite, kind, must_fail, phrases):
    report = check.check_suite(suite, check.function_provider(make_mutant(kind)))
    failed = {o.case_id: o for o in report.outcomes if not o.passed}
    assert must_fail in failed
    text = report.render(quiet=True)
    assert summary_of(text) == (len(suite.cases) - len(failed), len(failed))
    block = "\n".join(failed[must_fail].lines)
    for phrase in phrases:
        assert phrase in block
    assert re.search(r"\d+ ulps?", block)
    assert all(o.case_id.startswith("ul2q-exact") for o in failed.values())


def test_wrong_implementation_through_the_cli_exits_nonzero(suite_dir, tmp_path, capsys):
    cases = vectors.load_suite(suite_dir).cases
    mutant = make_mutant("half-even")
    results = {"format": vectors.RESULTS_FORMAT, "schema_version": 1,
               "results": [mutant(vectors.request_for(c)) for c in cases]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results), encoding="utf-8")
    assert main(["check", str(suite_dir), "--results", str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAIL ul2q-exact-k2-float32-tie-at-mean" in out and "PASS" not in out
    assert summary_of(out)[1] > 0


def reference_results(cases):
    return {c.id: solve(vectors.request_for(c)) for c in cases}


def test_results_file_with_a_one_ulp_error_and_the_tolerance(suite, tmp_path, capsys):
    cases = check.select_cases(suite.cases, patterns=["ul2q-exact-k8-float32-random"])
    result = reference_results(cases)[cases[0].id]
    output = from_hex(result["encode"]["output"]["hex"], "float32")
    output[3] = np.nextafter(output[3], np.float32(np.inf))
    result["encode"]["output"]["hex"] = to_hex(output, "float32")
    report = check.check_suite(cases, lambda _: {cases[0].id: result})
    assert report.failed == 1
    assert "first difference at index" in report.render() and "(1 ulp)" in report.render()
    tolerant = check.check_suite(cases, lambda _: {cases[0].id: result}, check.Options(1))
    assert tolerant.failed == 0
    assert "(within tolerance)" in tolerant.render()


def test_statistics_tolerance_and_reencoding_with_the_implementations_alpha(suite):
    cases = check.select_cases(suite.cases, patterns=["ul2q-exact-k16-float64-random"])
    case = cases[0]
    alpha = np.nextafter(np.nextafter(case.stats.alpha, np.inf), np.inf)  # two ulps
    request = vectors.request_for(case)
    request["encode"]["alpha"]["hex"] = to_hex(alpha, "float64")
    shifted = solve(request)  # the reference's codes and ŵ for the shifted α
    result = solve(vectors.request_for(case))
    result["quantize"].update(alpha={"hex": to_hex(alpha, "float64")},
                              codes=shifted["encode"]["codes"],
                              output=shifted["encode"]["output"])
    strict = check.check_suite(cases, lambda _: {case.id: result})
    assert strict.failed == 1 and "alpha 2 ulps" in strict.render()
    for options in (check.Options(0, 2), check.Options(0, "stated")):
        loose = check.check_suite(cases, lambda _: {case.id: result}, options)
        assert loose.failed == 0, loose.render()


def test_missing_and_malformed_results_fail_per_case(suite):
    cases = check.select_cases(suite.cases, patterns=["clip-k4-float32-*"])
    good = reference_results(cases)
    broken = {cid: dict(result) for cid, result in good.items()}
    first, second, third = sorted(broken)[:3]
    del broken[first]
    broken[second]["encode"] = {"codes": [1, 2], "output": {"hex": []}}
    broken[third] = {"id": third, "error": "not implemented"}
    report = check.check_suite(cases, lambda _: broken)
    text = report.render()
    assert "no result for this case" in text
    assert "malformed result: encode.codes: expected a list of" in text
    assert "the implementation reported an error: not implemented" in text
    assert report.failed == 3 and report.passed == len(cases) - 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["check", "/nonexistent/dir", "--self"], "no such file"),
        (["check", "{dir}", "--results", "/nonexistent.json"], "no such file"),
        (["check", "{dir}", "--self", "--batch"], "--batch needs --command"),
        (["check", "{dir}", "--command", "/no/such/program-x"], "command not found"),
        (["check", "{dir}", "--self", "--scheme", "nothing"], "no case matches"),
        (["vectors", "--out", "{dir}"], "exists; pass --force"),
    ],
)
def test_usage_errors_are_one_line_with_status_two(suite_dir, capsys, arguments, message):
    argv = [arg.replace("{dir}", str(suite_dir)) for arg in arguments]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_reference_command_answers_errors_per_request():
    lines = "\n".join([json.dumps({"id": "x", "scheme": "nope"}), "not json", ""]) + "\n"
    result = subprocess.run([sys.executable, "-m", "ul2q_ref.crosscheck.reference_impl"],
                            input=lines, capture_output=True, text=True, cwd=ROOT, timeout=60)
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and len(answers) == 2
    assert answers[0]["id"] == "x" and "error" in answers[0]
    assert answers[1]["id"] is None and "JSONDecodeError" in answers[1]["error"]


def test_torch_bridge_import_error_names_the_extra():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import ul2q_ref.torch\nexcept ImportError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert "pip install 'ul2q-ref[torch]'" in result.stdout


# --------------------------------------------------------------------------- encodings


def test_hex_round_trip_and_ulp_distances():
    values = np.array([0.0, -0.0, 1.0, -1.5, 1e-45, np.inf, np.nan], dtype=np.float32)
    patterns = to_hex(values, "float32")
    assert patterns[:3] == ["00000000", "80000000", "3f800000"]
    back = from_hex(patterns, "float32")
    np.testing.assert_array_equal(back.view(np.uint32), values.view(np.uint32))
    with pytest.raises(ValueError, match="element 0"):
        from_hex(["3f80"], "float32")
    one = np.float64(1.0)
    assert ulp_distance([one, 0.0, np.nan], [np.nextafter(one, 2), -0.0, np.nan],
                        "float64") == [1, 0, 0]
    assert ulp_distance([1.0], [np.nan], "float64") == [float("inf")]
    assert ulp_distance([-np.float32(1e-45)], [np.float32(1e-45)], "float32") == [2]
    shifted = shift_ulps(np.array([1.0, -0.0], dtype=np.float32), 2)
    assert shifted[0] == np.nextafter(np.nextafter(np.float32(1), np.float32(2)),
                                      np.float32(2))
    assert shift_ulps(shifted, -2)[0] == 1.0


def test_suite_file_hashes_match_the_npy_files(suite_dir):
    document = json.loads((suite_dir / "vectors.json").read_text(encoding="utf-8"))
    references = [part for case in document["cases"]
                  for part in (case["input"], case["encode"]["codes"], case["encode"]["output"])
                  if isinstance(part, dict) and "npy" in part]
    assert len(references) == 3 * sum("large" in c["flags"] for c in document["cases"])
    for reference in references:
        content = (suite_dir / reference["npy"]).read_bytes()
        assert hashlib.sha256(content).hexdigest() == reference["sha256"]
