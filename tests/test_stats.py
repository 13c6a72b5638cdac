"""Normalisation statistics μ and σ."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ul2q_ref as uq
from tests.conftest import weight_arrays


@given(weight_arrays())
def test_moments_match_numpy_in_extended_precision(w):
    mean, std = uq.moments(w, backend="reference")
    exact = w.astype(np.longdouble)
    exact_mean = exact.mean()
    exact_std = np.sqrt(((exact - exact_mean) ** 2).mean())
    assert isinstance(mean, np.float64) and isinstance(std, np.float64)
    scale = float(np.abs(exact).max())
    assert abs(mean - float(exact_mean)) <= 1e-15 * scale * 4
    assert abs(std - float(exact_std)) <= 1e-13 * max(float(exact_std), 1e-300) + 1e-15 * scale


def test_large_mean_small_spread_keeps_its_digits():
    rng = np.random.default_rng(0)
    w = 1e4 + 1e-3 * rng.standard_normal(100_000)
    mean, std = uq.moments(w)
    deviations = w - w.mean()
    assert std == pytest.approx(np.sqrt(np.mean(deviations**2)), rel=1e-9)
    assert std == pytest.approx(1e-3, rel=0.01)
    naive = np.sqrt(max(np.mean(w * w) - np.mean(w) ** 2, 0.0))
    assert abs(naive - std) > 1e-3 * std  # the textbook one-pass formula loses digits


def test_population_standard_deviation():
    mean, std = uq.moments([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == pytest.approx(np.sqrt(1.25), rel=1e-15)


@given(weight_arrays(max_dims=3), st.data())
def test_per_channel_moments_equal_per_slice(w, data):
    axis = data.draw(st.integers(0, w.ndim - 1))
    mean, std = uq.moments(w, axis=axis)
    assert mean.shape == std.shape == (w.shape[axis],)
    assert not mean.flags.writeable
    for channel in range(w.shape[axis]):
        part_mean, part_std = uq.moments(np.take(w, channel, axis=axis))
        assert mean[channel] == part_mean and std[channel] == part_std


def test_constant_channel_has_zero_std_and_exact_mean():
    w = np.array([[0.1, 0.1, 0.1], [1.0, 2.0, 3.0]])
    mean, std = uq.moments(w, axis=0)
    assert mean[0] == 0.1 and std[0] == 0.0
    assert std[1] > 0


@pytest.mark.parametrize("scale", [1e300, 1e-300, 2.0**-1060])
def test_huge_and_tiny_magnitudes_neither_overflow_nor_underflow(scale):
    w = np.array([1.0, 1.5, -0.5, 2.0]) * scale
    mean, std = uq.moments(w)
    assert mean == pytest.approx(1.0 * scale, rel=1e-15)
    assert std == pytest.approx(np.std([1.0, 1.5, -0.5, 2.0]) * scale, rel=1e-15)


def test_largest_floats():
    mean, std = uq.moments(np.array([1.7e308, 1.7e308, -1.7e308, -1.7e308]))
    assert mean == 0.0 and std == 1.7e308
