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

import contextlib
import fnmatch
import json
import math
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import steps
from .encoding import describe, from_hex, shift_ulps, ulp_distance
from .vectors import RESULTS_FORMAT, RESULTS_SCHEMA_VERSION, Case, Suite, request_for

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


MAX_OUTPUT_BYTES = 256 << 20
"""The most a command may write to stdout (all cases of a batch) or stderr before it is killed."""

MAX_RESULTS_BYTES = 1 << 30
"""The largest results file :func:`load_results` reads."""

DEFAULT_DEADLINE = 3600.0
"""The default overall deadline of ``--command`` in seconds, besides the per-case timeout."""

_POLL = 0.05


def parse_json(text: str) -> Any:
    """``json.loads`` whose every failure is a ValueError with one line.

    Catches what ``json.loads`` raises besides JSONDecodeError on hostile text: a
    RecursionError on very deep nesting, a ValueError on integers of more than 4300 digits.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error})") from None
    except ValueError as error:  # e.g. "Exceeds the limit (4300 digits) for integer string"
        raise ValueError(f"not acceptable JSON ({str(error).splitlines()[0]})") from None


def load_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a results file into {case id: result}."""
    file = Path(path)
    try:
        if not file.is_file():
            raise CheckError(f"{path}: no such file" if not file.exists()
                             else f"{path}: not a regular file")
        if file.stat().st_size > MAX_RESULTS_BYTES:
            raise CheckError(f"{path}: larger than {MAX_RESULTS_BYTES} bytes")
        document = parse_json(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckError(f"{path}: not a readable JSON file ({error})") from None
    if isinstance(document, dict):
        if document.get("format", RESULTS_FORMAT) != RESULTS_FORMAT:
            raise CheckError(f"{path}: format is {document.get('format')!r}, "
                             f"expected {RESULTS_FORMAT!r}")
        version = document.get("schema_version", RESULTS_SCHEMA_VERSION)
        if version != RESULTS_SCHEMA_VERSION:
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
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise CheckError(f"--command: cannot split {command!r} ({error})") from None
    if not argv:
        raise CheckError("--command is empty")
    return argv


def _check_seconds(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise CheckError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


@dataclass
class _Finished:
    returncode: int | None
    stdout: bytes
    stderr_tail: str
    problem: str | None  # "timed out after ...", "wrote more than ..."


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the command's whole process group (it runs in a session of its own)."""
    with contextlib.suppress(OSError):  # the group is already gone
        os.killpg(process.pid, signal.SIGKILL)


def run_bounded(argv: list[str], stdin: Any, timeout: float,
                max_output: int = MAX_OUTPUT_BYTES) -> _Finished:
    """Run `argv` with `stdin` (a file), bounded in time and output.

    The command runs in a new session; when it exits, times out or writes more than
    `max_output` bytes to stdout or stderr, its whole process group is killed (no orphans).
    Output goes to temporary files whose sizes are watched, so memory stays bounded.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err,
                                       start_new_session=True)
        except FileNotFoundError:
            raise CheckError(f"command not found: {argv[0]}") from None
        except OSError as error:
            raise CheckError(f"cannot run {argv[0]}: {error.strerror or error}") from None
        problem = None
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    process.wait(timeout=max(min(_POLL, remaining), 0.0))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() >= deadline:
                    problem = f"timed out after {timeout:g} s"
                    break
                if max(os.fstat(out.fileno()).st_size, os.fstat(err.fileno()).st_size) > \
                        max_output:
                    problem = f"wrote more than {max_output} bytes of output"
                    break
        finally:
            _kill_group(process)
            process.wait()
        size = os.fstat(out.fileno()).st_size
        out.seek(0)
        stdout = out.read(min(size, max_output + 1))
        err.seek(max(os.fstat(err.fileno()).st_size - 4096, 0))
        tail_lines = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if size > max_output and problem is None:
        problem = f"wrote more than {max_output} bytes of output"
    return _Finished(None if problem else process.returncode, stdout, tail_lines[0][:300],
                     problem)


def _decode(stdout: bytes) -> str:
    try:
        return stdout.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"stdout is not UTF-8 ({error.reason} at byte {error.start})") from None


def command_provider(command: str, *, timeout: float = 60.0,
                     deadline: float = DEFAULT_DEADLINE) -> Provider:
    """Run `command` once per case: one request line on stdin, one result on stdout.

    Each case may take `timeout` seconds; all cases together `deadline` seconds (cases left
    when it passes fail as "not run").
    """
    argv = _argv(command)
    timeout = _check_seconds(timeout, "timeout")
    deadline = _check_seconds(deadline, "deadline")

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        results = {}
        stop = time.monotonic() + deadline
        for case in cases:
            remaining = stop - time.monotonic()
            if remaining <= 0:
                results[case.id] = {"id": case.id, "error": f"not run: the overall deadline "
                                                             f"of {deadline:g} s passed"}
                continue
            line = json.dumps(request_for(case), separators=(",", ":")) + "\n"
            results[case.id] = _run_one(argv, line, case.id, min(timeout, remaining))
        return results

    return provide


def _run_one(argv: list[str], line: str, case_id: str, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryFile() as request:
        request.write(line.encode("utf-8"))
        request.seek(0)
        finished = run_bounded(argv, request, timeout)
    if finished.problem is not None:
        return {"id": case_id, "error": finished.problem}
    if finished.returncode != 0:
        return {"id": case_id, "error": f"exit status {finished.returncode}: "
                                        f"{finished.stderr_tail}"}
    try:
        text = _decode(finished.stdout)
        for row in text.splitlines():
            if row.strip():
                record = parse_json(row)
                if not isinstance(record, dict):
                    raise ValueError(f"the result is not a JSON object: {row[:80]!r}")
                return record
    except ValueError as error:
        return {"id": case_id, "error": f"unusable output: {error}"}
    return {"id": case_id, "error": "no output on stdout"}


def batch_provider(command: str, *, timeout: float = 600.0) -> Provider:
    """Run `command` once for all cases: request lines on stdin, result lines (any order).

    Lines that are not JSON objects with a string ``id`` answer no case (those cases fail
    with "no result").
    """
    argv = _argv(command)
    timeout = _check_seconds(timeout, "timeout")

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        with tempfile.TemporaryFile() as requests:
            for case in cases:
                text = json.dumps(request_for(case), separators=(",", ":")) + "\n"
                requests.write(text.encode("utf-8"))
            requests.seek(0)
            finished = run_bounded(argv, requests, timeout)
        if finished.problem is not None:
            raise CheckError(f"{argv[0]} {finished.problem}")
        if finished.returncode != 0:
            raise CheckError(f"{argv[0]} exited with status {finished.returncode}: "
                             f"{finished.stderr_tail}")
        try:
            text = _decode(finished.stdout)
        except ValueError as error:
            raise CheckError(f"{argv[0]}: {error}") from None
        results = {}
        for number, row in enumerate(text.splitlines(), start=1):
            if not row.strip():
                continue
            try:
                record = parse_json(row)
            except ValueError as error:
                raise CheckError(f"output line {number}: {error}") from None
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
    if not isinstance(result, dict):
        return _fail(outcome, f"malformed result: not a JSON object ({type(result).__name__})")
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
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as error:
        _fail(outcome, f"malformed result: {type(error).__name__}: {str(error)[:200]}")
    return outcome


class _Malformed(ValueError):
    pass


_HEX = re.compile(r"[0-9a-fA-F]+", re.ASCII)
_CODE_LIMIT = 2**62


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
    for index, text in enumerate(patterns):
        if not isinstance(text, str) or not _HEX.fullmatch(text):
            raise _Malformed(f"{what}: element {index}: {str(text)[:40]!r} is not an ASCII "
                             "hexadecimal bit pattern")
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
            if not -_CODE_LIMIT <= code <= _CODE_LIMIT:
                raise _Malformed(f"{what}: {str(code)[:40]} is far outside any code range")
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
