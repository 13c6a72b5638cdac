"""The code base stays ruff-clean.

ruff is found the way README's test command installs it: as the ``ruff`` module of the
Python running the tests (``python -m ruff``) or as the ``ruff`` program beside that Python,
so the test runs under ``.venv/bin/python -m pytest`` without an activated environment.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff_command() -> list[str] | None:
    """How to run ruff for this interpreter, or None if it is not installed."""
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    beside = Path(sys.executable).with_name("ruff")
    if beside.is_file():
        return [str(beside)]
    on_path = shutil.which("ruff")
    return [on_path] if on_path else None


def test_ruff_is_found_beside_the_interpreter_when_installed_there():
    if importlib.util.find_spec("ruff") is None and \
            not Path(sys.executable).with_name("ruff").is_file():
        pytest.skip("ruff is not installed for this Python (pip install -e '.[test]')")
    assert ruff_command() is not None


def test_ruff_is_clean():
    command = ruff_command()
    if command is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")
    result = subprocess.run([*command, "check", "--no-cache", str(ROOT)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
