"""Start-up: nothing heavy is imported before it is needed.

* ``import ul2q_ref`` imports no SciPy (the root finder and the special functions come with
  the first λ_k*), no matplotlib and no PyTorch.
* ``ul2q-ref --help`` imports no sub-command module: the listing comes from the table
  ``ul2q_ref.cli.COMMANDS``, whose summaries must be the modules' own ``help`` strings.
* Running a command imports its module and no other command's.

Each check runs in a fresh interpreter (``sys.modules`` of this one is shared by every test).
How long start-up takes is measured by benchmarks/bench_startup.py, not here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ul2q_ref import cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("scipy", "matplotlib", "torch", "onnx", "onnxruntime", "safetensors")


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running `code`."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=environment, cwd=ROOT, timeout=120, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in HEAVY)


def command_modules(modules: set[str]) -> set[str]:
    return {name for name in COMMAND_MODULES if name in modules}


COMMAND_MODULES = {f"ul2q_ref.cli.{name}": name for name in cli.COMMANDS}


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_summary_is_the_modules_own_help(name):
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(f"ul2q_ref.cli.{name}").add_parser(subparsers)
    [entry] = subparsers._choices_actions  # the listing's entry: (name, help)
    assert (entry.dest, entry.help) == (name, cli.COMMANDS[name])


def test_every_command_module_is_in_the_table():
    modules = {path.stem for path in (ROOT / "ul2q_ref" / "cli").glob("*.py")
               if not path.stem.startswith("_")}
    assert modules == set(cli.COMMANDS)


def test_importing_the_package_imports_nothing_heavy():
    modules = modules_after("import ul2q_ref")
    assert "ul2q_ref.api" in modules  # the probe saw the import
    assert heavy(modules) == []


def test_the_first_optimal_step_brings_the_root_finder():
    modules = modules_after("import ul2q_ref; ul2q_ref.optimal_lambda(3)")
    assert "scipy.optimize" in modules and "scipy.special" in modules


def test_help_imports_no_command_module():
    modules = modules_after(
        "from ul2q_ref.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
        "    pass")
    assert "ul2q_ref.cli" in modules
    assert command_modules(modules) == set()
    assert heavy(modules) == []


def test_a_command_imports_its_own_module_only():
    modules = modules_after("from ul2q_ref.cli import main\nmain(['lambdas', '--bits', '2'])")
    assert command_modules(modules) == {"ul2q_ref.cli.lambdas"}


def test_a_commands_help_is_its_full_parser(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--debug", "lambdas", "--help"])
    assert stop.value.code == 0
    assert "--bits" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "command"), [
    (["lambdas"], "lambdas"),
    (["--debug", "train", "--epochs", "1"], "train"),
    (["--help"], None),
    ([], None),
    (["bogus", "lambdas"], None),  # argparse reports 'bogus'
])
def test_the_command_is_the_first_argument_that_is_not_an_option(argv, command):
    assert cli.command_named(argv) == command
