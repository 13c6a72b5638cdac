"""Conformance vectors, schema version 2: the new cases, and version 1 still read.

The expectations come from exact rational arithmetic (fractions.Fraction) on the inputs and
from hand-computed values, not from the generator's own output.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import ul2q_ref.kernels as kernels
from ul2q_ref import _backend
from ul2q_ref.cli import main
from ul2q_ref.crosscheck import check, vectors
from ul2q_ref.crosscheck.encoding import from_hex, to_hex
from ul2q_ref.crosscheck.format import case_to_json
from ul2q_ref.crosscheck.reference_impl import solve
from ul2q_ref.gaussian import PAPER_TABLE_I, optimal_lambda

ROOT = Path(__file__).resolve().parents[1]
V1_FIXTURE = ROOT / "tests" / "data" / "vectors_v1"
"""Eleven cases written by the version-1 generator (commit 65344f1), unchanged since."""

V1_CASE_LINES_SHA256 = "c55ea33f8c74148f5831ddb29e79c9d2f08285dd01e7182663aa101cca9c63df"
"""SHA-256 of the 369 version-1 case lines of 65344f1's ``ul2q-ref vectors`` (each line
without its indent and trailing comma, joined by newlines): the version-1 cases must keep
their bytes."""

TIE_THRESHOLDS = {2: {1}, 3: {1, 2, 3}, 4: {1, 3, 4, 7}, 8: {1, 3, 64, 127}}
"""The thresholds j with probes at β ± jα, per k (chosen by hand; 1, 3, 7, 127 are odd)."""


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("vectors")
    vectors.write_suite(directory)
    return directory


@pytest.fixture(scope="module")
def suite(suite_dir) -> vectors.Suite:
    return vectors.load_suite(suite_dir)


def by_flag(suite: vectors.Suite, flag: str) -> list[vectors.Case]:
    return [case for case in suite.cases if flag in case.flags]


def case_lines(path: Path) -> list[str]:
    """The one-line JSON bodies of the cases of a vectors.json, without trailing commas."""
    return [line.strip().rstrip(",") for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith('  {"id"')]


# --------------------------------------------------------------------------- versions


def test_version_2_is_written_and_version_1_cases_keep_their_bytes(suite_dir, suite):
    header = json.loads((suite_dir / "vectors.json").read_text(encoding="utf-8"))
    assert header["schema_version"] == vectors.SCHEMA_VERSION == 2
    lines = case_lines(suite_dir / "vectors.json")
    old = lines[:369]
    digest = hashlib.sha256("\n".join(old).encode("utf-8")).hexdigest()
    assert digest == V1_CASE_LINES_SHA256, "a version-1 case changed its bytes or its place"
    new_flags = {"pipeline-tie", "zero-tensor", "two-element"}
    assert not any(new_flags & set(json.loads(line)["flags"]) for line in old)
    assert len(suite.cases) == 457


def test_a_version_1_file_still_loads_and_checks(capsys):
    suite = vectors.load_suite(V1_FIXTURE)
    assert suite.header["schema_version"] == 1 and len(suite.cases) == 11
    assert main(["check", str(V1_FIXTURE), "--self"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("11 passed, 0 failed")


def test_the_version_1_fixture_cases_are_rendered_identically_today():
    today = {case.id: case for case in vectors.generate_cases()}
    for line in case_lines(V1_FIXTURE / "vectors.json"):
        case = today[json.loads(line)["id"]]
        assert json.dumps(case_to_json(case), ensure_ascii=False,
                          separators=(",", ":")) == line, case.id


def test_an_unknown_version_is_refused_in_one_line(tmp_path, capsys):
    document = json.loads((V1_FIXTURE / "vectors.json").read_text(encoding="utf-8"))
    document["schema_version"] = 3
    (tmp_path / "vectors.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(vectors.SuiteError, match="reads versions 1 and 2"):
        vectors.load_suite(tmp_path)
    assert main(["check", str(tmp_path), "--self"]) == 2
    err = capsys.readouterr().err.strip()
    assert "$.schema_version: 3 is not one of [1, 2]" in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- pipeline ties


def exact_statistics(weights: np.ndarray) -> tuple[Fraction, Fraction]:
    """μ and σ² of the values as exact rationals (population variance)."""
    values = [Fraction(float(w)) for w in weights.reshape(-1)]
    mean = sum(values, Fraction(0)) / len(values)
    return mean, sum(((v - mean) ** 2 for v in values), Fraction(0)) / len(values)


def is_rounded_sqrt(sigma: float, variance: Fraction) -> bool:
    """σ is √variance correctly rounded to float64 (the nearer neighbour)."""
    half = Fraction(math.ulp(sigma)) / 2
    return (Fraction(sigma) - half) ** 2 <= variance <= (Fraction(sigma) + half) ** 2


def thresholds_hit(case: vectors.Case) -> tuple[list[Fraction], set[int]]:
    """(w − β)/α of every value as an exact rational, and the nonzero integers among them."""
    alpha, beta = float(case.stats.alpha[0]), float(case.stats.beta[0])
    steps = [(Fraction(float(w)) - Fraction(beta)) / Fraction(alpha)
             for w in case.weights.reshape(-1)]
    expected = TIE_THRESHOLDS[case.bits] | {-j for j in TIE_THRESHOLDS[case.bits]}
    on = {int(t) for t in steps if t.denominator == 1 and t != 0}
    assert expected <= on, (case.id, sorted(on))
    return steps, expected


def test_pipeline_ties_cover_every_profile_width_and_dtype(suite):
    cases = by_flag(suite, "pipeline-tie")
    assert len(cases) == 28 and all(c.stats is not None and c.axis is None for c in cases)
    assert {(c.profile, c.bits, c.dtype) for c in cases} == {
        (p, k, d) for p in ("exact", "paper", "caffe") for k in TIE_THRESHOLDS
        for d in ("float32", "float64")}
    assert any(max(c.stats.alpha) > 1e6 and c.dtype == "float32" for c in cases)  # large α


def test_pipeline_ties_put_values_exactly_on_thresholds_off_the_mean(suite):
    cases = [c for c in by_flag(suite, "pipeline-tie") if c.profile != "caffe"]
    for case in cases:
        k = case.bits
        alpha, beta = float(case.stats.alpha[0]), float(case.stats.beta[0])
        # the reference's statistics, checked with exact arithmetic on the input
        mean, variance = exact_statistics(case.weights)
        assert Fraction(beta) == mean, case.id
        sigma = float(case.stats.details["std"][0])
        assert is_rounded_sqrt(sigma, variance), case.id
        lam = optimal_lambda(k) if case.profile == "exact" else PAPER_TABLE_I[k][0]
        assert alpha == lam * sigma, case.id  # one correctly rounded product
        # values on thresholds β + jα, j ≠ 0, exactly as rationals
        steps, _ = thresholds_hit(case)
        # the definition with exact arithmetic: q = clip(⌊(w − β)/α⌋ + 1)
        low, high = 1 - 2 ** (k - 1), 2 ** (k - 1)
        codes = [min(max(math.floor(t) + 1, low), high) for t in steps]
        assert codes == case.codes.reshape(-1).tolist(), case.id


def test_caffe_pipeline_ties_send_negative_ties_down(suite):
    """Caffe's rule of docs/crosscheck.md §1, written out in float32 here."""
    from ul2q_ref.profiles.caffe import LAMBDA_TABLE

    cases = [c for c in by_flag(suite, "pipeline-tie") if c.profile == "caffe"]
    assert len(cases) == 8 and all("defect" in c.flags for c in cases)
    for case in cases:
        k, f32 = case.bits, np.float32
        alpha, beta = f32(case.stats.alpha[0]), f32(case.stats.beta[0])
        mean, variance = exact_statistics(case.weights)
        assert Fraction(float(beta)) == mean, case.id  # float32 sums exact on these integers
        sigma = f32(case.stats.details["std"][0])
        assert abs(Fraction(float(sigma)) ** 2 - variance) < Fraction(float(sigma)) * float(
            np.spacing(sigma)), case.id  # σ = √variance within float32 rounding
        assert alpha == f32(f32(LAMBDA_TABLE[k - 1]) * sigma) >= 2, case.id  # + 1e-7 vanishes
        steps, expected = thresholds_hit(case)
        reciprocal = f32(1) / alpha
        w = case.weights.astype(np.float32).reshape(-1)
        t = (w - beta) * reciprocal  # float32 throughout
        y = np.clip((t.astype(np.float64) + 0.5).astype(np.float32), 1 - 2 ** (k - 1),
                    2 ** (k - 1)).astype(np.float64)
        codes = np.where(y > 0, np.floor(y + 0.5), np.ceil(y - 0.5)).astype(np.int64)
        assert codes.tolist() == case.codes.reshape(-1).tolist(), case.id
        for index, step in enumerate(steps):
            if step in expected:
                assert t[index] == step, case.id  # a tie in Caffe's own arithmetic
                assert codes[index] == (step + 1 if step > 0 else step), case.id


