"""Issue 11, item 5: numbers that cannot be represented are errors, not inf or NaN."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref import api
from ul2q_ref.codebook import Quantized
from ul2q_ref.kernels import select

HUGE = [
    (np.array([3e38, -3e38, 1e38], dtype=np.float32), "float32"),
    (np.array([65504, -65504], dtype=np.float16), "float16"),
    (np.array([1.7e308, -1.7e308]), "float64"),
]


@pytest.mark.parametrize("w, dtype", HUGE)
@pytest.mark.parametrize("function", [uq.fake_quantize, uq.quantize])
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_ul2q_refuses_levels_the_dtype_cannot_hold(w, dtype, function, backend):
    with pytest.raises(api.UnrepresentableError, match=f"does not fit {dtype}.*float64"):
        function(w, 2, backend=backend)


def test_the_rule_is_about_the_levels_not_the_magnitude():
    # a float32 tensor near the top of the range whose levels all fit: accepted, finite
    w = np.array([1e38, -1e38, 5e37, 0.0], dtype=np.float32)
    q = uq.quantize(w, 2)
    levels = q.alpha * (np.arange(-1, 3) - 0.5) + q.beta  # float64, independent of the decoder
    assert np.all(np.abs(levels) <= np.finfo(np.float32).max)
    assert np.isfinite(uq.fake_quantize(w, 2)).all()
    # the same codes decoded to float16 cannot be held: refused, naming float16
    with pytest.raises(api.UnrepresentableError, match="float16"):
        q.dequantize(np.float16)


@pytest.mark.parametrize("w, dtype", HUGE)
def test_fixed_point_refuses_its_lowest_level(w, dtype):
    with pytest.raises(api.UnrepresentableError, match=f"does not fit {dtype}"):
        uq.schemes.fixed_point(w, 2)


def test_binary_and_ternary_are_exact_on_huge_finite_input():
    w = np.array([1.7e308, -1.7e308, 1.7e308, -1.7e308])
    binary = uq.schemes.binary(w)
    assert binary.alpha == 1.7e308  # E|w| of equal magnitudes, no overflow
    np.testing.assert_array_equal(binary.dequantize(), w)
    ternary = uq.schemes.ternary(w)
    np.testing.assert_array_equal(ternary.codes, [1, -1, 1, -1])  # not all zeros
    np.testing.assert_array_equal(ternary.dequantize(), w)
    f32 = np.array([3e38, -3e38], dtype=np.float32)
    np.testing.assert_array_equal(uq.schemes.binary(f32).dequantize(), f32)
    np.testing.assert_array_equal(uq.schemes.clip(f32, 4).dequantize(), f32)


def test_check_representable_is_the_shared_function():
    api.check_representable(1.0, 0.0, 0.5, -1, 2, np.float16)
    with pytest.raises(api.UnrepresentableError, match="code q = -1 .*float16"):
        api.check_representable(50000.0, 0.0, 0.5, -1, 2, np.float16)
    with pytest.raises(api.UnrepresentableError, match=r"channel 1"):
        api.check_representable([1.0, np.inf], [0.0, 0.0], 0.0, -1, 1, np.float64)
    api.check_representable([np.nan], [0.0], 0.5, -1, 2, np.float32)  # caffe's NaN channels


# --------------------------------------------------------------------------- Quantized parts


def parts(**changes):
    codes = np.array([[-1, 0, 1, 2], [2, 1, 0, -1]], dtype=np.int8)
    fields = {"codes": codes, "alpha": np.array([0.5, 2.0]), "beta": np.array([0.0, 1.0]),
              "zero_point": 0.5, "bits": 2, "lam": None, "axis": 0, "scheme": "ul2q",
              "dtype": np.dtype(np.float64)}
    fields.update(changes)
    return fields


@pytest.mark.parametrize("changes, message", [
    ({"alpha": np.array([1.0, 2.0, 3.0])}, "alpha has shape"),
    ({"beta": np.array(0.0)}, "beta has shape"),
    ({"codes": np.array([[3, 0, 0, 0], [0, 0, 0, 0]], dtype=np.int8)}, "code 3 is outside"),
    ({"axis": 2}, "axis 2 is out of range"),
    ({"axis": -3}, "axis -3 is out of range"),
    ({"alpha": np.array([-1.0, 1.0])}, "alpha must be finite and >= 0"),
    ({"alpha": np.array([np.nan, 1.0])}, "alpha must be finite"),
    ({"beta": np.array([np.inf, 1.0])}, "beta must be finite"),
    ({"bits": 17}, "bits must be 1..16"),
    ({"scheme": "nonsense"}, "unknown scheme"),
    ({"zero_point": 0.0}, "zero point must be 0.5"),
])
def test_inconsistent_quantized_is_rejected_at_construction(changes, message):
    with pytest.raises(ValueError, match=message):
        Quantized(**parts(**changes))


def test_negative_axis_means_the_same_for_every_backend():
    q = Quantized(**parts(axis=-2, codes=np.array([[-1, 0], [2, 1]], dtype=np.int8)))
    assert q.axis == 0
    # oracle: the affine formula written out per row
    expected = np.array([[0.5 * (-1.5), 0.5 * (-0.5)], [2.0 * 1.5 + 1.0, 2.0 * 0.5 + 1.0]])
    for backend in ["reference"] + (["fast"] if uq.HAVE_FAST else []):
        np.testing.assert_array_equal(q.dequantize(backend=backend), expected)
    if uq.HAVE_FAST:
        assert select("fast") is not select("reference")


# --------------------------------------------------------------------------- λ range


def _loss_mpmath(lam: float, bits: int) -> float:
    """L(λ) from the closed form of each cell's integral, in 260-digit arithmetic."""
    with mpmath.workdps(260):
        lam = mpmath.mpf(lam)
        half = 2 ** (bits - 1)

        def cell(a, b, c):
            pa, pb = mpmath.npdf(a), (0 if b == mpmath.inf else mpmath.npdf(b))
            bpb = 0 if b == mpmath.inf else b * pb
            return (mpmath.ncdf(b) - mpmath.ncdf(a)) * (1 + c * c) - (bpb - a * pa) \
                - 2 * c * (pa - pb)

        total = sum(cell(lam * (j - 1), lam * j, lam * (j - mpmath.mpf(1) / 2))
                    for j in range(1, half))
        total += cell(lam * (half - 1), mpmath.inf, lam * (half - mpmath.mpf(1) / 2))
        return float(2 * total)


@pytest.mark.parametrize("lam", [0.5, 10.0, 1e10, 1e50, 1e100])
@pytest.mark.parametrize("bits", [1, 2, 3])
def test_expected_loss_is_right_up_to_the_stated_limit(lam, bits):
    assert uq.expected_loss(lam, bits) == pytest.approx(_loss_mpmath(lam, bits), rel=1e-13)


@pytest.mark.parametrize("lam", [1e140, 1.1e100, 1e300])
def test_expected_loss_rejects_steps_beyond_the_limit(lam):
    for function in (uq.expected_loss, uq.expected_loss_derivative):
        with pytest.raises(ValueError, match="lam must be at most 1e\\+100"):
            function(lam, 2)
