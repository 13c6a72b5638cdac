"""README.md and docs/ stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ul2q_ref as uq

ROOT = Path(__file__).resolve().parents[1]


def test_spec_lambda_table_matches_the_code():
    text = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    table = text.split("<!-- lambda-table -->")[1].split("<!-- /lambda-table -->")[0]
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 16
    for line, row in zip(rows, uq.lambda_table(), strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert int(cells[0]) == row.bits
        assert float(cells[1]) == pytest.approx(row.lam, abs=1e-15)
        assert float(cells[2]) == pytest.approx(row.loss, rel=1e-10)
        if row.paper_lam is None:
            assert cells[3:] == ["–", "–", "–"]
        else:
            assert float(cells[3]) == row.paper_lam and float(cells[4]) == row.paper_loss
            assert float(cells[5]) == pytest.approx(row.paper_excess_percent, abs=5e-5)


def test_readme_api_example_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    example = text.split("<!-- api-example -->")[1].split("```python")[1].split("```")[0]
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 - our own README


def test_readme_commands_are_the_ci_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines()
                if line.startswith((".venv/", "python3 -m venv"))]  # install, test, lint
    assert any("pytest" in command for command in commands)
    for command in commands:
        assert command in readme
