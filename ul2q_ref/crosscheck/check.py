r"""The checker: compare another implementation's results with the conformance vectors.

For every case it compares

* the **statistics step** — α and β (and Δ for ternary), per channel, in ulps of the case's
  ``parameter_dtype``; by default they must be bit-exact, ``stats_ulps`` allows a distance
  (an integer, or ``"stated"`` for each case's own ``tolerance_ulps``);
* the codes and reconstruction ŵ of the **whole pipeline**: if the implementation's α and β
  are bit-exact they must equal the case's expected encode step, otherwise (within the
  statistics tolerance) they must equal the reference's encode step *run with the
  implementation's own α and β*;
* the **encode step** given the case's α and β: codes and ŵ.

Equal means equal bit patterns, except that +0 and −0 are equal and all NaNs are equal.
With ``tolerance_ulps = N`` ŵ may differ by up to N ulps and a code may differ where the input
lies within N ulps of the boundary between the two codes (so the code of some input at most
N ulps away). Codes the case leaves undefined (``null``: the caffe profile's NaN channels)
are not compared.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import steps
from .encoding import describe, from_hex, shift_ulps, ulp_distance
from .vectors import RESULTS_FORMAT, SCHEMA_VERSION, Case, Suite, request_for

Provider = Callable[[list[Case]], dict[str, dict[str, Any]]]
"""Something that answers a list of cases with a result per case id."""


class CheckError(Exception):
    """A problem with the check itself (bad results file, command not found), not a case."""


@dataclass
class Options:
    """How strict the comparison is.

    tolerance_ulps : int
        Allowed ulp distance of ŵ (and code leeway near boundaries); 0 = bit-exact.
    stats_ulps : int, "stated" or None
        Allowed ulp distance of α, β, Δ; None means "the same as tolerance_ulps", "stated"
        each case's own ``tolerance_ulps`` (null there: bit-exact).
    """

    tolerance_ulps: int = 0
    stats_ulps: int | str | None = None

    def stats_allowance(self, case: Case, name: str) -> int:
        """The allowed ulp distance of parameter `name` in `case`."""
        if self.stats_ulps == "stated":
            stated = (case.tolerance or {}).get(name)
            return 0 if stated is None else int(stated)
        if self.stats_ulps is None:
            return self.tolerance_ulps
        return int(self.stats_ulps)


@dataclass
class Outcome:
    """The verdict on one case and the lines explaining it."""

    case_id: str
    passed: bool
    bit_exact: bool
    lines: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Every case's outcome, plus notes about the run."""

    outcomes: list[Outcome]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """How many cases passed."""
        return sum(outcome.passed for outcome in self.outcomes)

    @property
    def failed(self) -> int:
        """How many cases failed."""
        return len(self.outcomes) - self.passed

    def summary(self) -> str:
        """The last line of every report: ``N passed, N failed``."""
        return f"{self.passed} passed, {self.failed} failed"

    def render(self, *, quiet: bool = False) -> str:
        """The report as text: one line per case (failures with details), then the summary."""
        lines: list[str] = list(self.notes)
        for outcome in self.outcomes:
            if outcome.passed:
                if not quiet:
                    exact = "" if outcome.bit_exact else " (within tolerance)"
                    lines.append(f"PASS {outcome.case_id}{exact}")
            else:
                lines.append(f"FAIL {outcome.case_id}")
                lines.extend(f"     {line}" for line in outcome.lines)
        lines.append(self.summary())
        return "\n".join(lines)


# --------------------------------------------------------------------------- selecting cases


def select_cases(
    cases: Iterable[Case],
    *,
    schemes: Iterable[str] = (),
    profiles: Iterable[str] = (),
    patterns: Iterable[str] = (),
    flags: Iterable[str] = (),
) -> list[Case]:
    """The cases matching every given filter (each filter: any of its values)."""
    schemes, profiles, patterns, flags = (list(x) for x in (schemes, profiles, patterns, flags))
    chosen = []
    for case in cases:
        if schemes and case.scheme not in schemes:
            continue
        if profiles and (case.profile or "-") not in profiles:
            continue
        if patterns and not any(fnmatch.fnmatchcase(case.id, p) for p in patterns):
            continue
        if flags and not set(flags) & set(case.flags):
            continue
        chosen.append(case)
    return chosen


