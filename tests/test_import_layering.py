"""The import layers of the package, read from the source (no import-linter needed).

* The definition — the spec modules — imports nothing of the machinery built on it: no kernel
  registry, profile, public-layer, CLI, trainer, reproduction, cross-check or torch code. The
  one exception is ``ul2q_ref._backend`` (what ``backend=`` means), which imports nothing of
  the package but the compiled kernels, so ``Quantized.dequantize`` can honour ``backend=``
  without the public layer rebinding it.
* No module assigns to another module's attributes (no import-time rebinding).
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

SPEC_MAY_IMPORT = set(SPEC) | {"ul2q_ref._backend"}
"""Inside the package, a spec module may import only other spec modules and the backend
names (which import only the compiled kernels: tested below)."""


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


def test_the_backend_names_import_only_the_compiled_kernels():
    assert GRAPH["ul2q_ref._backend"] == {"ul2q_ref._fast"}


def module_attribute_assignments(name: str, source: str, base: str) -> list[str]:
    """``module.attribute = …`` statements in the `source` of module `name` (of the package
    `base`) whose target is a package module bound by one of its imports (``from . import
    codebook`` then ``codebook.x = …``)."""
    tree = ast.parse(source)
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names
                      if alias.name.startswith("ul2q_ref")}
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "")
                                                   .startswith("ul2q_ref")):
            anchor = base.split(".")[: len(base.split(".")) - max(node.level - 1, 0)]
            origin = ".".join(anchor + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            bound |= {alias.asname or alias.name for alias in node.names
                      if f"{origin}.{alias.name}" in MODULES}
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                    and target.value.id in bound:
                found.append(f"{name}:{node.lineno}: {target.value.id}.{target.attr}")
    return found


def test_no_module_rebinds_another_modules_attributes():
    found = [line for name, path in MODULES.items() if path.suffix == ".py"
             for line in module_attribute_assignments(
                 name, path.read_text(encoding="utf-8"),
                 name if is_package(name) else name.rpartition(".")[0])]
    assert not found, found


def test_the_rebinding_check_finds_a_rebinding():
    """The check above is not vacuous: the assignment api.py used to make is found."""
    source = ("from . import codebook\nimport ul2q_ref.kernels as k\nfrom .codebook import x\n"
              "codebook.public_dequantize = print\nk.fast: object = None\nx.y = 1\n")
    assert module_attribute_assignments("ul2q_ref.api", source, "ul2q_ref") == [
        "ul2q_ref.api:4: codebook.public_dequantize", "ul2q_ref.api:5: k.fast"]


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