def half_even_mutant(request: dict) -> dict:
    """q = round-half-even((w − β)/α − ½) + 1, else the reference: right at t = 0 only."""
    result = solve(request)
    if request["scheme"] != "ul2q" or request["profile"] != "exact" or not request["quantize"]:
        return result
    dtype = request["dtype"]
    w = from_hex(request["input"]["hex"], dtype).astype(np.float64)
    part = result["quantize"]
    alpha = from_hex(part["alpha"]["hex"], "float64")[0]
    beta = from_hex(part["beta"]["hex"], "float64")[0]
    low, high = 1 - 2 ** (request["bits"] - 1), 2 ** (request["bits"] - 1)
    with np.errstate(all="ignore"):
        codes = np.clip(np.rint((w - beta) / alpha - 0.5) + 1, low, high)
    codes = np.where(alpha == 0, 1, codes).astype(np.int64)
    part["codes"] = codes.tolist()
    part["output"] = {"hex": to_hex((alpha * (codes - 0.5) + beta).astype(dtype), dtype)}
    return result


def test_half_even_rounding_passes_the_mean_tie_but_fails_the_pipeline_ties(suite):
    at_mean = check.select_cases(suite.cases, profiles=["exact"], patterns=["*-tie-at-mean"])
    ties = check.select_cases(by_flag(suite, "pipeline-tie"), profiles=["exact"])
    assert len(at_mean) == 6 and len(ties) == 10
    provider = check.function_provider(half_even_mutant)
    assert check.check_suite(at_mean, provider).failed == 0  # the blind spot of version 1
    report = check.check_suite(ties, provider)
    assert report.failed == len(ties), report.render(quiet=True)


