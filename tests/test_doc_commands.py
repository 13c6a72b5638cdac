"""Every ``sh`` command block of README.md and docs/*.md runs as written in a fresh clone.

The test clones the repository into a temporary directory (``git clone`` of HEAD, then the
working tree's modified and untracked files copied over, so that uncommitted edits are
checked too) and runs each block there with ``bash -e``, with ``PATH`` reduced to the
system's directories: a command that only works with an activated virtual environment (a
bare ``ul2q-ref``) fails here as it would for a newcomer.

Three shortcuts keep the whole file under a few minutes of CPU; each is visible in the
code below:

1. **The virtual environment.** Creating ``.venv`` and installing the package with torch
   takes minutes and a package index, so the clone's ``.venv/bin/`` holds small scripts
   instead: ``python`` runs this test's interpreter with the clone first on ``PYTHONPATH``,
   ``ul2q-ref`` runs ``python -m ul2q_ref``, and ``pip`` accepts only ``pip install`` of the
   clone itself (``-e '.[extra,...]'``, ``.``) and of pinned packages: it checks that every
   named extra exists in the clone's setup.py and that everything it would bring is
   installed in this interpreter (or ends the block with a skip that names what is
   missing). ``python3 -m venv .venv`` is replaced by ``true``. The compiled kernels are
   copied into the clone rather than built (they give the NumPy reference's bits anyway).
2. **Quick variants** (:data:`QUICK`): training commands train their epochs on a few
   hundred images, ``reproduce`` three SGD iterations per training and one seed, and
   ``../shared/data/mnist`` (the full MNIST beside a clone, in this project) points at
   ``$UL2Q_MNIST_DIR`` or the shared copy; blocks that need it are skipped, saying so,
   when it is absent.
3. **Markers.** An HTML comment on the line before a block says how the test treats it:
   ``<!-- doc-test: skip: REASON -->`` (not run: it needs the network, another
   implementation, minutes of benchmarking, or it is the test suite itself),
   ``<!-- doc-test: slow -->`` (run with ``@pytest.mark.slow``),
   ``<!-- doc-test: needs model.pt -->`` (the test first writes a small PyTorch state dict
   ``model.pt`` with layers conv1, conv2 and fc, standing for the reader's own model).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/*.md")
FENCE = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*doc-test:\s*(.*?)\s*-->")
SKIPPED = 97
"""Exit status with which the fake ``pip`` says that this interpreter lacks a package."""
BLOCK_TIMEOUT = 600


def _mnist_dir() -> Path | None:
    for candidate in (os.environ.get("UL2Q_MNIST_DIR"), ROOT.parent / "shared/data/mnist"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


QUICK: list[tuple[str, str]] = [
    (r"\bpython3 -m venv \.venv\b", "true"),
    (r"(ul2q-ref train\b[^\n]*?--epochs \d+)", r"\1 --train-limit 300 --test-limit 200"),
    (r"(ul2q-ref reproduce\b[^\n]*?)--iterations \d+", r"\1--iterations 3"),
    (r"(ul2q-ref reproduce\b[^\n]*?)--epochs \d+", r"\1--iterations 3"),
    (r"(ul2q-ref reproduce\b[^\n]*?)--seeds \d+", r"\1--seeds 1"),
]
"""(pattern, replacement) applied to every block, after joining continued lines."""


@dataclass(frozen=True)
class Block:
    """One command block: where it is, its text and its marker (None without one)."""

    document: str
    line: int
    text: str
    marker: str | None

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"


def command_blocks() -> list[Block]:
    """Every ``sh``/``bash``/``shell`` block of the documents, with its marker."""
    blocks = []
    for pattern in DOCUMENTS:
        for path in sorted(ROOT.glob(pattern)):
            text = path.read_text(encoding="utf-8")
            for match in FENCE.finditer(text):
                before = [line for line in text[:match.start()].splitlines() if line.strip()]
                found = MARKER.fullmatch(before[-1].strip()) if before else None
                blocks.append(Block(str(path.relative_to(ROOT)),
                                    text.count("\n", 0, match.start()) + 1, match.group(1),
                                    found.group(1) if found else None))
    return blocks


def quick_variant(text: str, mnist: Path | None) -> str:
    """`text` with continued lines joined and the :data:`QUICK` substitutions applied."""
    text = text.replace("\\\n", " ")
    for pattern, replacement in QUICK:
        text = re.sub(pattern, replacement, text)
    lines = []
    for line in text.splitlines():
        if re.search(r"ul2q-ref reproduce\b", line) and "--iterations" not in line and \
                "--help" not in line:
            command, hash_, comment = line.partition(" #")
            line = f"{command.rstrip()} --iterations 3" + (f" #{comment}" if hash_ else "")
        lines.append(line)
    text = "\n".join(lines) + "\n"
    if mnist is not None:
        text = text.replace("../shared/data/mnist", str(mnist))
    return text


BLOCKS = command_blocks()


def _param(block: Block):
    marks = [pytest.mark.slow] if block.marker == "slow" else []
    return pytest.param(block, id=block.name, marks=marks)


RUNNABLE = [_param(block) for block in BLOCKS
            if not (block.marker or "").startswith("skip")]


# --------------------------------------------------------------------------- the clone


FAKE_PIP = r'''
import ast, importlib.metadata, re, sys
from pathlib import Path

def extras(setup_py):
    tree = ast.parse(Path(setup_py).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            return ast.literal_eval(node.value)
    return {}

def installed(requirement):
    name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True

args = sys.argv[1:]
if not args or args[0] != "install":
    sys.exit(f"doc-test pip: only 'pip install' is supported here, got {args}")
declared, wanted = extras(Path(__file__).resolve().parents[2] / "setup.py"), []
for word in args[1:]:
    if word in ("-q", "--quiet", "-e", "--editable", "-U", "--upgrade"):
        continue
    project = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", word)
    if project:
        for extra in filter(None, (project.group(1) or "").split(",")):
            if extra not in declared:
                sys.exit(f"doc-test pip: setup.py has no extra {extra!r} "
                         f"(it has {sorted(declared)})")
            wanted += declared[extra]
    elif re.fullmatch(r"[A-Za-z0-9_.-]+(==[\w.+-]+)?", word):
        wanted.append(word)
    else:
        sys.exit(f"doc-test pip: unsupported argument {word!r}")
missing = sorted({w for w in wanted if not installed(w)})
if missing:
    print(f"doc-test pip: this interpreter lacks {', '.join(missing)}", file=sys.stderr)
    sys.exit(SKIPPED)
'''.replace("SKIPPED", str(SKIPPED))


def _write_script(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


def _make_venv(clone: Path) -> None:
    """The clone's ``.venv/bin/`` (shortcut 1 of the module docstring)."""
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    prefix = f'export PYTHONPATH="{clone}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
    _write_script(bin_dir / "python", f"#!/bin/sh\n{prefix}exec {sys.executable} \"$@\"\n")
    _write_script(bin_dir / "ul2q-ref",
                  f"#!/bin/sh\n{prefix}exec {sys.executable} -m ul2q_ref \"$@\"\n")
    _write_script(bin_dir / "pip", f"#!{sys.executable}\n{FAKE_PIP}")


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone of this repository with the working tree's edits (see above)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    target = tmp_path_factory.mktemp("doc-commands") / "ul2q-ref"
    _git("clone", "-q", "--no-hardlinks", str(ROOT), str(target), cwd=ROOT)
    changed = _git("ls-files", "-z", "--modified", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, changed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for built in ROOT.glob("ul2q_ref/**/_fast*.so"):
        shutil.copy2(built, target / built.relative_to(ROOT))
    _make_venv(target)
    return target


def _model_pt(directory: Path) -> None:
    """``model.pt``: a small state dict standing for the reader's own model."""
    torch = pytest.importorskip("torch", reason="model.pt is written with torch")
    generator = torch.Generator().manual_seed(0)
    shapes = {"conv1.weight": (8, 1, 5, 5), "conv1.bias": (8,), "conv2.weight": (32, 8, 5, 5),
              "conv2.bias": (32,), "fc.weight": (10, 64), "fc.bias": (10,)}
    torch.save({name: 0.05 * torch.randn(shape, generator=generator)
                for name, shape in shapes.items()}, directory / "model.pt")


# --------------------------------------------------------------------------- the tests


def test_every_block_is_found_and_every_marker_is_known():
    assert any(block.document == "README.md" for block in BLOCKS)
    for block in BLOCKS:
        marker = block.marker
        if marker is None or marker in ("slow", "needs model.pt"):
            continue
        assert marker.startswith("skip: ") and len(marker) > len("skip: ") + 10, (
            f"{block.name}: unknown marker {marker!r}; use 'skip: REASON', 'slow' or "
            "'needs model.pt'")


@pytest.mark.parametrize("block", RUNNABLE)
def test_the_block_runs_as_written(block: Block, clone: Path, tmp_path: Path):
    mnist = _mnist_dir()
    if "../shared/data/mnist" in block.text and mnist is None:
        pytest.skip("the block reads the full MNIST (../shared/data/mnist); set "
                    "UL2Q_MNIST_DIR to run it")
    work = tmp_path / "clone"
    shutil.copytree(clone, work, symlinks=True)
    _make_venv_again(clone, work)
    if block.marker == "needs model.pt":
        _model_pt(work)
    script = quick_variant(block.text, mnist)
    environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
                   "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "LANG": "C.UTF-8"}
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work,
                            env=environment, capture_output=True, text=True,
                            timeout=BLOCK_TIMEOUT)
    if result.returncode == SKIPPED:
        pytest.skip(result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, (
        f"{block.name} failed (exit {result.returncode}) as run:\n{script}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def _make_venv_again(clone: Path, work: Path) -> None:
    """The copied clone's scripts name the original clone: write them for the copy."""
    shutil.rmtree(work / ".venv")
    _make_venv(work)
