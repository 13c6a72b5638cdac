"""What a diagnosis says: one :class:`Finding` per aspect, gathered in a :class:`Diagnosis`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MATCHES = "matches"
DEVIATES = "deviates"
UNKNOWN = "not determinable"
VERDICTS = (MATCHES, DEVIATES, UNKNOWN)
"""The three verdicts a finding can have."""

FORMAT = "ul2q-ref/diagnosis"
SCHEMA_VERSION = 1


@dataclass
class Finding:
    """The fitted model of one aspect.

    Attributes
    ----------
    aspect : str
        The aspect's name (``"lambda"``, ``"tie_rule"``, …; docs/crosscheck.md, "Diagnosis").
    label : str or None
        What the implementation does (one of the aspect's labels); None when the probes
        could not tell.
    verdict : str
        ``"matches"`` when the label is the definition's, ``"deviates"`` otherwise,
        ``"not determinable"`` when the label is None.
    value : Any
        The fitted value (λ per k, ε, z, …), JSON-serialisable, or None.
    evidence : dict
        The smallest probe that shows the label: its id, input, what the definition gives
        (``expected``) and what the implementation gave (``got``), and a ``note``.
    """

    aspect: str
    label: str | None
    verdict: str
    value: Any = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The finding as the JSON object of ``--json`` (``diagnosis.schema.json``)."""
        return {"aspect": self.aspect, "label": self.label, "verdict": self.verdict,
                "value": self.value, "evidence": self.evidence}


def judged(aspect: str, label: str | None, definition: str, value: Any = None,
           evidence: dict[str, Any] | None = None) -> Finding:
    """A finding whose verdict follows from comparing `label` with the `definition` label."""
    verdict = UNKNOWN if label is None else MATCHES if label == definition else DEVIATES
    return Finding(aspect, label, verdict, value, dict(evidence or {}))


def undetermined(aspect: str, reason: str) -> Finding:
    """A finding for an aspect the probes could not decide, saying why."""
    return Finding(aspect, None, UNKNOWN, None, {"note": reason})


@dataclass
class Diagnosis:
    """Every aspect's finding for one scheme, the closest known implementation, a summary."""

    scheme: str
    findings: list[Finding]
    closest: dict[str, Any]
    summary: str
    probes: int = 0
    rounds: int = 0
    unanswered: int = 0

    @property
    def deviations(self) -> list[Finding]:
        """The findings whose verdict is "deviates"."""
        return [finding for finding in self.findings if finding.verdict == DEVIATES]

    def labels(self) -> dict[str, str | None]:
        """{aspect: label} of every finding (None where not determinable)."""
        return {finding.aspect: finding.label for finding in self.findings}

    def finding(self, aspect: str) -> Finding:
        """The finding of `aspect` (KeyError if there is none)."""
        for finding in self.findings:
            if finding.aspect == aspect:
                return finding
        raise KeyError(aspect)

    def to_json(self) -> dict[str, Any]:
        """The diagnosis as the document ``--json`` writes (``diagnosis.schema.json``)."""
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "scheme": self.scheme,
            "findings": [finding.to_json() for finding in self.findings],
            "closest": self.closest,
            "summary": self.summary,
            "probes": self.probes,
            "rounds": self.rounds,
            "unanswered": self.unanswered,
        }


__all__ = ["DEVIATES", "FORMAT", "MATCHES", "SCHEMA_VERSION", "UNKNOWN", "VERDICTS",
           "Diagnosis", "Finding", "judged", "undetermined"]