# --------------------------------------------------------------------------- zero, constant, small


def test_every_scheme_has_a_per_tensor_zero_tensor(suite):
    cases = by_flag(suite, "zero-tensor")
    kinds = {(c.scheme, c.profile, c.dtype) for c in cases}
    for dtype in ("float32", "float64"):
        for scheme in ("binary", "ternary", "fixed_point", "clip"):
            assert (scheme, None, dtype) in kinds
        for profile in ("exact", "paper", "caffe"):
            assert ("ul2q", profile, dtype) in kinds
    for case in cases:
        assert case.axis is None and not case.weights.any()
        if case.profile == "caffe":  # docs/crosscheck.md §1: α = f32(0 + 1e-7), r = f32(1/α),
            alpha = np.float32(1e-7)  # q = 1, ŵ = f32((1 − ½)/d(r) + μ)
            reciprocal = np.float32(1.0 / np.float64(alpha))
            expected = np.float32(0.5 / np.float64(reciprocal))
            assert "defect" in case.flags and (case.codes == 1).all()
            assert case.output.astype(np.float32).tolist() == [expected] * 8, case.id
        else:
            assert case.stats.alpha.tolist() == [0.0] and not case.output.any(), case.id


def test_large_constant_tensors_have_sigma_zero(suite):
    cases = [c for c in suite.cases if c.id.endswith("-large-constant")]
    assert len(cases) == 6 and all("large" in c.flags for c in cases)
    for case in cases:
        assert case.weights.size == 2049
        if case.profile != "caffe":
            value = case.weights.dtype.type(0.3)
            assert case.stats.details["std"].tolist() == [0.0]
            assert (case.codes == 1).all() and (case.output == value).all(), case.id


