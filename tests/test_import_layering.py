"""The import layers of the package, read from the source (no import-linter needed).

* The definition — the spec modules — imports nothing of the machinery built on it: no kernel,
  backend, profile, public-layer, CLI, trainer, reproduction, cross-check or torch code.
* The compiled kernels import nothing from the Python package.
* The whole import graph of the package has no cycle, counting imports inside functions too
  (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ul2q_ref"

SPEC = ["ul2q_ref.stats", "ul2q_ref.gaussian", "ul2q_ref.ul2q", "ul2q_ref.codebook",
        "ul2q_ref.schemes", "ul2q_ref._channels", "ul2q_ref._validate"]
"""The definition (docs/spec.md, "Where each formula lives") and its input contract."""

SPEC_MAY_IMPORT = set(SPEC)
"""Inside the package, a spec module may import only other spec modules."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in [*PACKAGE.rglob("*.py"), PACKAGE / "_fast.pyx"]}
"""Every module of the package, the compiled kernels' Cython source included."""


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imported(name: str) -> set[str]:
    """The package modules `name` imports anywhere in its source (top level or not)."""
    if MODULES[name].suffix == ".pyx":  # imports nothing of the package (tested below)
        return set()
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    base = name if is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                origin = ".".join(anchor + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES
                       else origin for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imported(name) for name in MODULES}


@pytest.mark.parametrize("spec", SPEC)
def test_spec_modules_import_only_the_definition(spec):
    assert spec in MODULES
    outside = GRAPH[spec] - SPEC_MAY_IMPORT
    assert not outside, f"{spec} imports {sorted(outside)}"
    text = MODULES[spec].read_text(encoding="utf-8")
    tree = ast.parse(text)
    names = {alias.name.split(".")[0] for node in ast.walk(tree)
             if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names}
    modules = {node.module.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    assert "torch" not in names | modules


def test_the_compiled_kernels_import_nothing_from_the_package():
    source = (PACKAGE / "_fast.pyx").read_text(encoding="utf-8")
    lines = [line.strip() for line in source.splitlines()]
    imports = [line for line in lines if line.startswith(("import ", "from ", "cimport "))]
    assert imports, "no import lines found: the check is reading the wrong file"
    assert not [line for line in imports
                if line.startswith("from .") or "ul2q_ref" in line], imports


def test_the_package_has_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_the_checker_finds_real_dependencies():
    """The graph is not empty by mistake: known edges are there."""
    assert "ul2q_ref.stats" in GRAPH["ul2q_ref.ul2q"]
    assert "ul2q_ref.kernels" in GRAPH["ul2q_ref.api"]
    assert "ul2q_ref.ul2q" in GRAPH["ul2q_ref.kernels.reference"]
    assert "ul2q_ref.crosscheck.encoding" in GRAPH["ul2q_ref.torch.crosscheck"]