# --------------------------------------------------------------------------- providers


def function_provider(solve: Callable[[dict[str, Any]], dict[str, Any]]) -> Provider:
    """Answer every case in process with ``solve(request) -> result`` (a Python implementation).

    An exception raised for a case becomes that case's ``error`` result.
    """

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        results = {}
        for case in cases:
            try:
                results[case.id] = solve(request_for(case))
            except Exception as error:  # noqa: BLE001 - reported per case
                results[case.id] = {"id": case.id, "error": f"{type(error).__name__}: {error}"}
        return results

    return provide


def self_provider(cases: list[Case]) -> dict[str, dict[str, Any]]:
    """Answer every case with this package, in process."""
    from .reference_impl import solve

    return function_provider(solve)(cases)


def results_provider(path: str | os.PathLike[str]) -> Provider:
    """Answer from a results file (the format of docs/crosscheck.md, "Results")."""
    results = load_results(path)

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        return results

    return provide


def load_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a results file into {case id: result}."""
    file = Path(path)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckError(f"{path}: not a readable JSON file ({error})") from None
    if isinstance(document, dict):
        if document.get("format", RESULTS_FORMAT) != RESULTS_FORMAT:
            raise CheckError(f"{path}: format is {document.get('format')!r}, "
                             f"expected {RESULTS_FORMAT!r}")
        version = document.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise CheckError(f"{path}: results schema version {version!r} is not supported")
        records = document.get("results")
    else:
        records = document
    if not isinstance(records, list):
        raise CheckError(f"{path}: expected a list of results (or {{\"results\": [...]}})")
    results: dict[str, dict[str, Any]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise CheckError(f"{path}: result #{index} is not an object with a string \"id\"")
        results[record["id"]] = record
    return results


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if not argv:
        raise CheckError("--command is empty")
    return argv


def command_provider(command: str, *, timeout: float = 60.0) -> Provider:
    """Run `command` once per case: one request line on stdin, one result on stdout."""
    argv = _argv(command)

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        results = {}
        for case in cases:
            line = json.dumps(request_for(case), separators=(",", ":")) + "\n"
            results[case.id] = _run_one(argv, line, case.id, timeout)
        return results

    return provide


def _run_one(argv: list[str], line: str, case_id: str, timeout: float) -> dict[str, Any]:
    try:
        process = subprocess.run(argv, input=line, capture_output=True, text=True,
                                 timeout=timeout, check=False)
    except FileNotFoundError:
        raise CheckError(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        return {"id": case_id, "error": f"timed out after {timeout:g} s"}
    if process.returncode != 0:
        tail = process.stderr.strip().splitlines()[-1:] or [""]
        return {"id": case_id, "error": f"exit status {process.returncode}: {tail[0]}"}
    for text in process.stdout.splitlines():
        if text.strip():
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                return {"id": case_id, "error": f"stdout is not JSON ({error}): {text[:80]!r}"}
    return {"id": case_id, "error": "no output on stdout"}


def batch_provider(command: str, *, timeout: float = 600.0) -> Provider:
    """Run `command` once for all cases: request lines on stdin, result lines (any order)."""
    argv = _argv(command)

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        with tempfile.TemporaryFile("w+", encoding="utf-8") as requests:
            for case in cases:
                requests.write(json.dumps(request_for(case), separators=(",", ":")) + "\n")
            requests.seek(0)
            try:
                process = subprocess.run(argv, stdin=requests, capture_output=True, text=True,
                                         timeout=timeout, check=False)
            except FileNotFoundError:
                raise CheckError(f"command not found: {argv[0]}") from None
            except subprocess.TimeoutExpired:
                raise CheckError(f"{argv[0]} timed out after {timeout:g} s") from None
        if process.returncode != 0:
            tail = process.stderr.strip().splitlines()[-1:] or [""]
            raise CheckError(f"{argv[0]} exited with status {process.returncode}: {tail[0]}")
        results = {}
        for number, text in enumerate(process.stdout.splitlines(), start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise CheckError(f"output line {number} is not JSON ({error})") from None
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                results[record["id"]] = record
        return results

    return provide


# --------------------------------------------------------------------------- checking


def check_suite(
    suite: Suite | list[Case], provider: Provider, options: Options | None = None
) -> Report:
    """Check every case of `suite` against the results `provider` gives."""
    options = options or Options()
    cases = suite.cases if isinstance(suite, Suite) else list(suite)
    results = provider(cases)
    known = {case.id for case in cases}
    report = Report([check_case(case, results.get(case.id), options) for case in cases])
    stray = sorted(set(results) - known)
    if stray and len(results) > len(known):
        report.notes.append(f"note: {len(stray)} result(s) name no selected case "
                            f"(first: {stray[0]})")
    return report


def check_case(case: Case, result: dict[str, Any] | None, options: Options) -> Outcome:
    """The verdict on one case."""
    outcome = Outcome(case.id, True, True)
    if result is None:
        return _fail(outcome, "no result for this case")
    if result.get("error") is not None:
        return _fail(outcome, f"the implementation reported an error: {result['error']}")
    try:
        if case.stats is not None:
            _check_quantize(case, result.get("quantize"), options, outcome)
        encoded = result.get("encode")
        if encoded is not None:
            _check_arrays(case, "encode", encoded, case.codes, case.defined, case.output,
                          (case.encode_alpha, case.encode_beta, case.encode_threshold),
                          options, outcome)
        elif case.stats is None:
            _fail(outcome, "encode: no result (this case checks the encode step only)")
    except _Malformed as error:
        _fail(outcome, f"malformed result: {error}")
    return outcome


class _Malformed(ValueError):
    pass


def _fail(outcome: Outcome, line: str) -> Outcome:
    outcome.passed = False
    outcome.bit_exact = False
    outcome.lines.append(line)
    return outcome


def _floats(record: Any, dtype: str, count: int, what: str) -> np.ndarray:
    patterns = record.get("hex") if isinstance(record, dict) else record
    if not isinstance(patterns, list):
        raise _Malformed(f"{what}: expected {{\"hex\": [...]}}")
    if len(patterns) != count:
        raise _Malformed(f"{what}: expected {count} value(s), got {len(patterns)}")
    try:
        return from_hex(patterns, dtype)
    except ValueError as error:
        raise _Malformed(f"{what}: {error}") from None


def _codes(record: Any, count: int, what: str) -> np.ndarray:
    if not isinstance(record, list) or len(record) != count:
        size = len(record) if isinstance(record, list) else type(record).__name__
        raise _Malformed(f"{what}: expected a list of {count} integers, got {size}")
    values = []
    for code in record:
        if code is None:
            values.append(np.iinfo(np.int64).min)
        elif isinstance(code, int) and not isinstance(code, bool):
            values.append(code)
        else:
            raise _Malformed(f"{what}: {code!r} is not an integer")
    return np.array(values, dtype=np.int64)


def _check_quantize(case: Case, got: Any, options: Options, outcome: Outcome) -> None:
    if not isinstance(got, dict):
        _fail(outcome, "quantize: no result (the statistics step and whole pipeline)")
        return
    stats = case.stats
    assert stats is not None
    dtype = case.parameter_dtype
    channels = stats.alpha.size
    names = ["alpha", "beta"] + (["threshold"] if stats.threshold is not None else [])
    expected = {"alpha": stats.alpha, "beta": stats.beta, "threshold": stats.threshold}
    got_params: dict[str, np.ndarray] = {}
    distances: list[str] = []
    within, exact = True, True
    bad_lines = []
    for name in names:
        if name not in got:
            raise _Malformed(f"quantize.{name} is missing")
        value = _floats(got[name], dtype, channels, f"quantize.{name}")
        got_params[name] = value.astype(np.float64)
        distance = ulp_distance(expected[name], value, dtype)
        allowed = options.stats_allowance(case, name)
        worst = max(distance)
        distances.append(f"{name} {_ulps(worst)}")
        exact = exact and worst == 0
        for channel, ulps in enumerate(distance):
            if ulps > allowed:
                within = False
                label = name if channels == 1 else f"{name}[{channel}]"
                bad_lines.append(
                    f"quantize: {label} expected {describe(expected[name][channel], dtype)} "
                    f"got {describe(value[channel], dtype)}: {_ulps(ulps)} (allowed {allowed})"
                )
                break
    outcome.bit_exact = outcome.bit_exact and exact
    if not within:
        _fail(outcome, f"quantize: statistics off by {', '.join(distances)} (parameter "
                       f"dtype {dtype})")
        outcome.lines.extend(bad_lines)
    if exact or not within:
        reference = (case.codes, case.defined, case.output,
                     (case.encode_alpha, case.encode_beta, case.encode_threshold))
    else:
        params = (got_params["alpha"], got_params["beta"], got_params.get("threshold"))
        codes, defined, output = steps.encode(case.scheme, case.profile, case.weights,
                                              case.bits, case.axis, *params)
        reference = (codes, defined, output, params)
    before = len(outcome.lines)
    _check_arrays(case, "quantize", got, reference[0], reference[1], reference[2],
                  reference[3], options, outcome)
    if within and len(outcome.lines) > before:
        outcome.lines.insert(before, f"quantize: statistics {', '.join(distances)}")


def _check_arrays(
    case: Case,
    label: str,
    got: dict[str, Any],
    codes: np.ndarray,
    defined: np.ndarray,
    output: np.ndarray,
    params: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    options: Options,
    outcome: Outcome,
) -> None:
    if not isinstance(got, dict) or "codes" not in got or "output" not in got:
        raise _Malformed(f"{label}: expected an object with \"codes\" and \"output\"")
    size = case.weights.size
    got_codes = _codes(got["codes"], size, f"{label}.codes")
    got_output = _floats(got["output"], case.dtype, size, f"{label}.output")
    expected_codes = codes.reshape(-1)
    known = defined.reshape(-1)
    code_bad = known & (got_codes != expected_codes)
    tolerance = options.tolerance_ulps
    if tolerance > 0 and code_bad.any():
        low = _codes_at(case, shift_ulps(case.weights, -tolerance), params)
        high = _codes_at(case, shift_ulps(case.weights, tolerance), params)
        allowed = (got_codes >= np.minimum(low, high)) & (got_codes <= np.maximum(low, high))
        code_bad &= ~allowed
    distance = np.array(ulp_distance(output, got_output, case.dtype), dtype=np.float64)
    output_bad = distance > tolerance
    exact = not (known & (got_codes != expected_codes)).any() and not (distance > 0).any()
    outcome.bit_exact = outcome.bit_exact and exact
    if not (code_bad.any() or output_bad.any()):
        return
    first = int(np.flatnonzero(code_bad | output_bad)[0])
    index = np.unravel_index(first, case.weights.shape)
    where = str(tuple(int(i) for i in index)) if case.weights.ndim > 1 else str(int(index[0]))
    got_code = "null" if got_codes[first] == np.iinfo(np.int64).min else int(got_codes[first])
    expected_code = int(expected_codes[first]) if known[first] else "undefined"
    worst = distance.max()
    _fail(outcome, f"{label}: codes differ at {int(code_bad.sum())} of {size}, ŵ at "
                   f"{int(output_bad.sum())} of {size} (largest ŵ difference "
                   f"{_ulps(worst)}, allowed {tolerance})")
    outcome.lines.append(
        f"{label}: first difference at index {where}: input "
        f"{describe(case.weights.reshape(-1)[first], case.dtype)}, code expected "
        f"{expected_code} got {got_code}, ŵ expected "
        f"{describe(output.reshape(-1)[first], case.dtype)} got "
        f"{describe(got_output[first], case.dtype)} ({_ulps(distance[first])})"
    )


def _codes_at(case: Case, weights: np.ndarray, params: tuple[Any, Any, Any]) -> np.ndarray:
    largest = np.finfo(weights.dtype).max
    weights = np.clip(weights, -largest, largest)  # shifting may have reached ±inf
    with np.errstate(all="ignore"):
        codes, _, _ = steps.encode(case.scheme, case.profile, weights, case.bits, case.axis,
                                   *params)
    return codes.reshape(-1)


def _ulps(value: float) -> str:
    if value == float("inf"):
        return "NaN vs number"
    return f"{int(value)} ulp{'s' if value != 1 else ''}"


__all__ = [
    "CheckError",
    "Options",
    "Outcome",
    "Provider",
    "Report",
    "batch_provider",
    "check_case",
    "check_suite",
    "command_provider",
    "function_provider",
    "load_results",
    "results_provider",
    "select_cases",
    "self_provider",
]