def test_two_element_tensors_separate_n_from_n_minus_one(suite):
    cases = [c for c in by_flag(suite, "two-element") if c.scheme == "ul2q"
             and "constant" not in c.flags]
    assert len(cases) == 12
    for case in cases:
        assert case.stats.details["mean"].tolist() == [1.0]
        assert case.stats.details["std"].tolist() == [0.75]  # |1.75 − 0.25|/2, not /√2
        if case.profile == "exact":
            assert case.stats.alpha.tolist() == [optimal_lambda(case.bits) * 0.75]
    schemes = {c.scheme for c in by_flag(suite, "two-element")}
    one = {c.scheme for c in by_flag(suite, "one-element")}
    assert schemes == one == {"ul2q", "binary", "ternary", "fixed_point", "clip"}


# --------------------------------------------------------------------------- both backends


def test_every_case_passes_with_the_reference_backend(suite_dir, monkeypatch, capsys):
    monkeypatch.setattr(_backend, "fast", None)
    assert kernels.select("auto") is kernels.reference
    assert main(["check", str(suite_dir), "--self", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == "457 passed, 0 failed"


@pytest.mark.skipif(not kernels.HAVE_FAST, reason="the compiled extension is not built")
def test_every_case_passes_with_the_compiled_kernels(suite_dir, capsys):
    assert kernels.select("auto") is not kernels.reference
    assert main(["check", str(suite_dir), "--self", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == "457 passed, 0 failed"


# --------------------------------------------------------------------------- data files


def write_npy_header(path: Path, shape: tuple[int, ...], dtype: str, size: int) -> None:
    """A .npy header for `dtype` `shape`, then a sparse file of `size` bytes in all."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    os.truncate(path, size)


CHECK_AND_MEASURE = """
import resource, subprocess, sys
result = subprocess.run([sys.executable, "-m", "ul2q_ref", "check", sys.argv[1], "--self"],
                        capture_output=True, text=True, timeout=120)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(result.returncode, peak, result.stderr.strip().replace(chr(10), " | "), sep="\\n")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB and sparse files "
                    "are cheap on Linux only")
@pytest.mark.parametrize("header_shape", [(2048,), (768 << 18,)])
def test_an_oversized_data_file_is_refused_before_it_is_read(tmp_path, header_shape):
    """768 MiB where the case declares 2048 float32 values: refused unread, in small memory.

    The file is sparse (no disk used); reading or hashing it would take ≥ 768 MiB."""
    case = next(c for c in vectors.generate_cases() if c.id == "ul2q-exact-k8-float32-large")
    vectors.write_suite(tmp_path, [case])
    victim = tmp_path / "data" / f"{case.id}.input.npy"
    write_npy_header(victim, header_shape, "float32", 768 << 20)
    result = subprocess.run([sys.executable, "-c", CHECK_AND_MEASURE, str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=180,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    status, peak_kib, err = result.stdout.splitlines()
    assert status == "2", err
    assert f"{case.id}.input.npy" in err and len(err.split(" | ")) == 1
    assert ("refused unread" in err) if header_shape == (2048,) else ("holds float32" in err)
    assert int(peak_kib) < 300 << 10, f"peak {int(peak_kib) >> 10} MiB"


def test_a_data_file_of_another_shape_or_dtype_is_refused(tmp_path):
    case = next(c for c in vectors.generate_cases() if c.id == "ul2q-exact-k8-float32-large")
    vectors.write_suite(tmp_path, [case])
    victim = tmp_path / "data" / f"{case.id}.output.npy"
    np.save(victim, case.output.astype(np.float64))  # same count, other dtype
    with pytest.raises(vectors.SuiteError, match="holds float64 .2048., the case declares "
                       "float32 .2048."):
        vectors.load_suite(tmp_path)


# --------------------------------------------------------------------------- the validator


def test_without_jsonschema_check_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['jsonschema'] = None\n"
            "from ul2q_ref.cli import main\n"
            f"sys.exit(main(['check', {str(V1_FIXTURE)!r}, '--self']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and result.stdout == ""
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("ul2q-ref check: error:") and "pip install 'ul2q-ref[check]'" in err
