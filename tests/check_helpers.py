"""Fixtures shared by the checker's test modules (tests/test_check_*.py).

A module binds them to module-level names (``suite_dir, suite = check_helpers.suite_dir,
check_helpers.suite``: an imported name shadowed by a test's argument would trip ruff's F811);
pytest then runs each once per module that binds it (scope="module").
"""

from __future__ import annotations

import pytest

from ul2q_ref.crosscheck import vectors


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory):
    """A directory holding the default vector suite, written once per module."""
    directory = tmp_path_factory.mktemp("vectors")
    vectors.write_suite(directory)
    return directory


@pytest.fixture(scope="module")
def suite(suite_dir):
    """The suite in `suite_dir`, loaded."""
    return vectors.load_suite(suite_dir)
