"""The codes of small k by comparisons (``_fast.pyx``, section "Thresholds") are the twin's.

For k ≤ ``_fast.COUNTED_BITS[kernel]`` the compiled ``encode`` and ``fake_quantize`` find the
codes of a run of one channel of at least ``_fast.COUNTED_RUN_LENGTH``·2^k values without
dividing: q = lo + #{ j : d ≥ T_j }, d = fl(w − β), where T_j is the least double d with
fl(d/α) ≥ j, found once per run. The arrays below are laid out so that every run is that
long (`long_enough`). Two things are checked here:

* the thresholds themselves, against an independent oracle in exact rational arithmetic
  (:func:`oracle_threshold`: fl(x) ≥ j exactly when x ≥ m_j, the midpoint between j and the
  double below it, so T_j is the least double ≥ m_j·α) and against the reference's own
  division (fl(T_j/α) ≥ j, fl(T_j⁻/α) < j for the double T_j⁻ below T_j);
* the kernels, bit for bit against their NumPy twins (``ul2q_ref.kernels.reference``), on
  values placed on fl(j·α) + β, on T_j + β and one ulp either side, for tiny, huge and
  subnormal α, β far from 0, constant channels (α = 0), per tensor and per channel (axis 0
  and a non-innermost axis), float32 and float64, strided input, every output dtype.
"""

from __future__ import annotations

import itertools
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref import kernels
from ul2q_ref.codebook import code_dtype
from ul2q_ref.ul2q import ZERO_POINT, code_range

pytestmark = pytest.mark.skipif(
    not uq.HAVE_FAST,
    reason="ul2q_ref._fast is not built (tox -e pure): no thresholds to test; with "
    "UL2Q_REQUIRE_FAST=1 a missing extension fails the run instead (tests/conftest.py)",
)

if uq.HAVE_FAST:
    from ul2q_ref import _fast

LARGEST = sys.float_info.max
TINIEST = 5e-324  # the smallest subnormal, 2^-1074

# steps α: ordinary, λ_k σ-like, subnormal, at the normal boundary, huge, the largest double
ALPHAS = (0.25, 0.1, 0.9957 * 0.05, 0.7, 1e-310, TINIEST, 3 * TINIEST, 2.0**-1022,
          2.0**-1022 * 1.5, 1e-300, 1e300, 2.0**1000, 1.7e308, LARGEST)
BETAS = (0.0, 3.0, -123456.789, 1e300, -2.5e-310)


TASK = 16384  # elements per task of the elementwise kernels (ELEMENT_TASK): runs end there


def long_enough(run: int, bits: int) -> bool:
    """Whether a run of `run` values at k = `bits` is counted (k small enough aside)."""
    return run >= _fast.COUNTED_RUN_LENGTH * 2**bits


def counted_bits() -> int:
    """The largest k for which either kernel counts (the thresholds' own bits)."""
    return max(_fast.COUNTED_BITS.values())


def bit_widths() -> list[int]:
    return sorted({1, 2, 3, 4, counted_bits()})


def next_below(x: float) -> float:
    return float(np.nextafter(np.float64(x), -np.inf))


def next_above(x: float) -> float:
    return float(np.nextafter(np.float64(x), np.inf))


def oracle_threshold(alpha: float, j: int) -> float:
    """The least double d with fl(d/α) ≥ j, by exact rational arithmetic (+inf if none).

    For an integer j with |j| ≤ 2^52, fl(x) ≥ j exactly when x ≥ m_j = (j⁻ + j)/2, j⁻ the
    double below j: x ≥ m_j rounds to j or above (at the tie m_j to j, whose significand is
    even, j⁻'s being odd), x < m_j to j⁻ or below. So fl(d/α) ≥ j ⟺ d ≥ m_j·α (α > 0).
    """
    bound = (Fraction(next_below(j)) + j) / 2 * Fraction(alpha)
    if bound > LARGEST:
        return np.inf
    d = -LARGEST if bound <= -LARGEST else float(bound)  # float(Fraction) rounds correctly
    while Fraction(d) < bound:
        d = next_above(d)
    while d > -LARGEST and Fraction(next_below(d)) >= bound:
        d = next_below(d)
    return d


