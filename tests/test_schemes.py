"""The comparison schemes: binary, ternary, dynamic fixed point and clip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ul2q_ref as uq
from tests.conftest import weight_arrays
from ul2q_ref import schemes


@given(weight_arrays())
def test_binary_uses_the_sign_and_the_mean_magnitude(w):
    q = schemes.binary(w)
    np.testing.assert_array_equal(q.codes, np.where(w >= 0, 1, -1))
    assert q.alpha == pytest.approx(np.abs(w.astype(np.float64)).mean(), rel=1e-12)
    assert (q.zero_point, q.beta, q.bits, q.scheme) == (0.0, 0.0, 1, "binary")
    np.testing.assert_array_equal(q.dequantize(np.float64), q.alpha * q.codes)


def test_binary_zero_goes_to_plus_one_and_alpha_is_l2_optimal():
    w = np.array([0.0, -0.0, 0.3, -0.7, 1.1])
    q = schemes.binary(w)
    assert q.codes[:2].tolist() == [1, 1]
    signs = q.codes.astype(float)
    # α = argmin ‖w − α s‖² = <w, s>/n = mean|w|
    assert q.alpha == pytest.approx(np.dot(w, signs) / w.size)


@given(weight_arrays())
def test_ternary_threshold_and_scale(w):
    q = schemes.ternary(w)
    values = w.astype(np.float64)
    delta = 0.7 * np.abs(values).mean()
    expected = np.where(values > delta, 1, np.where(values < -delta, -1, 0))
    np.testing.assert_array_equal(q.codes, expected)
    beyond = np.abs(values)[np.abs(values) > delta]
    assert q.alpha == (pytest.approx(beyond.mean(), rel=1e-12) if beyond.size else 0.0)
    assert set(np.unique(q.codes)) <= {-1, 0, 1}


def test_ternary_all_zero_has_zero_scale():
    q = schemes.ternary(np.zeros(5))
    assert q.alpha == 0.0 and np.all(q.codes == 0)


@given(weight_arrays(), st.integers(2, 16))
def test_fixed_point_step_is_a_power_of_two_that_fits_the_largest_value(w, bits):
    q = schemes.fixed_point(w, bits)
    largest = float(np.abs(w.astype(np.float64)).max())
    if largest == 0:
        assert q.alpha == 0 and np.all(q.codes == 0)
        return
    mantissa, exponent = np.frexp(q.alpha)
    assert mantissa == 0.5  # a power of two
    assert 2 ** (bits - 2) <= largest / q.alpha < 2 ** (bits - 1)
    assert q.codes.min() >= -(2 ** (bits - 1)) and q.codes.max() <= 2 ** (bits - 1) - 1
    inside = np.abs(w) < (2 ** (bits - 1) - 1) * q.alpha
    error = np.abs(w.astype(np.float64) - q.dequantize(np.float64))
    assert np.all(error[inside] <= q.alpha / 2)


def test_fixed_point_example():
    # max|w| = 0.9 → ⌊log2 0.9⌋ = −1; 4 bits → α = 2^(−1−2) = 1/8, codes in −8..7
    q = schemes.fixed_point([0.9, -0.9, 0.0625, 0.1875, -0.3], 4)
    assert q.alpha == 0.125
    assert q.codes.tolist() == [7, -7, 1, 2, -2]  # 0.0625/0.125 = 0.5 rounds away from 0


@given(weight_arrays(), st.integers(2, 16))
def test_clip_maps_the_largest_magnitude_to_the_largest_code(w, bits):
    q = schemes.clip(w, bits)
    levels = 2 ** (bits - 1) - 1
    largest = float(np.abs(w.astype(np.float64)).max())
    assert q.alpha == largest / levels
    if largest > 0:
        assert np.abs(q.codes).max() == levels
        error = np.abs(w.astype(np.float64) - q.dequantize(np.float64))
        assert np.all(error <= q.alpha / 2 * (1 + 1e-12))


def test_round_half_away_from_zero():
    np.testing.assert_array_equal(
        schemes.round_half_away(np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49])),
        [-3, -2, -1, 1, 2, 3, 0],
    )


@pytest.mark.parametrize("name", ["binary", "ternary", "fixed_point", "clip", "ul2q"])
@given(w=weight_arrays(max_dims=3), data=st.data())
def test_per_channel_equals_slice_by_slice(name, w, data):
    bits = {"binary": 1, "ternary": 2}.get(name, data.draw(st.integers(2, 8)))
    axis = data.draw(st.integers(0, w.ndim - 1))
    q = schemes.quantize_with(name, w, bits, axis=axis)
    for channel in range(w.shape[axis]):
        part = schemes.quantize_with(name, np.take(w, channel, axis=axis), bits)
        assert q.alpha[channel] == part.alpha and q.beta[channel] == part.beta
        np.testing.assert_array_equal(np.take(q.codes, channel, axis=axis), part.codes)


def test_scheme_bit_widths_are_checked():
    w = np.linspace(-1, 1, 7)
    with pytest.raises(ValueError, match="bits must be 1 for the binary scheme"):
        schemes.binary(w, 2)
    with pytest.raises(ValueError, match="bits must be 2 for the ternary scheme"):
        schemes.ternary(w, 3)
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16"):
        schemes.clip(w, 1)
    with pytest.raises(ValueError, match="scheme must be one of"):
        schemes.quantize_with("nope", w, 2)


def test_every_scheme_decodes_through_the_shared_code_book():
    w = np.random.default_rng(5).normal(size=(4, 9)).astype(np.float32)
    for name in schemes.SCHEMES:
        q = schemes.quantize_with(name, w, {"binary": 1, "ternary": 2}.get(name, 3))
        expected = q.alpha * (q.codes.astype(np.float64) - q.zero_point) + q.beta
        np.testing.assert_array_equal(uq.dequantize(q), expected.astype(np.float32))
        assert uq.dequantize(q).dtype == np.float32
