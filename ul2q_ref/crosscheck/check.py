r"""The checker: compare another implementation's results with the conformance vectors.

This module is the orchestration: choosing cases (:func:`select_cases`), getting results
from a *provider* — in process (:func:`function_provider`, :func:`self_provider`), from a
file (:func:`results_provider`) or from a command (:func:`command_provider`,
:func:`batch_provider`) — and checking them (:func:`check_suite`). The work is done by

* :mod:`.compare`: one case's result against the expected one (:class:`Options`,
  :func:`check_case`, :class:`Report`), with failures explained by :mod:`.explain`;
* :mod:`.supervise`: running a command bounded in time and output, and killing every
  process it started (:func:`run_bounded`);
* :mod:`.results`: reading results files and output lines with bounded memory.

Every public name of those modules that the checker's users need is importable from here.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

from .compare import (
    FAIL,
    NOT_ANSWERABLE,
    PASS,
    Options,
    Outcome,
    Report,
    check_case,
)
from .errors import CheckError
from .results import (
    MAX_LINE_BYTES,
    MAX_RESULTS_BYTES,
    NoResult,
    load_results,
    no_result,
    parse_json,
    parse_record,
    read_lines,
)
from .supervise import MAX_OUTPUT_BYTES, check_seconds, exit_text, run_bounded
from .vectors import Case, Suite, request_for

Provider = Callable[[list[Case]], dict[str, dict[str, Any]]]
"""Something that answers a list of cases with a result per case id."""

DEFAULT_DEADLINE = 3600.0
"""The default overall deadline of ``--command`` in seconds, besides the per-case timeout."""

GIVE_UP_AFTER = 3
"""``--command`` (one run per case) stops after this many consecutive timeouts."""


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
    :func:`ul2q_ref.crosscheck.adapt` makes `solve` from a plain quantiser.
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


def results_provider(path: str) -> Provider:
    """Answer from a results file (the format of docs/crosscheck.md, "Results")."""
    results = load_results(path)

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        return results

    return provide


def _argv(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise CheckError(f"--command: cannot split {command!r} ({error})") from None
    if not argv:
        raise CheckError("--command is empty")
    return argv


def _request_line(case: Case) -> bytes:
    return (json.dumps(request_for(case), separators=(",", ":")) + "\n").encode("utf-8")


def command_provider(command: str, *, timeout: float = 60.0,
                     deadline: float = DEFAULT_DEADLINE, give_up_after: int = GIVE_UP_AFTER,
                     max_line: int = MAX_LINE_BYTES) -> Provider:
    """Run `command` once per case: one request line on stdin, one result on stdout.

    Each case may take `timeout` seconds; all cases together `deadline` seconds. After
    `give_up_after` consecutive timeouts, or once the deadline passes, the cases left fail
    as "not run". A result line longer than `max_line` bytes fails its case unparsed.
    """
    argv = _argv(command)
    timeout = check_seconds(timeout, "timeout")
    deadline = check_seconds(deadline, "deadline")
    if give_up_after < 1:
        raise CheckError(f"give_up_after must be at least 1, got {give_up_after}")

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        stop = time.monotonic() + deadline
        timeouts = 0
        for case in cases:
            remaining = stop - time.monotonic()
            if timeouts >= give_up_after:
                results[case.id] = no_result(case.id, f"not run: the command timed out on "
                                                      f"{give_up_after} consecutive cases")
                continue
            if remaining <= 0:
                results[case.id] = no_result(case.id, f"not run: the overall deadline of "
                                                      f"{deadline:g} s passed")
                continue
            result = _run_one(argv, _request_line(case), case.id, min(timeout, remaining),
                              max_line)
            results[case.id] = result
            timed_out = isinstance(result, NoResult) and result["error"].startswith("timed out")
            timeouts = timeouts + 1 if timed_out else 0
        return results

    return provide


def _run_one(argv: list[str], line: bytes, case_id: str, timeout: float,
             max_line: int) -> dict[str, Any]:
    """The result of one run of the command: its first output line that is a JSON object.

    Lines before it that are not JSON objects (a library's log line on stdout) are skipped.
    """
    with tempfile.TemporaryFile() as request:
        request.write(line)
        request.seek(0)
        with run_bounded(argv, request, timeout) as finished:
            if finished.problem is not None:
                return no_result(case_id, finished.problem)
            if finished.returncode != 0:
                return no_result(case_id, exit_text(finished.returncode,
                                                    finished.stderr_tail))
            skipped = None
            for row in read_lines(finished.stdout, max_line):
                if row.text is None:
                    return no_result(case_id, f"unusable output: {row.problem}")
                try:
                    record = parse_record(row)
                except ValueError as error:
                    skipped = skipped or f"line {row.number}: {error}"
                    continue
                named = record.get("id")
                if isinstance(named, str) and named != case_id:
                    return no_result(case_id, f"the result names case {named[:200]!r}, not "
                                              "this one")
                return record
    return no_result(case_id, "no JSON object on stdout" + (f" ({skipped})" if skipped else ""))


class Answers(dict):  # type: ignore[type-arg]
    """A provider's {case id: result}, with notes about the run for the report."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []


def batch_provider(command: str, *, timeout: float = 600.0,
                   max_line: int = MAX_LINE_BYTES) -> Provider:
    """Run `command` once for all cases: request lines on stdin, result lines (any order).

    Lines that are not JSON objects with a string ``id`` answer no case (those cases fail
    with "no result"; the report counts the lines and quotes the first). A line longer than
    `max_line` bytes fails the case its first bytes name (``{"id": "…"``), unparsed. When
    the command times out or exits with an error, the results it wrote are checked and the
    cases it did not answer fail with the reason; CheckError only when it answered none.
    """
    argv = _argv(command)
    timeout = check_seconds(timeout, "timeout")

    def provide(cases: list[Case]) -> dict[str, dict[str, Any]]:
        with tempfile.TemporaryFile() as requests:
            for case in cases:
                requests.write(_request_line(case))
            requests.seek(0)
            with run_bounded(argv, requests, timeout) as finished:
                results = _batch_results(finished.stdout, max_line)
                if finished.problem is not None:
                    failure = f"{argv[0]} {finished.problem}"
                elif finished.returncode != 0:
                    failure = f"{argv[0]} ended with " + exit_text(finished.returncode,
                                                                     finished.stderr_tail)
                else:
                    if not set(results) & {case.id for case in cases}:
                        results.notes.append(f"note: {argv[0]} answered none of the "
                                             f"{len(cases)} cases")
                    return results
        if not set(results) & {case.id for case in cases}:
            raise CheckError(failure)
        for case in cases:
            if case.id not in results:
                results[case.id] = no_result(case.id, f"{failure} (before answering this "
                                                      "case)")
        results.notes.append(f"note: {failure}; the results it wrote before are checked")
        return results

    return provide


def _batch_results(stream: Any, max_line: int) -> Answers:
    results = Answers()
    ignored: list[str] = []
    for row in read_lines(stream, max_line):
        if row.text is None:
            if row.case_id is None:
                ignored.append(f"line {row.number}: {row.problem}")
            else:
                results[row.case_id] = no_result(row.case_id, row.problem or "unreadable")
            continue
        try:
            record = parse_record(row)
        except ValueError as error:
            ignored.append(f"line {row.number}, {row.text[:60]!r}: {error}")
            continue
        if isinstance(record.get("id"), str):
            results[record["id"]] = record
        else:
            ignored.append(f"line {row.number}: no string \"id\"")
    if ignored:
        results.notes.append(f"note: {len(ignored)} output line(s) are not results and "
                             f"were ignored (first: {ignored[0][:200]})")
    return results


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
    report.notes.extend(getattr(results, "notes", []))
    stray = sorted(set(results) - known)
    if stray and len(results) > len(known):
        report.notes.append(f"note: {len(stray)} result(s) name no selected case "
                            f"(first: {stray[0]})")
    return report


__all__ = [
    "DEFAULT_DEADLINE",
    "FAIL",
    "GIVE_UP_AFTER",
    "MAX_LINE_BYTES",
    "MAX_OUTPUT_BYTES",
    "MAX_RESULTS_BYTES",
    "NOT_ANSWERABLE",
    "PASS",
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
    "parse_json",
    "results_provider",
    "run_bounded",
    "select_cases",
    "self_provider",
]
