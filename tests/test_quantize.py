"""μL2Q quantisation: the code rule, the reconstruction, per-channel use, and σ = 0."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import ul2q_ref as uq
from tests.conftest import as_read_only, bit_widths, weight_arrays


def codes_by_python_floats(w, alpha, beta, bits):
    """The code rule evaluated element by element with Python floats (IEEE double)."""
    low, high = uq.code_range(bits)
    if alpha == 0:
        return np.ones(np.shape(w), dtype=np.int64)
    flat = [min(max(math.floor((float(x) - beta) / alpha) + 1, low), high)
            for x in np.ravel(w)]
    return np.array(flat, dtype=np.int64).reshape(np.shape(w))


@given(weight_arrays(), bit_widths)
def test_codes_follow_the_rule_exactly(w, bits):
    q = uq.quantize(w, bits, backend="reference")
    mean, std = uq.moments(w, backend="reference")
    assert q.beta == mean
    assert q.alpha == uq.optimal_lambda(bits) * std
    expected = codes_by_python_floats(w, float(q.alpha), float(q.beta), bits)
    np.testing.assert_array_equal(q.codes, expected)
    assert q.codes.dtype == (np.int8 if bits <= 7 else np.int16 if bits <= 15 else np.int32)
    assert q.codes.shape == w.shape


@given(weight_arrays(), bit_widths)
def test_codes_stay_in_range_and_are_monotone_in_w(w, bits):
    q = uq.quantize(w, bits, backend="reference")
    low, high = uq.code_range(bits)
    assert q.codes.min() >= low and q.codes.max() <= high
    order = np.argsort(w, axis=None, kind="stable")
    assert np.all(np.diff(q.codes.ravel()[order].astype(np.int64)) >= 0)


@given(weight_arrays(dtypes=(np.float64,)), bit_widths)
def test_error_is_at_most_half_a_step_inside_the_clip_range(w, bits):
    q = uq.quantize(w, bits, backend="reference")
    w_hat = q.dequantize(np.float64)
    low, high = uq.code_range(bits)
    inside = (w >= q.beta + q.alpha * (low - 1)) & (w <= q.beta + q.alpha * high)
    slack = 1e-9 * (abs(float(q.beta)) + float(q.alpha) * 2**bits)  # two float64 roundings
    assert np.all(np.abs(w - w_hat)[inside] <= q.alpha / 2 + slack)


@given(weight_arrays(dtypes=(np.float64,)), bit_widths)
def test_reencoding_the_reconstruction_gives_the_same_codes(w, bits):
    q = uq.quantize(w, bits, backend="reference")
    assume(q.alpha > 1e-6 * abs(q.beta))  # a centre is α/2 from its thresholds
    w_hat = q.dequantize(np.float64)
    np.testing.assert_array_equal(uq.encode(w_hat, q.alpha, q.beta, bits), q.codes)


@pytest.mark.parametrize("bits", range(1, 17))
def test_a_value_exactly_on_a_threshold_goes_to_the_upper_cell(bits):
    alpha, beta = 0.25, 3.0  # thresholds β + α·j are exact binary fractions
    low, high = uq.code_range(bits)
    j = np.arange(low, high, dtype=np.float64)  # the interior thresholds: j = low..high-1
    on_threshold = beta + alpha * j
    codes = uq.encode(on_threshold, alpha, beta, bits, backend="reference")
    np.testing.assert_array_equal(codes, j + 1)
    # One ulp below a threshold is the lower cell (β = 0 keeps w − β exact).
    just_below = np.nextafter(alpha * j, -np.inf)
    np.testing.assert_array_equal(
        uq.encode(just_below, alpha, 0.0, bits, backend="reference"), np.maximum(j, low)
    )


@given(st.floats(-1e30, 1e30), st.integers(1, 50), bit_widths)
def test_constant_tensor_has_zero_scale_code_one_and_exact_reconstruction(value, size, bits):
    w = np.full(size, value)
    q = uq.quantize(w, bits, backend="reference")
    assert q.alpha == 0.0 and q.beta == value
    assert np.all(q.codes == 1)
    np.testing.assert_array_equal(q.dequantize(), w)


def test_one_element_and_zero_dimensional_input():
    for w in (np.float32(2.5), 2.5, [2.5], np.array([[2.5]])):
        q = uq.quantize(w, 3)
        assert q.codes.shape == np.shape(w)
        assert q.alpha == 0 and q.dequantize().tolist() == np.asarray(w, float).tolist()


@given(weight_arrays(max_dims=3), bit_widths, st.data())
def test_per_channel_equals_slice_by_slice(w, bits, data):
    axis = data.draw(st.integers(-w.ndim, w.ndim - 1))
    q = uq.quantize(w, bits, axis=axis, backend="reference")
    assert q.axis == axis % w.ndim
    for channel in range(w.shape[axis]):
        part = np.take(w, channel, axis=axis)
        expected = uq.quantize(part, bits, backend="reference")
        assert q.alpha[channel] == expected.alpha
        assert q.beta[channel] == expected.beta
        np.testing.assert_array_equal(np.take(q.codes, channel, axis=axis), expected.codes)
        np.testing.assert_array_equal(
            np.take(q.dequantize(), channel, axis=axis), expected.dequantize()
        )


@given(weight_arrays(), bit_widths)
def test_fake_quantize_is_quantize_then_dequantize(w, bits):
    """ŵ = α(q − ½) + β, from an independent evaluation with Python floats (not our decoder)."""
    q = uq.quantize(w, bits, backend="reference")
    alpha, beta = float(q.alpha), float(q.beta)
    codes = codes_by_python_floats(w, alpha, beta, bits)
    expected = np.array([alpha * (int(c) - 0.5) + beta for c in codes.ravel()],
                        dtype=np.float64).reshape(w.shape).astype(w.dtype)
    for backend in ("reference", "auto"):
        w_hat = uq.fake_quantize(w, bits, backend=backend)
        assert w_hat.dtype == w.dtype and w_hat.shape == w.shape
        np.testing.assert_array_equal(w_hat, expected)
        np.testing.assert_array_equal(uq.quantize(w, bits, backend=backend).dequantize(),
                                      expected)


@given(weight_arrays(), bit_widths)
def test_inputs_are_never_written(w, bits):
    original = w.copy()
    frozen = as_read_only(w)
    uq.moments(frozen, backend="reference")
    uq.quantize(frozen, bits, backend="reference")
    uq.fake_quantize(frozen, bits, backend="reference")
    uq.encode(frozen, 0.5, 0.0, bits, backend="reference")
    for name, scheme in uq.schemes.QUANTIZERS.items():
        if name in ("binary", "ternary"):
            scheme(frozen, 1 if name == "binary" else 2)
        elif bits >= 2:
            scheme(frozen, bits)
    np.testing.assert_array_equal(w, original)


def test_array_likes_and_layouts_give_the_same_result():
    rng = np.random.default_rng(1)
    base = rng.normal(0.02, 0.1, size=(6, 8))
    expected = uq.quantize(base[:, ::2], 3)
    variants = [
        base[:, ::2],                                  # non-contiguous view
        np.ascontiguousarray(base[:, ::2]),
        np.asfortranarray(base[:, ::2]),
        base[:, ::2].astype(">f8"),                    # big-endian
        base[:, ::2].tolist(),                         # nested lists
        as_read_only(base[:, ::2]),
    ]
    for w in variants:
        q = uq.quantize(w, 3)
        np.testing.assert_array_equal(q.codes, expected.codes)
        assert q.alpha == expected.alpha and q.beta == expected.beta
    assert uq.fake_quantize(base[:, ::2].astype(">f8"), 3).dtype == np.float64


def test_integer_input_is_quantised_as_float64():
    ints = np.array([-3, 0, 1, 4, 9], dtype=np.int16)
    q = uq.quantize(ints, 2)
    np.testing.assert_array_equal(q.codes, uq.quantize(ints.astype(float), 2).codes)
    assert uq.fake_quantize(ints, 2).dtype == np.float64


def test_float16_input_keeps_its_dtype():
    w = np.array([0.1, -0.5, 0.25, 2.0], dtype=np.float16)
    assert uq.fake_quantize(w, 2).dtype == np.float16
    np.testing.assert_array_equal(uq.quantize(w, 2).codes,
                                  uq.quantize(w.astype(np.float32), 2).codes)


def test_result_is_immutable():
    q = uq.quantize(np.linspace(-1, 1, 10), 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.alpha = 1.0
    with pytest.raises(ValueError, match="read-only"):
        q.codes[0] = 0
    per_channel = uq.quantize(np.linspace(-1, 1, 10).reshape(2, 5), 2, axis=0)
    with pytest.raises(ValueError, match="read-only"):
        per_channel.alpha[0] = 0.0


def test_dequantize_function_and_method_agree_and_take_a_dtype():
    q = uq.quantize(np.linspace(-1, 1, 10, dtype=np.float32), 4)
    assert q.dequantize().dtype == np.float32
    np.testing.assert_array_equal(uq.dequantize(q, np.float64), q.dequantize(np.float64))
    expected = q.alpha * (q.codes.astype(np.float64) - 0.5) + q.beta
    np.testing.assert_array_equal(q.dequantize(np.float64), expected)
    with pytest.raises(TypeError, match="dtype"):
        q.dequantize(np.int32)


def test_two_bit_reconstruction_levels():
    w = np.random.default_rng(3).normal(size=1000)
    q = uq.quantize(w, 2)
    levels = np.unique(q.dequantize())
    expected = q.beta + q.alpha * np.array([-1.5, -0.5, 0.5, 1.5])
    np.testing.assert_allclose(levels, expected, rtol=0, atol=1e-15)
    std = statistics.pstdev(w.tolist())  # the population σ, computed independently
    assert q.alpha == pytest.approx(uq.optimal_lambda(2) * std, rel=1e-14)


def test_encode_checks_its_code_book():
    w = np.zeros((2, 3))
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        uq.encode(w, -1.0, 0.0, 2)
    with pytest.raises(ValueError, match="alpha must be a scalar"):
        uq.encode(w, [1.0, 2.0], 0.0, 2)
    with pytest.raises(ValueError, match="beta must hold one value per channel"):
        uq.encode(w, 1.0, [0.0, 1.0, 2.0], 2, axis=0)
    with pytest.raises(ValueError, match="alpha contains 1 non-finite"):
        uq.encode(w, float("nan"), 0.0, 2)
    np.testing.assert_array_equal(uq.encode(w, [0.5, 0.0], [0.0, 0.0], 2, axis=0),
                                  [[1, 1, 1], [1, 1, 1]])
