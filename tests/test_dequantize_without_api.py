"""``Quantized.dequantize`` is the definition's own method: it does not depend on the public
layer having been imported.

``import ul2q_ref`` always imports :mod:`ul2q_ref.api` (the package re-exports it), so a
fresh interpreter that merely avoids ``import ul2q_ref.api`` proves nothing. The subprocess
below therefore puts a bare package object in ``sys.modules["ul2q_ref"]`` (the package's
directory as its path, its ``__init__`` not run) and imports only ``ul2q_ref.codebook``: the
modules that brings in are the definition and ``ul2q_ref._backend``. There the method must
decode, check representability and honour ``backend=`` exactly as it does in this process,
where the whole package is loaded; importing :mod:`ul2q_ref.api` afterwards must change
nothing in :mod:`ul2q_ref.codebook`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref import codebook

ROOT = Path(__file__).resolve().parents[1]

CODES = [-1, 0, 1, 2]
"""2-bit μL2Q codes, the whole range {1 − 2^(k−1), …, 2^(k−1)}."""

EXPECTED = [-0.5, 0.0, 0.5, 1.0]
"""ŵ = α(q − ½) + β for α = ½, β = ¼, by hand: ½·(−1.5) + ¼ = −½, ½·(−½) + ¼ = 0, …
(every value exact in float16)."""

CHILD = r"""
import json, sys, types
root = sys.argv[1]
package = types.ModuleType("ul2q_ref")
package.__path__ = [root + "/ul2q_ref"]
sys.modules["ul2q_ref"] = package

import numpy as np
from ul2q_ref import _backend, codebook

loaded = sorted(name for name in sys.modules if name.startswith("ul2q_ref."))
q = codebook.Quantized(codes=np.array([-1, 0, 1, 2], np.int8), alpha=0.5, beta=0.25,
                       zero_point=0.5, bits=2, lam=None, axis=None, scheme="ul2q",
                       dtype=np.dtype(np.float32))
out = {"loaded": loaded, "have_fast": _backend.HAVE_FAST}
for backend in ("auto", "reference") + (("fast",) if _backend.HAVE_FAST else ()):
    got = q.dequantize(backend=backend)
    out[backend] = [str(got.dtype), got.tolist()]
got = q.dequantize(np.float16, backend="reference")
out["float16"] = [str(got.dtype), got.tolist()]

calls = []
def counting_decode(*args):  # a stand-in compiled module: backend="fast" must reach it
    calls.append(args[-1].name)
    return codebook.decode(*args)
_backend.fast = types.SimpleNamespace(decode=counting_decode)
out["stand_in"] = q.dequantize(backend="fast").tolist()
out["auto_calls"] = (q.dequantize(backend="auto").tolist(), list(calls))
_backend.fast = None
try:
    q.dequantize(backend="fast")
except ImportError as error:
    out["fast_missing"] = "pip install" in str(error)

huge = codebook.Quantized(codes=np.array([-1, 2], np.int8), alpha=1e38, beta=0.0,
                          zero_point=0.5, bits=2, lam=None, axis=None, scheme="ul2q",
                          dtype=np.dtype(np.float64))
try:
    huge.dequantize(np.float16)
except codebook.UnrepresentableError as error:
    out["unrepresentable"] = "float16" in str(error)
try:
    q.dequantize(backend="gpu")
except ValueError as error:
    out["bad_backend"] = "backend must be one of" in str(error)

before = dict(vars(codebook))
import ul2q_ref.api
after = vars(codebook)
out["rebound"] = sorted(name for name in before if after[name] is not before[name])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def child() -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_only_the_definition_and_the_backend_names_were_loaded(child):
    assert "ul2q_ref.api" not in child["loaded"]
    assert "ul2q_ref.kernels" not in child["loaded"]
    assert "ul2q_ref.codebook" in child["loaded"]
    assert "ul2q_ref._backend" in child["loaded"]


def test_the_method_decodes_by_the_definition_without_the_public_layer(child):
    for backend in ("auto", "reference") + (("fast",) if child["have_fast"] else ()):
        assert child[backend] == ["float32", EXPECTED], backend
    assert child["float16"] == ["float16", EXPECTED]


def test_the_method_honours_backend_without_the_public_layer(child):
    assert child["stand_in"] == EXPECTED
    # the stand-in decoded twice, both in float32: for backend="fast", then for "auto"
    assert child["auto_calls"] == [EXPECTED, ["float32", "float32"]]
    assert child["fast_missing"] is True
    assert child["bad_backend"] is True


def test_the_method_checks_representability_without_the_public_layer(child):
    assert child["unrepresentable"] is True


def test_importing_the_public_layer_rebinds_nothing_in_the_definition(child):
    assert child["rebound"] == []


def test_the_same_calls_with_the_whole_package_loaded():
    q = uq.Quantized(codes=np.array(CODES, np.int8), alpha=0.5, beta=0.25, zero_point=0.5,
                     bits=2, lam=None, axis=None, scheme="ul2q", dtype=np.dtype(np.float32))
    for backend in ("auto", "reference") + (("fast",) if uq.HAVE_FAST else ()):
        for decoded in (q.dequantize(backend=backend), uq.dequantize(q, backend=backend),
                        codebook.dequantize(q, backend=backend)):
            assert decoded.dtype == np.float32 and decoded.tolist() == EXPECTED
    assert uq.Quantized.dequantize is codebook.Quantized.dequantize