def quotient_reaches(d: float, alpha: float, j: int) -> bool:
    """The reference's own predicate: fl(d/α) ≥ j, in NumPy float64."""
    with np.errstate(all="ignore"):
        return bool(np.float64(d) / np.float64(alpha) >= j)


def quiet(function, *args):
    """Call a kernel with NumPy's overflow warnings silenced (huge α·(q − z) + β)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(*args)


def assert_identical(fast: np.ndarray, reference: np.ndarray) -> None:
    assert fast.dtype == reference.dtype and fast.shape == reference.shape
    assert fast.tobytes() == reference.tobytes(), (fast, reference)


# ----------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_thresholds_are_the_least_doubles_whose_quotient_reaches_j(bits):
    low, high = code_range(bits)
    rng = np.random.default_rng(bits)
    alphas = np.array(ALPHAS + tuple(rng.lognormal(0.0, 3.0, 6)) + tuple(
        float(x) * 2.0 ** int(e) for x, e in zip(rng.random(4) + 0.5, rng.integers(-1070, 1020, 4),
                                                 strict=True)))
    got = _fast._thresholds(alphas, bits)
    assert got.shape == (len(alphas), high - low)
    for row, alpha in zip(got, alphas, strict=True):
        for threshold, j in zip(row, range(low, high), strict=True):
            assert threshold == oracle_threshold(float(alpha), j), (alpha, j)
            assert quotient_reaches(threshold, alpha, j)
            if threshold > -LARGEST:
                assert not quotient_reaches(next_below(threshold), alpha, j)
        assert np.all(row[1:] >= row[:-1])  # they ascend, as the selection assumes


@pytest.mark.parametrize("start", [-np.inf, -LARGEST, -1.0, -TINIEST, 0.0, 1e-300, 3.0, 1e300,
                                   np.inf])
def test_thresholds_found_from_anywhere(start):
    """The search from any start (the gallop and the bisection across the doubles, both
    directions) ends at the same least element."""
    alphas = np.array([0.25, 0.7, TINIEST, 3 * TINIEST, 2.0**-1022, 1e-300, 1e300, LARGEST])
    for bits in (1, 2, 3):
        assert np.array_equal(_fast._thresholds(alphas, bits, start),
                              _fast._thresholds(alphas, bits))
    low, high = code_range(3)
    row = _fast._thresholds(np.array([0.7]), 3, start)[0]
    assert list(row) == [oracle_threshold(0.7, j) for j in range(low, high)]


def test_thresholds_at_the_ends_of_the_doubles():
    """T_j = +inf where no finite d reaches j (α = the largest double: d/α ≤ 1), and a huge α
    makes T_0 negative (tiny negative quotients round to −0, and −0 ≥ 0)."""
    row = _fast._thresholds(np.array([LARGEST]), 3)[0]
    low, _ = code_range(3)
    assert row[-1] == np.inf and row[-2] == np.inf  # j = 3, 2
    assert row[2 - low] == np.inf and row[1 - low] < np.inf  # j = 2 no, j = 1 yes (d = max)
    assert row[0 - low] < 0 and row[0 - low] == oracle_threshold(LARGEST, 0)


def test_thresholds_refuse_steps_they_are_not_defined_for():
    for alpha in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="alpha"):
            _fast._thresholds(np.array([alpha]), 2)


# ----------------------------------------------------------------------------- kernels


def boundary_values(alpha: float, beta: float, bits: int) -> np.ndarray:
    """w on fl(j·α) + β and on T_j + β (j = lo − 1 … hi), one ulp either side, finite."""
    low, high = code_range(bits)
    placed = []
    with np.errstate(all="ignore"):
        for j in range(low - 1, high + 1):
            for d in (np.float64(j) * np.float64(alpha), np.float64(oracle_threshold(alpha, j))):
                if np.isfinite(d):
                    placed.extend([d + beta, d])  # with β = 0, d itself is w − β exactly
        on = np.array(placed, dtype=np.float64)
        points = np.concatenate([on, np.nextafter(on, -np.inf), np.nextafter(on, np.inf),
                                 [beta, 0.0, -0.0]])
    return points[np.isfinite(points)]


def weights_of(points: np.ndarray, dtype) -> np.ndarray:
    """`points` in `dtype`; for float32 also the float32 neighbours of each."""
    if dtype == np.float64:
        return points
    with np.errstate(over="ignore"):
        single = points.astype(np.float32)
        single = np.concatenate([single, np.nextafter(single, np.float32(-np.inf)),
                                 np.nextafter(single, np.float32(np.inf))])
    return single[np.isfinite(single)]


def both_kernels(weights, alpha, beta, bits, axis):
    """encode and fake_quantize (every output dtype), fast and reference, compared."""
    fast, reference = kernels.fast, kernels.reference
    assert_identical(fast.encode(weights, alpha, beta, bits, axis, code_dtype(bits)),
                     reference.encode(weights, alpha, beta, bits, axis, code_dtype(bits)))
    for dtype in (np.float64, np.float32, np.float16):
        assert_identical(
            quiet(fast.fake_quantize, weights, alpha, beta, bits, ZERO_POINT, axis,
                  np.dtype(dtype)),
            quiet(reference.fake_quantize, weights, alpha, beta, bits, ZERO_POINT, axis,
                  np.dtype(dtype)))


def expected_codes(d: np.ndarray, alpha: float, bits: int) -> np.ndarray:
    """lo + #{ j : d ≥ T_j } with the oracle's thresholds: the code rule, independently."""
    low, high = code_range(bits)
    thresholds = np.array([oracle_threshold(alpha, j) for j in range(low, high)])
    return low + (d[:, None] >= thresholds[None, :]).sum(axis=1)


