"""vectors.json is validated by the jsonschema package against the shipped schema.

The expected verdict of each tampered document is by construction (the edit breaks one rule
of docs/crosscheck.md §3), and each message must name the JSON path of the edit.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from ul2q_ref.crosscheck import SCHEMA_PATH, schema
from ul2q_ref.crosscheck.vectors import generate_cases, write_suite

V1_FIXTURE = Path(__file__).resolve().parent / "data" / "vectors_v1" / "vectors.json"


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    directory = tmp_path_factory.mktemp("v")
    cases = generate_cases()
    chosen = cases[:20] + [c for c in cases if "large" in c.flags][:2] + cases[-30:]
    write_suite(directory, chosen)
    return json.loads((directory / "vectors.json").read_text())


def test_the_shipped_schema_is_a_draft_2020_12_schema():
    shipped = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert shipped["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(shipped)
    assert schema.vectors_schema() == shipped


def test_version_2_and_version_1_documents_are_valid(document):
    assert document["schema_version"] == 2
    schema.validate(document)
    assert list(schema.errors(document)) == []
    old = json.loads(V1_FIXTURE.read_text(encoding="utf-8"))
    assert old["schema_version"] == 1
    schema.validate(old)


def test_version_1_documents_cannot_carry_version_2_flags():
    old = json.loads(V1_FIXTURE.read_text(encoding="utf-8"))
    old["cases"][0]["flags"] = ["random", "pipeline-tie"]
    with pytest.raises(schema.SchemaError, match=r"^\$\.cases\[0\]\.flags\[1\]"):
        schema.validate(old)
    old["schema_version"] = 2
    schema.validate(old)


def first_large(d):
    return next(c for c in d["cases"] if isinstance(c["input"], dict) and "npy" in c["input"])


def first_ul2q(d):
    return next(c for c in d["cases"] if c["scheme"] == "ul2q")


EDITS = [
    ("negative shape", lambda d: d["cases"][0].__setitem__("shape", [-1]),
     "$.cases[0].shape[0]"),
    ("float shape", lambda d: d["cases"][0].__setitem__("shape", [2.5]),
     "$.cases[0].shape[0]"),
    ("bits 17", lambda d: d["cases"][0].__setitem__("bits", 17), "$.cases[0].bits"),
    ("bool bits", lambda d: d["cases"][0].__setitem__("bits", True), "$.cases[0].bits"),
    ("unknown scheme", lambda d: d["cases"][0].__setitem__("scheme", "magic"),
     "$.cases[0].scheme"),
    ("extra field", lambda d: d["cases"][0].__setitem__("extra", 1), "$.cases[0]"),
    ("missing id", lambda d: d["cases"][0].pop("id"), "$.cases[0]"),
    ("bad hex", lambda d: d["cases"][0]["input"].__setitem__("hex", ["zz"]),
     "$.cases[0].input"),
    ("upper-case hex", lambda d: d["cases"][0]["input"].__setitem__("hex", ["3F800000"]),
     "$.cases[0].input"),
    ("duplicate flag", lambda d: d["cases"][0].__setitem__("flags", ["tie", "tie"]),
     "$.cases[0].flags"),
    ("unknown flag", lambda d: d["cases"][0].__setitem__("flags", ["bogus"]),
     "$.cases[0].flags[0]"),
    ("profile missing for ul2q", lambda d: first_ul2q(d).__setitem__("profile", None),
     "$.cases[0].profile"),
    ("codes strings", lambda d: d["cases"][0]["encode"].__setitem__("codes", ["1"]),
     "$.cases[0].encode.codes"),
    ("npy path escape", lambda d: first_large(d)["input"].__setitem__(
        "npy", "../etc/passwd.npy"), "$.cases[20].input"),
    ("lambdas short", lambda d: d["lambdas"]["exact"].pop(), "$.lambdas.exact"),
    ("schema version 3", lambda d: d.__setitem__("schema_version", 3), "$.schema_version"),
    ("not an object", lambda d: d["cases"].__setitem__(0, 42), "$.cases[0]"),
]


@pytest.mark.parametrize("name, edit, path", EDITS, ids=[name for name, _, _ in EDITS])
def test_a_tampered_document_is_one_line_naming_the_path(document, name, edit, path):
    tampered = copy.deepcopy(document)
    edit(tampered)
    with pytest.raises(schema.SchemaError) as caught:
        schema.validate(tampered)
    message = str(caught.value)
    assert message.startswith(path) and len(message.splitlines()) == 1, message
    assert len(message) <= 300
    assert any(line.startswith(path) for line in schema.errors(tampered))


def test_a_long_offending_value_is_cut_to_one_short_line(document):
    tampered = copy.deepcopy(document)
    tampered["cases"][0]["comment"] = {"x": "y\n" * 10_000}
    with pytest.raises(schema.SchemaError) as caught:
        schema.validate(tampered)
    message = str(caught.value)
    assert message.startswith("$.cases[0].comment") and message.endswith("...")
    assert len(message) == 300 and "\n" not in message


# --------------------------------------------------------------------------- results files


@pytest.fixture(scope="module")
def results():
    from ul2q_ref.crosscheck.reference_impl import solve
    from ul2q_ref.crosscheck.vectors import RESULTS_FORMAT, request_for

    cases = generate_cases()
    chosen = cases[:3] + [c for c in cases if c.scheme == "ternary"][:1]
    return {"format": RESULTS_FORMAT, "schema_version": 1,
            "results": [solve(request_for(case)) for case in chosen]}


def test_results_files_follow_their_schema(results):
    shipped = schema.results_schema()
    jsonschema.Draft202012Validator.check_schema(shipped)
    schema.validate_results(results)
    schema.validate_results(results["results"])  # a bare list is accepted too
    schema.validate_results([{"id": "x", "error": "not implemented"}])


RESULT_EDITS = [
    ("string code", lambda d: d["results"][0]["encode"]["codes"].__setitem__(0, "1"),
     "$.results[0].encode.codes[0]"),
    ("bad hex", lambda d: d["results"][1]["quantize"]["alpha"]["hex"].__setitem__(0, "xyz"),
     "$.results[1].quantize.alpha.hex[0]"),
    ("missing id", lambda d: d["results"][2].pop("id"), "$.results[2]"),
    ("no output", lambda d: d["results"][0]["quantize"].pop("output"), "$.results[0].quantize"),
    ("alpha without beta", lambda d: d["results"][0]["quantize"].pop("beta"),
     "$.results[0].quantize"),
    ("version 2", lambda d: d.__setitem__("schema_version", 2), "$.schema_version"),
    ("other format", lambda d: d.__setitem__("format", "x"), "$.format"),
    ("not an object", lambda d: d["results"].__setitem__(0, 42), "$.results[0]"),
]


@pytest.mark.parametrize("name, edit, path", RESULT_EDITS,
                         ids=[name for name, _, _ in RESULT_EDITS])
def test_a_tampered_results_file_names_the_path(results, name, edit, path):
    tampered = copy.deepcopy(results)
    edit(tampered)
    with pytest.raises(schema.SchemaError) as caught:
        schema.validate_results(tampered)
    assert str(caught.value).startswith(path), str(caught.value)
