"""The checker as a user meets it: what its lines say when a command misbehaves.

From a hostile review of issue 18 items 2, 3 and 7 (each test states the line that was
wrong before): a failure the checker made (a timeout, a case not run, a crash) is not "the
implementation reported an error"; a failure without a comparison points to no aspect; a
log line on stdout does not abort a batch or fail a case; a batch that crashes part way
keeps the results it wrote.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from ul2q_ref.crosscheck import check, vectors

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
    for chatter, why in (("loading model", "not JSON"),
                         ("[1, 2]", "the result is not a JSON object")):
        report = check.check_suite(cases, check.batch_provider(script(chatter)))
        assert report.summary() == "3 passed, 0 failed"
        assert len(report.notes) == 1
        assert report.notes[0].startswith("note: 1 output line(s) are not results and were "
                                          f"ignored (first: line 1: {why}")


def test_a_batch_that_crashes_part_way_keeps_what_it_answered(cases, script):
    # Before: "ul2q-ref check: error: python exited with status 3", every result lost.
    report = check.check_suite(cases, check.batch_provider(script(answered=1)))
    lines = report.render().splitlines()
    crashed = f"{sys.executable} exited with status 3: pretend crash"
    assert lines[0] == f"note: {crashed}; the results it wrote before are checked"
    assert lines[1] == f"PASS {CASES[0]}"
    assert lines[2:6] == [f"FAIL {CASES[1]}",
                          f"     no result: {crashed} (before answering this case)",
                          f"FAIL {CASES[2]}",
                          f"     no result: {crashed} (before answering this case)"]
    assert lines[-1] == "1 passed, 2 failed"


def test_a_batch_that_answers_nothing_is_still_a_run_level_error(cases, script):
    with pytest.raises(check.CheckError, match="exited with status 3: pretend crash$"):
        check.check_suite(cases, check.batch_provider(script(answered=0)))
