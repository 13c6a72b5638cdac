"""The checker's one exception type, shared by its parser, supervisor and providers."""

from __future__ import annotations


class CheckError(Exception):
    """A problem with the check itself (bad results file, command not found), not a case."""


__all__ = ["CheckError"]
