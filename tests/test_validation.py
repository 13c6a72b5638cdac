"""The input contract: every public function rejects bad input with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref import schemes


def _entry_points():
    """Every public function taking a weight tensor, called with a valid bit width."""
    return {
        "moments": lambda w, **kw: uq.moments(w, **kw),
        "quantize": lambda w, **kw: uq.quantize(w, 2, **kw),
        "fake_quantize": lambda w, **kw: uq.fake_quantize(w, 2, **kw),
        "encode": lambda w, **kw: uq.encode(w, 1.0, 0.0, 2, **kw),
        "binary": lambda w, **kw: schemes.binary(w, **kw),
        "ternary": lambda w, **kw: schemes.ternary(w, **kw),
        "fixed_point": lambda w, **kw: schemes.fixed_point(w, 4, **kw),
        "clip": lambda w, **kw: schemes.clip(w, 4, **kw),
    }


ENTRY_POINTS = _entry_points()
BAD_WEIGHTS = [
    ([], ValueError, r"w is empty \(shape \(0,\)\)"),
    (np.zeros((3, 0)), ValueError, r"w is empty \(shape \(3, 0\)\)"),
    ([1.0, float("nan"), 2.0, float("nan")], ValueError,
     r"w contains 2 non-finite values \(NaN or ±inf\); the first is nan at index \(1,\)"),
    (np.array([[1.0, 2.0], [np.inf, 0.0]]), ValueError,
     r"w contains 1 non-finite value .*the first is inf at index \(1, 0\)"),
    (np.float64("-inf"), ValueError, "the first is -inf at the only element"),
    (np.array([1 + 2j]), TypeError, "w has complex dtype"),
    (np.array([True, False]), TypeError, "w has boolean dtype"),
    (np.array([1.0, None], dtype=object), TypeError, "w must hold real numbers, got dtype object"),
    (["a", "b"], TypeError, "w must hold real numbers"),
    (np.array([1.0], dtype=np.longdouble), TypeError, "extended-precision"),
    (np.array([2**60, 1], dtype=np.int64), ValueError, "cannot represent exactly"),
]


@pytest.mark.parametrize("name", ENTRY_POINTS)
@pytest.mark.parametrize(("w", "error", "message"), BAD_WEIGHTS)
def test_bad_weights_are_rejected(name, w, error, message):
    if np.asarray(w).dtype == np.longdouble and np.finfo(np.longdouble).bits <= 64:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(error, match=message):
        ENTRY_POINTS[name](w)


@pytest.mark.parametrize("name", ENTRY_POINTS)
@pytest.mark.parametrize(
    ("axis", "error", "message"),
    [
        (2, ValueError, r"axis=2 is out of range for an input with 2 dimensions \(valid: -2 to"),
        (-3, ValueError, "axis=-3 is out of range"),
        (1.0, TypeError, "axis must be None or an integer, got 1.0"),
        (True, TypeError, "axis must be None or an integer, got True"),
    ],
)
def test_bad_axis_is_rejected(name, axis, error, message):
    with pytest.raises(error, match=message):
        ENTRY_POINTS[name](np.ones((2, 3)), axis=axis)


def test_axis_on_a_zero_dimensional_input():
    with pytest.raises(ValueError, match="the input is 0-dimensional"):
        uq.quantize(1.0, 2, axis=0)


BAD_BITS = [
    (True, TypeError, "bits must be an integer from 1 to 16, got True of type bool"),
    (2.5, TypeError, "got 2.5 of type float"),
    (2.0, TypeError, "got 2.0 of type float"),
    ("2", TypeError, "got '2' of type str"),
    (None, TypeError, "got None"),
    (0, ValueError, "bits must be an integer from 1 to 16, got 0"),
    (17, ValueError, "got 17"),
    (-1, ValueError, "got -1"),
]


@pytest.mark.parametrize(("bits", "error", "message"), BAD_BITS)
@pytest.mark.parametrize(
    "call",
    [
        lambda bits: uq.quantize([0.0, 1.0], bits),
        lambda bits: uq.fake_quantize([0.0, 1.0], bits),
        lambda bits: uq.encode([0.0, 1.0], 1.0, 0.0, bits),
        lambda bits: uq.optimal_lambda(bits),
        lambda bits: uq.expected_loss(1.0, bits),
        lambda bits: uq.expected_loss_derivative(1.0, bits),
        lambda bits: uq.lambda_table([bits]),
        lambda bits: schemes.fixed_point([0.0, 1.0], bits),
    ],
)
def test_bad_bit_widths_are_rejected(call, bits, error, message):
    with pytest.raises(error, match=message):
        call(bits)


def test_numpy_integer_bit_widths_are_accepted():
    assert uq.quantize([0.0, 1.0], np.int64(3)).bits == 3


def test_bad_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'fast', 'reference'"):
        uq.quantize([0.0, 1.0], 2, backend="gpu")


def test_fast_backend_without_the_extension_says_how_to_build_it(monkeypatch):
    from ul2q_ref import _backend

    monkeypatch.setattr(_backend, "fast", None)
    for profile in ("exact", "paper", "caffe"):  # backend= means the same under every profile
        with pytest.raises(ImportError, match="pip install"):
            uq.quantize([0.0, 1.0], 2, backend="fast", profile=profile)
        with pytest.raises(ImportError, match="pip install"):
            uq.fake_quantize([0.0, 1.0], 2, backend="fast", profile=profile)
        assert uq.quantize([0.0, 1.0], 2, backend="auto", profile=profile).bits == 2
    with pytest.raises(ImportError, match="pip install"):
        uq.quantize([0.0, 1.0], 2).dequantize(backend="fast")


def test_dequantize_needs_a_quantized():
    with pytest.raises(TypeError, match="quantized must be a Quantized"):
        uq.dequantize(np.zeros(3))


def _finiteness_cases():
    """Tensors with NaN or ±inf at every position, in constant and varying channels."""
    rng = np.random.default_rng(7)
    bases = {
        "varying": rng.standard_normal((3, 5)),
        "constant": np.full((3, 5), 0.25),
        "constant rows": np.repeat(rng.standard_normal((3, 1)), 5, axis=1),
        "huge": rng.standard_normal((3, 5)) * 1e300,  # float64 only: the scaled path
    }
    for label, base in bases.items():
        for dtype in (np.float32, np.float64):
            if label == "huge" and dtype == np.float32:
                continue
            for bad in (np.nan, np.inf, -np.inf):
                for position in np.ndindex(base.shape):
                    w = base.astype(dtype)
                    w[position] = bad
                    yield pytest.param(w, id=f"{label}-{np.dtype(dtype).name}-{bad}-{position}")


@pytest.mark.skipif(not uq.HAVE_FAST, reason="the compiled kernels are not built")
@pytest.mark.parametrize("w", list(_finiteness_cases()))
def test_the_finiteness_check_riding_on_the_moments_finds_every_bad_value(w):
    """The compiled path skips the isfinite pass when the moments prove finiteness; the
    error must still be the plain scan's, with the count and the first position."""
    bad = int(np.count_nonzero(~np.isfinite(w)))
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(w))[0])
    expected = (f"w contains {bad} non-finite value{'s' if bad != 1 else ''} (NaN or ±inf); "
                f"the first is {w[first]} at index {first}")
    calls = [
        lambda kw: uq.moments(w, **kw),
        lambda kw: uq.quantize(w, 2, **kw),
        lambda kw: uq.fake_quantize(w, 4, **kw),
    ]
    for call in calls:
        for axis in (None, 0, 1):
            for backend in ("fast", "reference"):
                with pytest.raises(ValueError) as raised:
                    call({"axis": axis, "backend": backend})
                assert str(raised.value) == expected
