"""The built-in validator of vectors.json agrees with the jsonschema package (the oracle)."""

from __future__ import annotations

import copy
import json

import pytest

from ul2q_ref.crosscheck import schema
from ul2q_ref.crosscheck.vectors import generate_cases, write_suite

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    directory = tmp_path_factory.mktemp("v")
    cases = generate_cases()
    write_suite(directory, cases[:20] + [c for c in cases if "large" in c.flags][:2])
    return json.loads((directory / "vectors.json").read_text())


def edits():
    yield "valid", lambda d: None
    yield "negative shape", lambda d: d["cases"][0].__setitem__("shape", [-1])
    yield "float shape", lambda d: d["cases"][0].__setitem__("shape", [2.5])
    yield "bits 17", lambda d: d["cases"][0].__setitem__("bits", 17)
    yield "bool bits", lambda d: d["cases"][0].__setitem__("bits", True)
    yield "unknown scheme", lambda d: d["cases"][0].__setitem__("scheme", "magic")
    yield "extra field", lambda d: d["cases"][0].__setitem__("extra", 1)
    yield "missing id", lambda d: d["cases"][0].pop("id")
    yield "bad hex", lambda d: d["cases"][0]["input"].__setitem__("hex", ["zz"])
    yield "upper-case hex", lambda d: d["cases"][0]["input"].__setitem__("hex", ["3F800000"])
    yield "duplicate flag", lambda d: d["cases"][0].__setitem__("flags", ["tie", "tie"])
    yield "unknown flag", lambda d: d["cases"][0].__setitem__("flags", ["bogus"])
    yield "profile for binary", lambda d: next(
        c for c in d["cases"] if c["scheme"] == "ul2q").__setitem__("profile", None)
    yield "codes strings", lambda d: d["cases"][0]["encode"].__setitem__("codes", ["1"])
    yield "npy path escape", lambda d: next(
        c for c in d["cases"] if isinstance(c["input"], dict) and "npy" in c["input"]
    )["input"].__setitem__("npy", "../etc/passwd.npy")
    yield "lambdas short", lambda d: d["lambdas"]["exact"].pop()
    yield "schema version", lambda d: d.__setitem__("schema_version", 2)
    yield "not an object", lambda d: d["cases"].__setitem__(0, 42)


@pytest.mark.parametrize("name, edit", list(edits()), ids=[name for name, _ in edits()])
def test_verdicts_match_jsonschema(document, name, edit):
    tampered = copy.deepcopy(document)
    edit(tampered)
    ours = list(schema.errors(tampered))
    theirs = list(jsonschema.Draft202012Validator(schema.vectors_schema()).iter_errors(tampered))
    assert bool(ours) == bool(theirs), (ours[:3], [e.message for e in theirs[:3]])
    assert bool(ours) == (name != "valid")
    if ours:
        with pytest.raises(schema.SchemaError):
            schema.validate(tampered)
