"""``ul2q-ref diagnose``: providers, exit status, the JSON document and its schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from diagnose_zoo import make_solve

from ul2q_ref.cli import main
from ul2q_ref.crosscheck.diagnosis import SCHEMA_PATH, diagnose, first_round_requests
from ul2q_ref.crosscheck.reference_impl import solve as reference_solve
from ul2q_ref.crosscheck.vectors import RESULTS_FORMAT

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
ASPECT_LINES = 12


def _verdict_lines(text: str) -> list[str]:
    verdicts = ("matches", "deviates", "not determinable")
    return [line for line in text.splitlines()
            if not line.startswith(" ") and any(f" {v} " in line for v in verdicts)]


def test_self_prints_one_line_per_aspect_and_writes_valid_json(tmp_path, capsys) -> None:
    out = tmp_path / "diagnosis.json"
    assert main(["diagnose", "--self", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert len(_verdict_lines(captured.out)) == ASPECT_LINES
    assert "closest known implementation: exact (12 of 12" in captured.out
    assert len(captured.err.strip().splitlines()) <= 3  # progress, not a flood
    document = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(document, SCHEMA)
    assert document["format"] == "ul2q-ref/diagnosis" and document["schema_version"] == 1
    assert document["closest"]["name"] == "exact"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diagnosis.json"]  # no temp file


def test_the_worked_example_is_diagnosed_through_a_batch_command(tmp_path) -> None:
    """examples/wrong_ul2q.py divides by n − 1 and rounds half to even; its NumPy σ of
    values near 1e-310 also underflows to 0 (the squared deviations are below the smallest
    subnormal), which the definition avoids by rescaling: three deviations."""
    out = tmp_path / "wrong.json"
    command = f"{sys.executable} examples/wrong_ul2q.py"
    result = subprocess.run(
        [sys.executable, "-m", "ul2q_ref", "diagnose", "--command", command, "--batch",
         "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 1, result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(document, SCHEMA)
    deviating = {f["aspect"]: f["label"] for f in document["findings"]
                 if f["verdict"] == "deviates"}
    assert deviating == {"std_estimator": "unbiased", "tie_rule": "half-even",
                         "subnormals": "other"}
    assert document["closest"]["name"] == "pytorch-naive"
    assert len(_verdict_lines(result.stdout)) == ASPECT_LINES
    docs = (ROOT / "docs" / "crosscheck.md").read_text(encoding="utf-8")
    pasted = docs.split("prints (exit status 1; progress on standard error)\n\n```text\n")[1]
    assert result.stdout == pasted.split("```")[0]  # the worked example's output is true


@pytest.mark.parametrize("scheme", ["binary", "ternary", "fixed_point", "clip"])
def test_scheme_diagnoses_follow_the_schema(scheme: str) -> None:
    jsonschema.validate(diagnose(reference_solve, scheme=scheme).to_json(), SCHEMA)


def test_not_determinable_findings_follow_the_schema() -> None:
    document = diagnose(make_solve({}, output_only=True, pipeline_only=True)).to_json()
    jsonschema.validate(document, SCHEMA)
    assert any(f["label"] is None and f["verdict"] == "not determinable"
               for f in document["findings"])


def test_requests_answered_offline_come_back_as_results(tmp_path, capsys) -> None:
    requests = tmp_path / "requests.jsonl"
    assert main(["diagnose", "--requests", str(requests)]) == 0
    lines = requests.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(first_round_requests("ul2q"))
    results = [reference_solve(json.loads(line)) for line in lines]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format": RESULTS_FORMAT, "schema_version": 1,
                                "results": results}), encoding="utf-8")
    capsys.readouterr()
    assert main(["diagnose", "--results", str(path)]) == 0
    assert "12 of 12 ul2q aspects match the definition" in capsys.readouterr().out


def test_a_per_request_command(capsys) -> None:
    command = f"{sys.executable} -m ul2q_ref.crosscheck.reference_impl"
    assert main(["diagnose", "--command", command, "--scheme", "clip", "--timeout", "120"]) == 0
    assert "3 of 3 clip aspects match the definition" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["diagnose", "--self", "--batch"], "--batch needs --command"),
    (["diagnose", "--self", "--timeout", "5"], "--timeout needs --command"),
    (["diagnose", "--command", "/no/such/program-x", "--batch"], "program-x"),
    (["diagnose", "--results", "/nonexistent.json"], "no such file"),
    (["diagnose", "--self", "--json", "{existing}"], "--force"),
])
def test_usage_errors_exit_2_with_one_line(argv, message, tmp_path, capsys) -> None:
    existing = tmp_path / "existing.json"
    existing.write_text("{}", encoding="utf-8")
    argv = [arg.replace("{existing}", str(existing)) for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ul2q-ref diagnose: error: ") and message in err[-1]
    assert existing.read_text(encoding="utf-8") == "{}"


def test_a_results_file_for_other_cases_is_said_to_answer_no_probe(tmp_path, capsys) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps([{"id": "ul2q-exact-k2-float32-random", "error": "x"}]),
                    encoding="utf-8")
    assert main(["diagnose", "--results", str(path)]) == 0
    out = capsys.readouterr().out
    assert "77 probes in 1 round(s), 77 without a result" in out
    assert "12 could not be determined" in out and "--requests" in out
