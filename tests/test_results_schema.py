"""Results files (``ul2q-ref check --results FILE``) are validated against results.schema.json.

Every form docs/crosscheck.md §5 ("Results") and §4 ("Partial results") allows must load and,
where the answer is right, pass its case through the CLI; every document that breaks one rule
of the format (by construction: one edit each) is refused before any case is checked, with
one line naming the file.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ul2q_ref.cli import main
from ul2q_ref.crosscheck import schema
from ul2q_ref.crosscheck.errors import CheckError
from ul2q_ref.crosscheck.reference_impl import solve
from ul2q_ref.crosscheck.results import load_results
from ul2q_ref.crosscheck.vectors import (
    RESULTS_FORMAT,
    generate_cases,
    request_for,
    write_suite,
)

WHOLE, TERNARY, ENCODE_ONLY = ("ul2q-exact-k2-float32-random", "ternary-k2-float32-random",
                               "ul2q-exact-k2-float32-thresholds")


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("vectors")
    chosen = [c for c in generate_cases() if c.id in (WHOLE, TERNARY, ENCODE_ONLY)]
    assert len(chosen) == 3
    assert chosen[[c.id for c in chosen].index(ENCODE_ONLY)].stats is None  # encode-only
    write_suite(directory, chosen)
    return directory


@pytest.fixture(scope="module")
def answers() -> dict[str, dict[str, Any]]:
    """Full answers to the three cases, from this package (format of docs §5)."""
    cases = {c.id: c for c in generate_cases() if c.id in (WHOLE, TERNARY, ENCODE_ONLY)}
    return {case_id: solve(request_for(cases[case_id])) for case_id in (WHOLE, TERNARY,
                                                                        ENCODE_ONLY)}


def _document(answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"format": RESULTS_FORMAT, "schema_version": 1,
            "results": copy.deepcopy(list(answers.values()))}


def _result(document: dict[str, Any], case_id: str) -> dict[str, Any]:
    return next(r for r in document["results"] if r["id"] == case_id)


def _no_codes(d: dict[str, Any]) -> None:
    for result in d["results"]:
        for step in ("quantize", "encode"):
            if isinstance(result.get(step), dict):
                result[step].pop("codes", None)


def _w_hat_only(d: dict[str, Any]) -> None:
    for result in d["results"]:
        if isinstance(result.get("quantize"), dict):
            for name in ("alpha", "beta", "threshold", "codes"):
                result["quantize"].pop(name, None)


def _bare_hex_lists(d: dict[str, Any]) -> None:
    for result in d["results"]:
        for step in ("quantize", "encode"):
            for name, value in (result.get(step) or {}).items():
                if isinstance(value, dict):
                    result[step][name] = value["hex"]


def _not_answerable(d: dict[str, Any]) -> None:
    d["results"] = [r for r in d["results"] if r["id"] != ENCODE_ONLY]
    d["results"].append({"id": ENCODE_ONLY, "not_answerable": "no encode step"})


def _header_left_out(d: dict[str, Any]) -> None:
    del d["format"], d["schema_version"]


# name, edit, expected summary line of `ul2q-ref check` (passed, failed, not answerable)
VALID_FORMS = [
    ("full", lambda d: None, "3 passed, 0 failed"),
    ("codes left out", _no_codes, "3 passed, 0 failed"),
    ("w_hat only", _w_hat_only, "3 passed, 0 failed"),
    ("bare hex lists", _bare_hex_lists, "3 passed, 0 failed"),
    ("not answerable", _not_answerable, "2 passed, 0 failed, 1 not answerable"),
    ("no format or version", _header_left_out, "3 passed, 0 failed"),
    ("error record", lambda d: d["results"].__setitem__(0, {"id": d["results"][0]["id"],
                                                            "error": "not implemented"}),
     "2 passed, 1 failed"),
    ("null codes", lambda d: _result(d, WHOLE)["quantize"]["codes"].__setitem__(0, None),
     "2 passed, 1 failed"),  # this case defines every code: a null one is a wrong answer
    ("null encode", lambda d: _result(d, WHOLE).__setitem__("encode", None),
     "3 passed, 0 failed"),
]


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "edit", "summary"), VALID_FORMS,
                         ids=[name for name, _, _ in VALID_FORMS])
def test_every_documented_form_is_accepted(suite_dir, answers, tmp_path, capsys, name, edit,
                                           summary):
    document = _document(answers)
    edit(document)
    path = _write(tmp_path, document)
    assert set(load_results(path)) == {r["id"] for r in document["results"]}
    status = main(["check", str(suite_dir), "--results", str(path)])
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == summary, out
    assert status == (0 if " 0 failed" in summary else 1)


def test_the_bare_list_form_is_accepted(suite_dir, answers, tmp_path, capsys):
    path = _write(tmp_path, copy.deepcopy(list(answers.values())))
    assert set(load_results(path)) == {WHOLE, TERNARY, ENCODE_ONLY}
    assert main(["check", str(suite_dir), "--results", str(path)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("3 passed, 0 failed")


def _set_code(d: dict[str, Any], value: Any) -> None:
    _result(d, WHOLE)["quantize"]["codes"][3] = value


# name, edit, what the one line must say
MALFORMED = [
    ("wrong format string", lambda d: d.__setitem__("format", "ul2q-ref/conformance-vectors"),
     "format is 'ul2q-ref/conformance-vectors'"),
    ("schema version 2", lambda d: d.__setitem__("schema_version", 2),
     "results schema version 2 is not supported"),
    ("result without id", lambda d: _result(d, TERNARY).pop("id"),
     "does not follow results.schema.json: $.results[1]"),
    ("hex that is not hex",
     lambda d: _result(d, WHOLE)["quantize"]["output"]["hex"].__setitem__(2, "3f8g0000"),
     "does not follow results.schema.json: $.results[0].quantize.output"),
    ("float code", lambda d: _set_code(d, 1.5),
     "does not follow results.schema.json: $.results[0].quantize.codes[3]"),
    ("alpha without beta", lambda d: _result(d, WHOLE)["quantize"].pop("beta"),
     "does not follow results.schema.json: $.results[0].quantize"),
    ("not a list", lambda d: d.__setitem__("results", {"id": WHOLE}),
     "does not follow results.schema.json: $.results"),
]


@pytest.mark.parametrize(("name", "edit", "message"), MALFORMED,
                         ids=[name for name, _, _ in MALFORMED])
def test_a_malformed_file_is_refused_in_one_line_naming_it(suite_dir, answers, tmp_path,
                                                           capsys, name, edit, message):
    document = _document(answers)
    assert [r["id"] for r in document["results"]][:2] == [WHOLE, TERNARY]
    edit(document)
    path = _write(tmp_path, document)
    with pytest.raises(CheckError) as caught:
        load_results(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text, text
    assert main(["check", str(suite_dir), "--results", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert err == [f"ul2q-ref check: error: {text}"]


def test_diagnose_refuses_a_malformed_file_the_same_way(answers, tmp_path, capsys):
    document = _document(answers)
    _set_code(document, 2.5)
    path = _write(tmp_path, document)
    assert main(["diagnose", "--results", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ul2q-ref diagnose: error: {path}: does not follow "
                              "results.schema.json: $.results[0].quantize.codes[3]")


def test_without_jsonschema_the_install_hint_names_the_file(answers, tmp_path, monkeypatch):
    path = _write(tmp_path, _document(answers))
    schema._validator.cache_clear()
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema fails
    try:
        with pytest.raises(CheckError) as caught:
            load_results(path)
    finally:
        schema._validator.cache_clear()
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and schema.INSTALL_HINT in text and "\n" not in text
