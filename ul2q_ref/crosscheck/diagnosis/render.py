"""The diagnosis as text (one line per aspect, the closest implementation, a summary) and
as the JSON document of ``--json`` (validated by ``diagnosis.schema.json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..._atomic import write_text_atomic
from .model import DEVIATES, MATCHES, Diagnosis, Finding


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " " + ", ".join(f"{key}={item}" for key, item in value.items())
    return f" {value}"


def finding_lines(finding: Finding, *, evidence_of_matches: bool = False) -> list[str]:
    """One line for the verdict, label and fitted value; for a deviation, a second with the
    smallest probe that shows it (input, expected, got); for an aspect that could not be
    determined, a second saying why."""
    label = finding.label if finding.label is not None else "-"
    head = f"{finding.aspect:<21} {finding.verdict:<16} {label}{_value_text(finding.value)}"
    lines = [head]
    evidence = finding.evidence
    if finding.verdict == MATCHES and not evidence_of_matches:
        return lines
    if "probe" in evidence:
        lines.append(f"{'':21} {evidence['probe']}: input {evidence['input']}; expected "
                     f"{evidence['expected']}, got {evidence['got']}"
                     + (f" ({evidence['note']})" if evidence.get("note") else ""))
    elif evidence.get("note"):
        lines.append(f"{'':21} {evidence['note']}")
    return lines


def summary(diagnosis_scheme: str, findings: list[Finding], closest: dict[str, Any]) -> str:
    """A paragraph: what deviates, what matches, what could not be told, the closest."""
    deviates = [f"{f.aspect} ({f.label})" for f in findings if f.verdict == DEVIATES]
    matches = [f.aspect for f in findings if f.verdict == MATCHES]
    unknown = [f.aspect for f in findings if f.verdict not in (DEVIATES, MATCHES)]
    parts = [f"{len(matches)} of {len(findings)} {diagnosis_scheme} aspects match the "
             "definition"]
    if deviates:
        parts.append(f"{len(deviates)} deviate: {', '.join(deviates)}")
    else:
        parts.append("none deviates")
    if unknown:
        parts.append(f"{len(unknown)} could not be determined from what the implementation "
                     f"answers ({', '.join(unknown)})")
    closest_text = (f"The closest known implementation is {closest['name']} "
                    f"({closest['agreement']} of {closest['of']} determinable aspects agree")
    if closest["differs"]:
        closest_text += f"; it differs in {', '.join(closest['differs'])}"
    return "; ".join(parts) + ". " + closest_text + ")."


def render(diagnosis: Diagnosis) -> str:
    """The text report of ``ul2q-ref diagnose``."""
    lines = [f"diagnosis of a {diagnosis.scheme} implementation: {diagnosis.probes} probes in "
             f"{diagnosis.rounds} round(s)"
             + (f", {diagnosis.unanswered} without a result" if diagnosis.unanswered else "")]
    for finding in diagnosis.findings:
        lines.extend(finding_lines(finding))
    closest = diagnosis.closest
    lines.append(f"closest known implementation: {closest['name']} ({closest['agreement']} of "
                 f"{closest['of']} determinable aspects agree)")
    lines.append(diagnosis.summary)
    return "\n".join(lines)


def write_json(diagnosis: Diagnosis, path: str | os.PathLike[str]) -> Path:
    """Write the diagnosis's JSON document to `path` atomically (:func:`write_text`)."""
    return write_text(json.dumps(diagnosis.to_json(), indent=1, ensure_ascii=False) + "\n",
                      path)


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write `text` atomically: a temporary file beside `path`, fsync, then a rename.

    The file gets the mode a newly created file gets under the process umask; an
    interrupted write leaves the old file (or none) and no temporary file.
    """
    target = Path(path)
    write_text_atomic(target, text)
    return target


__all__ = ["finding_lines", "render", "summary", "write_json", "write_text"]
