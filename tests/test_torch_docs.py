"""docs/torch.md stays true: its example runs, README links it."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


def test_the_twenty_line_example_runs():
    text = (ROOT / "docs" / "torch.md").read_text(encoding="utf-8")
    example = text.split("<!-- torch-docs-example -->")[1].split("```python")[1].split("```")[0]
    assert len(example.strip().splitlines()) <= 21
    namespace: dict = {}
    exec(compile(example, "docs/torch.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["bits"] == {"0": 2, "2": 8}
    assert namespace["accuracy"] > 0.9
    assert not torch.nn.utils.parametrize.is_parametrized(namespace["model"][0])


def test_readme_links_the_torch_guide():
    assert "docs/torch.md" in (ROOT / "README.md").read_text(encoding="utf-8")
