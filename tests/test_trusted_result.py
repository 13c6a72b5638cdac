"""Validation once, at the public boundary.

:func:`ul2q_ref.ul2q.quantize` builds its result with ``Quantized._trusted``, which skips the
public constructor's checks (a pass over the codes and a copy of them): its parts are valid
by construction. These tests hold both halves of that bargain: every result the library
builds that way passes the public constructor's checks unchanged, and the public
constructor still refuses bad parts and still leaves the caller's arrays alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ul2q_ref as uq
from tests.conftest import bit_widths, weight_arrays
from ul2q_ref.codebook import Quantized, UnrepresentableError

BACKENDS = ["reference"] + (["fast"] if uq.HAVE_FAST else [])


def field_values(q: Quantized) -> dict:
    return {field.name: getattr(q, field.name) for field in dataclasses.fields(q)}


def assert_same_fields(a: Quantized, b: Quantized) -> None:
    for name, value in field_values(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and value.shape == other.shape, name
            np.testing.assert_array_equal(value, other, err_msg=name)
        else:
            assert type(value) is type(other) and value == other, name


@given(weight_arrays(), bit_widths, st.data())
def test_every_trusted_result_passes_the_public_checks(w, bits, data):
    axis = data.draw(st.sampled_from([None, *range(w.ndim)]))
    for backend in BACKENDS:
        q = uq.quantize(w, bits, axis=axis, backend=backend)
        assert type(q) is Quantized
        assert not q.codes.flags.writeable
        for parameter in (q.alpha, q.beta):
            assert isinstance(parameter, np.float64) if axis is None else \
                not parameter.flags.writeable
        checked = Quantized(**field_values(q))  # raises if any part were inconsistent
        assert_same_fields(q, checked)


def test_the_public_constructor_copies_and_freezes_the_callers_codes():
    codes = np.array([-1, 0, 1, 2], dtype=np.int8)
    q = Quantized(codes=codes, alpha=0.5, beta=0.0, zero_point=0.5, bits=2, lam=None,
                  axis=None, scheme="ul2q", dtype=np.dtype(np.float32))
    assert codes.flags.writeable and not q.codes.flags.writeable
    codes[0] = 2
    assert q.codes.tolist() == [-1, 0, 1, 2]


@pytest.mark.parametrize("changes, error, message", [
    ({"codes": np.array([-2, 0, 1, 2], np.int8)}, ValueError, "code -2 is outside -1..2"),
    ({"codes": np.array([0.0, 1.0])}, TypeError, "codes must be a signed integer array"),
    ({"alpha": -0.5}, ValueError, "alpha must be finite and >= 0"),
    ({"bits": 0}, ValueError, "bits must be 1..16"),
    ({"dtype": np.dtype(np.int32)}, TypeError, "dtype must be a float dtype"),
    ({"alpha": 1e5, "dtype": np.dtype(np.float16)}, UnrepresentableError,
     "does not fit float16"),
])
def test_the_public_constructor_still_refuses_bad_parts(changes, error, message):
    parts = {"codes": np.array([-1, 0, 1, 2], np.int8), "alpha": 0.5, "beta": 0.0,
             "zero_point": 0.5, "bits": 2, "lam": None, "axis": None, "scheme": "ul2q",
             "dtype": np.dtype(np.float32), **changes}
    with pytest.raises(error, match=message):
        Quantized(**parts)