@pytest.mark.parametrize("bits", bit_widths())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_tensor_codes_on_and_next_to_every_threshold(bits, dtype):
    assert long_enough(TASK, bits)
    for alpha, beta in itertools.product(ALPHAS, BETAS):
        weights = np.resize(weights_of(boundary_values(alpha, beta, bits), dtype), TASK)
        a, b = np.array([alpha]), np.array([beta])
        both_kernels(weights, a, b, bits, None)
        if beta == 0.0:  # d = w exactly: the codes are the oracle's count
            codes = kernels.fast.encode(weights, a, b, bits, None, np.dtype(np.int32))
            assert np.array_equal(codes, expected_codes(weights.astype(np.float64), alpha,
                                                        bits))


ROW = 2048  # values per channel: rows and half rows are long runs, and tasks end between rows


def per_channel_rows(bits: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One channel per (α, β) pair (values on and around its thresholds, repeated to fill a
    row of `ROW` values) and a constant channel with α = 0."""
    pairs = list(itertools.product(ALPHAS, BETAS[:3]))
    rows = [weights_of(boundary_values(alpha, beta, bits), dtype) for alpha, beta in pairs]
    assert max(len(row) for row in rows) <= ROW
    length = ROW
    constant = np.full(length, 0.375, dtype=dtype)
    weights = np.stack([np.resize(row, length) for row in rows] + [constant])
    alpha = np.array([alpha for alpha, _ in pairs] + [0.0])
    beta = np.array([beta for _, beta in pairs] + [0.375])
    return weights, alpha, beta


@pytest.mark.parametrize("bits", bit_widths())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_channel_codes_on_both_axes_and_strided(bits, dtype):
    weights, alpha, beta = per_channel_rows(bits, dtype)
    channels, length = weights.shape
    assert TASK % length == 0 and (bits > counted_bits() or long_enough(length // 2, bits))
    both_kernels(weights, alpha, beta, bits, 0)  # axis 0: each channel one run
    middle = np.ascontiguousarray(np.moveaxis(weights.reshape(channels, 2, length // 2), 0, 1))
    both_kernels(middle, alpha, beta, bits, 1)  # a non-innermost axis: a run per (row, channel)
    spaced = np.zeros((channels, 2 * length), dtype=dtype)
    spaced[:, ::2] = weights
    both_kernels(spaced[:, ::2], alpha, beta, bits, 0)  # stride 2: the non-unit-stride loops
    both_kernels(weights[:, ::-1], alpha, beta, bits, 0)  # negative stride
    both_kernels(weights.T, alpha, beta, bits, 1)  # the channel axis innermost: divided
    both_kernels(np.asfortranarray(middle), alpha, beta, bits, 1)  # runs of 2: divided
    both_kernels(weights[:, :100], alpha, beta, bits, 0)  # short runs: divided


@pytest.mark.parametrize("bits", bit_widths())
def test_constant_channels_from_their_own_moments(bits):
    """σ = 0 gives α = 0 (code 1 everywhere) beside channels that use thresholds."""
    rng = np.random.default_rng(bits)
    weights = rng.standard_normal((4, TASK // 4)).astype(np.float32)
    weights[1] = np.float32(-2.75)
    weights[3] = np.float32(1e-30)
    mean, std = kernels.reference.moments(weights, 0)
    alpha = 0.9957 * std
    assert alpha[1] == 0.0 and alpha[3] == 0.0
    both_kernels(weights, alpha, mean, bits, 0)
    both_kernels(weights.ravel(), np.array([alpha[0]]), np.array([mean[0]]), bits, None)


@pytest.mark.parametrize("bits", bit_widths())
def test_quotients_that_overflow_or_underflow(bits):
    """w − β overflowing to ±inf (its quotient ±inf), and quotients rounding to ±0."""
    weights = np.resize([LARGEST, -LARGEST, 1e308, -1e308, TINIEST, -TINIEST, 0.0, -0.0, 1.0],
                        TASK)
    for alpha, beta in itertools.product((TINIEST, 1e-300, 1.0, 1e300, LARGEST),
                                         (LARGEST, -LARGEST, 0.0, -TINIEST)):
        both_kernels(weights, np.array([alpha]), np.array([beta]), bits, None)


def test_long_runs_of_random_weights():
    """Runs just below and at the length that is counted, many tasks, the vectorised loops'
    tails: random weights per tensor, with α = λσ as training uses it."""
    rng = np.random.default_rng(7)
    for bits in bit_widths():
        run = _fast.COUNTED_RUN_LENGTH * 2**bits
        for size in (1, 7, 8, 9, 17, run - 1, run, run + 7, 3 * TASK + 5):
            weights = rng.standard_normal(size).astype(np.float32)
            mean, std = kernels.reference.moments(weights, None)
            both_kernels(weights, 0.9957 * std, mean, bits, None)


@pytest.fixture
def two_threads():
    """Two threads from 65,536 elements per thread on (restored afterwards), so that the
    counted runs are split among threads on arrays of a test's size."""
    previous_threads = _fast.get_num_threads()
    previous_minimum = _fast._set_min_per_thread(65536)
    _fast.set_num_threads(2)
    yield
    _fast._set_min_per_thread(previous_minimum)
    _fast.set_num_threads(previous_threads)


@pytest.mark.parametrize("bits", bit_widths())
def test_counted_runs_on_two_threads(two_threads, bits):
    """Tasks run by either thread find their own thresholds: the twin's bits on 2 threads."""
    rng = np.random.default_rng(bits)
    weights = (0.3 + rng.standard_normal((4, 100_000))).astype(np.float32)  # ≥ 2 × 65536
    for array, axis in ((weights, None), (weights, 0), (weights[:, ::3], None)):
        mean, std = kernels.reference.moments(array, axis)
        both_kernels(array, 0.9957 * std, mean, bits, axis)
        assert _fast._last_thread_count() == (2 if _fast.HAVE_OPENMP else 1)
