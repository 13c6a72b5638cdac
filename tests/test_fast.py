"""The compiled kernels (``backend="fast"``) against the NumPy reference that defines them.

Every kernel of ``ul2q_ref._fast`` must give the reference's result bit for bit: the same
codes and reconstructions for the same code book (α, β), and -- since the kernels reproduce
NumPy's pairwise summation -- the same μ and σ, hence the same end-to-end quantisation
(except where a value lies on a cell boundary, see
test_quantize_end_to_end_agrees_except_on_thresholds). Each section of ``_fast.pyx`` names
the tests here that hold its kernel.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import event, given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ul2q_ref as uq
from tests.conftest import as_read_only
from ul2q_ref import kernels
from ul2q_ref.codebook import channel_vector, code_dtype, decode_with
from ul2q_ref.ul2q import ZERO_POINT

pytestmark = pytest.mark.skipif(
    not uq.HAVE_FAST,
    reason="ul2q_ref._fast is not built (tox -e pure): nothing to compare with the "
    "reference; with UL2Q_REQUIRE_FAST=1 a missing extension fails the run instead "
    "(tests/conftest.py)",
)

if uq.HAVE_FAST:
    from ul2q_ref import _fast


class Kernels:
    """A kernel module called with scalar or per-channel α, β and any output dtype, prepared
    as the public layer prepares them (``ul2q_ref.api``, ``ul2q_ref.codebook.decode_with``)."""

    def __init__(self, module):
        self.module = module

    def moments(self, w, axis):
        return self.module.moments(w, axis)

    def encode(self, w, alpha, beta, bits, axis):
        channels = 1 if axis is None else w.shape[axis]
        return self.module.encode(w, channel_vector(alpha, channels),
                                  channel_vector(beta, channels), bits, axis, code_dtype(bits))

    def decode(self, codes, alpha, beta, zero_point, axis, dtype):
        return decode_with(self.module.decode, codes, alpha, beta, zero_point, axis,
                           np.dtype(dtype))

    def fake_quantize(self, w, alpha, beta, bits, axis, dtype):
        channels = 1 if axis is None else w.shape[axis]
        dtype = np.dtype(dtype)
        native = dtype in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
        result = self.module.fake_quantize(
            w, channel_vector(alpha, channels), channel_vector(beta, channels), bits,
            ZERO_POINT, axis, dtype if native else np.dtype(np.float64))
        return result if native else result.astype(dtype)


FAST = Kernels(kernels.fast)
REF = Kernels(kernels.reference)

# 250 examples per agreement test under the default "ci" profile (about 15 s for the whole
# file on 2 cores), four times the profile's count under a bigger one ("thorough": 4000)
AGREEMENT = settings(max_examples=max(250, 4 * settings().max_examples), deadline=None)
FLOAT_DTYPES = (np.float32, np.float64)


# ----------------------------------------------------------------------------- helpers


def quiet(function, *args, **kwargs):
    """Call a reference function with NumPy's overflow warnings silenced.

    The reference's ``astype`` warns when a reconstruction overflows the output dtype
    (e.g. float16); the value (inf) is what is compared, the warning is not.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(*args, **kwargs)


def assert_identical(fast, reference):
    """Same type, dtype, shape and bits (NaN never occurs here)."""
    assert type(fast) is type(reference)
    fast_array, reference_array = np.asarray(fast), np.asarray(reference)
    assert fast_array.dtype == reference_array.dtype
    assert fast_array.shape == reference_array.shape
    if fast_array.dtype == np.longdouble:  # 80-bit values in 16 bytes: ignore the padding
        assert np.array_equal(fast_array, reference_array)
        assert np.array_equal(np.signbit(fast_array), np.signbit(reference_array))
        return
    assert fast_array.tobytes() == reference_array.tobytes(), (fast, reference)


def numpy_pairwise_sum(values: np.ndarray) -> float:
    """NumPy's pairwise summation of a float64 vector, in Python (see ``_fast.pyx``)."""
    n = values.size
    if n < 8:
        total = 0.0
        for value in values:
            total += float(value)
        return total
    if n <= 128:
        partial = [float(v) for v in values[:8]]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                partial[j] += float(values[i + j])
            i += 8
        total = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + (
            (partial[4] + partial[5]) + (partial[6] + partial[7])
        )
        for value in values[i:]:
            total += float(value)
        return total
    half = n // 2
    half -= half % 8
    return numpy_pairwise_sum(values[:half]) + numpy_pairwise_sum(values[half:])


def numpy_sums_pairwise() -> bool:
    """Does this NumPy sum a contiguous float64 vector by the classic pairwise algorithm?"""
    probe = np.random.default_rng(7).standard_normal(1000) * 10.0 ** np.arange(-5, 5).repeat(100)
    return all(
        float(np.sum(probe[:n])) == numpy_pairwise_sum(probe[:n]) for n in (5, 77, 300, 1000)
    )


# ----------------------------------------------------------------------------- strategies


@st.composite
def values_of(draw, dtype, shape):
    """Finite values in `shape`: from tiny (subnormal) to huge magnitudes, or weight-like."""
    kind = draw(st.sampled_from(["anything", "weights", "weights", "few values"]))
    width = 32 if dtype == np.float32 else 64
    if kind == "anything":  # every finite float: subnormals, ±0, the largest values
        elements = st.floats(allow_nan=False, allow_infinity=False, width=width)
        return draw(hnp.arrays(dtype, shape, elements=elements))
    if kind == "few values":  # repeats, ties, constant channels, values on thresholds
        pool = draw(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=width),
                             min_size=1, max_size=3))
        return draw(hnp.arrays(dtype, shape, elements=st.sampled_from(pool)))
    # weight-like: a mean and a spread at some magnitude between tiny and huge
    top = 33 if dtype == np.float32 else 300  # (4 + 1e4)·10^top stays finite
    exponent = draw(st.integers(-top - 8, top))
    offset = draw(st.sampled_from([0.0, 0.0, 0.3, -2.0, 1e4]))
    unit = draw(hnp.arrays(np.float64, shape, elements=st.floats(-4.0, 4.0)))
    return ((unit + offset) * 10.0**exponent).astype(dtype)


@st.composite
def weight_tensors(draw, max_dims=4, max_side=5, min_dims=0):
    """float32/float64 tensors up to 4-D, contiguous, Fortran-ordered or non-contiguous views
    (steps of ±1 or ±2 along each axis, possibly transposed)."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                                  max_side=max_side))
    layout = draw(st.sampled_from(["C", "F", "view", "view"]))
    if layout != "view":
        array = draw(values_of(dtype, shape))
        return np.asfortranarray(array) if layout == "F" else np.ascontiguousarray(array)
    steps = [draw(st.sampled_from([1, 2, -1, -2])) for _ in shape]
    base_shape = tuple(side * abs(step) for side, step in zip(shape, steps, strict=True))
    base = draw(values_of(dtype, base_shape))
    view = np.asarray(base[tuple(slice(None, None, step) for step in steps)])  # 0-d stays
    if view.ndim > 1 and draw(st.booleans()):
        view = view.transpose(draw(st.permutations(range(view.ndim))))
    return view


@st.composite
def tensors_and_axes(draw, **kwargs):
    w = draw(weight_tensors(**kwargs))
    axis = None if w.ndim == 0 else draw(st.one_of(st.none(), st.integers(0, w.ndim - 1)))
    return w, axis


@st.composite
def code_books(draw, w, axis):
    """(α, β) as the kernels receive them: float64 scalars, or one per channel (read-only)."""
    channels = 1 if axis is None else w.shape[axis]
    finite = w[np.isfinite(w)].astype(np.float64)
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0

    def one_alpha():
        return draw(st.one_of(
            st.just(0.0),  # σ = 0: every code is 1
            st.sampled_from([5e-324, 1e-300, 1e300, 1.7e308]),  # extreme steps
            st.floats(1e-3, 1.0).map(lambda f: f * scale if scale > 0 else f),
            st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
        ))

    def one_beta():
        return draw(st.one_of(
            st.sampled_from(finite.tolist() or [0.0]),  # β on a value: t = 0 exactly
            st.just(0.0),
            st.floats(allow_nan=False, allow_infinity=False),
        ))

    alpha = [one_alpha() for _ in range(channels)]
    beta = [one_beta() for _ in range(channels)]
    if axis is None:
        return np.float64(alpha[0]), np.float64(beta[0])
    alpha, beta = np.array(alpha), np.array(beta)
    alpha.setflags(write=False)
    beta.setflags(write=False)
    return alpha, beta


# ----------------------------------------------------------------------------- moments


def test_numpy_sums_by_the_pairwise_algorithm_the_kernels_reproduce():
    """The premise of the moments' bit identity: this NumPy's np.sum is the classic pairwise
    summation (replayed in Python by numpy_pairwise_sum). A NumPy that sums otherwise makes
    the compiled moments differ from the reference's; this names the cause."""
    assert numpy_sums_pairwise()


@AGREEMENT
@given(tensors_and_axes())
def test_moments_are_bit_identical(case):
    w, axis = case
    fast = uq.moments(w, axis=axis, backend="fast")
    reference = uq.moments(w, axis=axis, backend="reference")
    assert_identical(fast[0], reference[0])
    assert_identical(fast[1], reference[1])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 127, 128, 129, 136, 4095, 4096, 4097, 8200, 70_001])
def test_moments_identical_across_the_pairwise_tree_and_task_boundaries(n, dtype):
    rng = np.random.default_rng(n)
    w = (3.0 + rng.standard_normal(n) * 10.0 ** rng.integers(-3, 3, n)).astype(dtype)
    for view in (w, w[::-1], np.stack([w, w[::-1]], axis=1)[:, 0]):
        assert_identical(FAST.moments(view, None), REF.moments(view, None))
    grid = w[: n - n % 4].reshape(-1, 4) if n >= 4 else w.reshape(1, -1)
    for axis in (0, 1):
        for view in (grid, np.asfortranarray(grid), grid[::-1, ::2]):
            assert_identical(FAST.moments(view, axis)[0], REF.moments(view, axis)[0])
            assert_identical(FAST.moments(view, axis)[1], REF.moments(view, axis)[1])


@pytest.mark.parametrize(
    "values",
    [
        [0.0, -0.0, 0.0],  # constant (−0.0 == 0.0): μ is the first value, sign included
        [-0.0, 0.0, -0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0],
        [-0.0] * 20,
        [0.1] * 1000,
        [1.7e308, 1.7e308, -1.7e308, -1.7e308],  # would overflow without the scaling
        [1.7e308, 1.6e308],
        [5e-324, 0.0, 1e-323],  # subnormal: would underflow when squared
        [2.0**-1074] * 3 + [2.0**-1073],
        [1e-300, 1.5e-300, -0.5e-300],
        [1e300, -1e300, 1e-300],  # the tiny value vanishes when scaled, as in the reference
        [1.0, 1.0 + 2.0**-52, 1.0],
    ],
)
def test_moments_of_extreme_and_constant_rows_are_identical(values):
    w = np.array(values)
    assert_identical(FAST.moments(w, None), REF.moments(w, None))
    stacked = np.stack([w, w * 0.5, np.full_like(w, w[0])])
    for axis in (0, 1):
        fast, reference = FAST.moments(stacked, axis), REF.moments(stacked, axis)
        assert_identical(fast[0], reference[0])
        assert_identical(fast[1], reference[1])
    if np.all(np.abs(w) < 3e38):
        single = w.astype(np.float32)
        assert_identical(FAST.moments(single, None), REF.moments(single, None))


# ----------------------------------------------------------------------------- codes


@AGREEMENT
@given(st.data(), tensors_and_axes(), st.integers(1, 16))
def test_codes_are_identical_for_the_same_code_book(data, case, bits):
    w, axis = case
    alpha, beta = data.draw(code_books(w, axis))
    fast = uq.encode(w, alpha, beta, bits, axis=axis, backend="fast")
    reference = quiet(uq.encode, w, alpha, beta, bits, axis=axis, backend="reference")
    assert fast.dtype == code_dtype(bits)
    assert_identical(fast, reference)


@AGREEMENT
@given(st.data(), tensors_and_axes(), st.integers(1, 16),
       st.sampled_from([np.float16, np.float32, np.float64]))
def test_decode_and_fake_quantize_are_identical_for_the_same_code_book(data, case, bits, dtype):
    w, axis = case
    alpha, beta = data.draw(code_books(w, axis))
    dtype = np.dtype(dtype)
    if data.draw(st.booleans()) and w.ndim:  # another layout of the same values
        w = w[tuple(slice(None, None, -1) for _ in range(w.ndim))]
    codes = REF.encode(w, alpha, beta, bits, axis)
    expected = quiet(REF.decode, codes, alpha, beta, ZERO_POINT, axis, dtype)
    assert_identical(FAST.fake_quantize(w, alpha, beta, bits, axis, dtype), expected)
    assert_identical(FAST.decode(codes, alpha, beta, ZERO_POINT, axis, dtype), expected)
    if codes.ndim:  # the same codes in other layouts: reversed, strided, Fortran order
        strided = np.repeat(codes, 2, axis=-1)[..., ::2]
        for view in (codes[::-1], strided, np.asfortranarray(codes)):
            assert_identical(
                FAST.decode(view, alpha, beta, ZERO_POINT, axis, dtype),
                quiet(REF.decode, view, alpha, beta, ZERO_POINT, axis, dtype),
            )


def near_threshold(w, alpha, beta, axis, tolerance=1e-12):
    """Elements whose scaled value s = (w − β)/α lies within `tolerance` (relative) of a
    threshold, i.e. of an integer: there, a last-bit difference in α or β may move a code."""
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    a = np.reshape(alpha, shape if axis is not None else ())
    b = np.reshape(beta, shape if axis is not None else ())
    with np.errstate(all="ignore"):
        scaled = (w.astype(np.float64) - b) / a
        distance = np.abs(scaled - np.round(scaled))
        return (distance <= tolerance * np.maximum(np.abs(scaled), 1.0)) & (a > 0)


def decoded(function, *args, **kwargs):
    """`function`'s result, or "unrepresentable" where the levels do not fit the dtype."""
    try:
        return quiet(function, *args, **kwargs)
    except uq.api.UnrepresentableError:
        return "unrepresentable"


@AGREEMENT
@given(tensors_and_axes(), st.integers(1, 16))
def test_quantize_end_to_end_agrees_except_on_thresholds(case, bits):
    w, axis = case
    try:
        reference = uq.quantize(w, bits, axis=axis, backend="reference")
    except uq.api.UnrepresentableError:  # levels beyond the dtype: both backends refuse
        for function in (uq.quantize, uq.fake_quantize):
            with pytest.raises(uq.api.UnrepresentableError):
                function(w, bits, axis=axis, backend="fast")
        return
    fast = uq.quantize(w, bits, axis=axis, backend="fast")
    assert fast.codes.dtype == reference.codes.dtype and fast.shape == reference.shape
    differ = fast.codes != reference.codes
    on_threshold = near_threshold(w, reference.alpha, reference.beta, axis)
    event(f"codes differing on a threshold: {int(np.count_nonzero(differ & on_threshold))}")
    assert not np.any(differ & ~on_threshold)
    # and in fact, since the moments are bit-identical, nothing differs at all:
    assert_identical(fast.codes, reference.codes)
    assert_identical(fast.alpha, reference.alpha)
    assert_identical(fast.beta, reference.beta)
    for dtype in (None, np.float16, np.float64):
        got = decoded(fast.dequantize, dtype, backend="fast")
        expected = decoded(reference.dequantize, dtype, backend="reference")
        if isinstance(got, str) or isinstance(expected, str):  # both refuse, or neither
            assert got == expected
        else:
            assert_identical(got, expected)
    assert_identical(uq.fake_quantize(w, bits, axis=axis, backend="fast"),
                     quiet(uq.fake_quantize, w, bits, axis=axis, backend="reference"))


@pytest.mark.parametrize("bits", range(1, 17))
def test_the_floor_trick_is_exact_at_and_around_every_integer(bits):
    """floor(t) + 1 computed as k + (k > t ? 0 : 1), k = (double)(int)t, after the clip.

    With α = 1 and β = 0 the scaled value t is w itself, so t can be placed exactly on every
    integer of the code range and its neighbours, one ulp either side, at ±½, at −0.0 and
    far outside the clip range.
    """
    low, high = uq.code_range(bits)
    integers = np.arange(low - 3, high + 3, dtype=np.float64)
    t = np.concatenate([
        integers,
        np.nextafter(integers, -np.inf),
        np.nextafter(integers, np.inf),
        integers + 0.5,
        integers - 0.5,
        [-0.0, 0.0, 5e-324, -5e-324, 1e-300, -1e-300, 2.0**31, -(2.0**31), 2.0**63,
         -(2.0**63), 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308],
    ])
    for w in (t, t[np.abs(t) < 3e38].astype(np.float32)):  # float64 and float32 kernels
        assert_identical(FAST.encode(w, np.float64(1.0), np.float64(0.0), bits, None),
                         REF.encode(w, np.float64(1.0), np.float64(0.0), bits, None))
    # t = ±inf: a finite w over a tiny α, and w − β overflowing
    extreme = np.array([1e308, -1e308, 1.0, -1.0, 0.0])
    for alpha, beta in ((5e-324, 0.0), (1e-300, -1e308), (1e-300, 1e308)):
        assert_identical(
            FAST.encode(extreme, np.float64(alpha), np.float64(beta), bits, None),
            quiet(REF.encode, extreme, np.float64(alpha), np.float64(beta), bits, None),
        )


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_values_exactly_on_thresholds_and_next_to_them(bits):
    rng = np.random.default_rng(bits)
    low, high = uq.code_range(bits)
    for alpha, beta in ((0.25, 3.0), (0.1, -0.3), (float(rng.random()), float(rng.normal()))):
        j = np.arange(low - 1, high + 1, dtype=np.float64)
        on = beta + alpha * j
        w = np.concatenate([on, np.nextafter(on, -np.inf), np.nextafter(on, np.inf)])
        for array in (w, w.astype(np.float32)):
            assert_identical(
                FAST.encode(array, np.float64(alpha), np.float64(beta), bits, None),
                REF.encode(array, np.float64(alpha), np.float64(beta), bits, None),
            )


@pytest.mark.parametrize("alpha", [2.0**-1000, 2.0**-1001, 2.0**1000, 2.0**1001, 1e-310,
                                   2.0**-1000 * 1.5, 2.0**999 * 1.9])
def test_extreme_steps_and_quotients(alpha):
    """Steps α from subnormal to huge, with quotients (w − β)/α that underflow (tiny w − β,
    huge α) or overflow (huge w − β, tiny α)."""
    tiny = np.array([5e-324, -5e-324, 1e-310, -1e-310, 2.0**-1022, -(2.0**-1022), 0.0, -0.0])
    values = np.concatenate([tiny, tiny * 2.0**600, [1.0, -1.0, 1e300, -1e300, 1e308, -1e308]])
    with np.errstate(over="ignore"):
        values = np.concatenate([values, values * alpha, values * alpha * 0.5])
    values = values[np.isfinite(values)]
    for bits in (1, 2, 8, 16):
        for beta in (0.0, float(values[3])):
            a, b = np.float64(alpha), np.float64(beta)
            assert_identical(quiet(FAST.encode, values, a, b, bits, None),
                             quiet(REF.encode, values, a, b, bits, None))
            assert_identical(quiet(FAST.fake_quantize, values, a, b, bits, None, np.float64),
                             quiet(REF.fake_quantize, values, a, b, bits, None, np.float64))


def test_float16_results_are_rounded_once_from_float64():
    """ŵ goes straight from float64 to float16 (no double rounding through float32): decode
    each β with α = 1, q = 0, z = 0, so that ŵ = β, across every float16 rounding case."""
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    midpoints = (halves[:-1] + halves[1:]) / 2  # ties, exact in float64
    beta = np.concatenate([
        halves, midpoints, np.nextafter(midpoints, 0.0), np.nextafter(midpoints, np.inf),
        [65504.0, 65519.99, 65520.0, 65536.0, 1e300, 2.0**-25, np.nextafter(2.0**-25, 1.0),
         2.0**-26, 5e-324, 0.0],
        np.random.default_rng(0).standard_normal(5000) * 10.0 ** np.arange(-8, 5).repeat(385)[
            :5000],
    ])
    beta = np.concatenate([beta, -beta])
    codes = np.zeros(beta.size, dtype=np.int8)
    alpha = np.ones(beta.size)
    for dtype in (np.float16, np.float32, np.float64):
        expected = quiet(REF.decode, codes, alpha, beta, 0.0, 0, np.dtype(dtype))
        assert_identical(FAST.decode(codes, alpha, beta, 0.0, 0, np.dtype(dtype)), expected)


@pytest.mark.parametrize("dtype", [np.longdouble, np.dtype(">f4"), np.dtype(">f8")])
def test_other_output_dtypes_round_the_float64_result_once(dtype):
    w = np.random.default_rng(1).standard_normal((6, 5))
    q = uq.quantize(w, 3, axis=1, backend="reference")
    dtype = np.dtype(dtype)
    expected = REF.decode(q.codes, q.alpha, q.beta, ZERO_POINT, 1, dtype)
    assert_identical(FAST.decode(q.codes, q.alpha, q.beta, ZERO_POINT, 1, dtype), expected)
    assert_identical(FAST.fake_quantize(w, q.alpha, q.beta, 3, 1, dtype), expected)


def test_codes_of_other_integer_types_are_decoded_by_the_reference():
    codes = np.array([[-3, 0, 4]], dtype=np.int64)
    expected = REF.decode(codes, np.float64(0.5), np.float64(1.0), 0.0, None,
                                np.dtype(np.float32))
    assert_identical(FAST.decode(codes, np.float64(0.5), np.float64(1.0), 0.0, None,
                                  np.dtype(np.float32)), expected)


def unaligned(array):
    """A copy of `array` whose data start one byte past an aligned address."""
    raw = np.zeros(array.nbytes + 1, dtype=np.uint8)
    copy = np.frombuffer(raw.data, dtype=array.dtype, count=array.size, offset=1)
    copy = copy.reshape(array.shape)
    copy[...] = array  # (frombuffer views are writeable when the buffer is)
    return copy


@pytest.mark.parametrize(
    "layout", ["zero-d", "broadcast", "ten-d", "negative", "channel-last", "unaligned"]
)
def test_unusual_layouts(layout):
    rng = np.random.default_rng(3)
    if layout == "zero-d":
        cases = [(np.array(2.5), None), (np.array(-1.5, dtype=np.float32), None)]
    elif layout == "broadcast":  # stride 0: read-only views of one row
        cases = [(np.broadcast_to(rng.standard_normal(5), (4, 5)), axis) for axis in (None, 0, 1)]
    elif layout == "ten-d":
        w = rng.standard_normal((2, 1, 3, 1, 2, 2, 1, 3, 2, 2))[:, :, ::-1, :, ::2]
        cases = [(w, axis) for axis in (None, 0, 2, 9)]
    elif layout == "negative":
        w = rng.standard_normal((7, 9)).astype(np.float32)[::-2, ::-3]
        cases = [(w, axis) for axis in (None, 0, 1)]
    elif layout == "unaligned":
        cases = [(unaligned(rng.standard_normal((9, 4)).astype(dtype)), axis)
                 for dtype in FLOAT_DTYPES for axis in (None, 1)]
        assert not cases[0][0].flags.aligned
    else:  # the channel axis innermost in memory: α, β change with every element
        w = rng.standard_normal((50, 6))
        w[:, 2] = 0.75  # a constant channel: α = 0 there
        cases = [(w, 1), (np.asfortranarray(w), 0), (w.T, 0)]
    for w, axis in cases:
        for bits in (1, 3, 8, 16):
            fast = uq.quantize(w, bits, axis=axis, backend="fast")
            reference = uq.quantize(w, bits, axis=axis, backend="reference")
            assert_identical(fast.codes, reference.codes)
            assert_identical(fast.alpha, reference.alpha)
            assert_identical(fast.dequantize(backend="fast"),
                             reference.dequantize(backend="reference"))
            assert_identical(uq.fake_quantize(w, bits, axis=axis, backend="fast"),
                             uq.fake_quantize(w, bits, axis=axis, backend="reference"))


def test_the_kernels_use_the_references_constants():
    assert ZERO_POINT == 0.5  # passed to the fused kernel by the public layer
    w = np.linspace(-1, 1, 11)
    for bits in range(1, 17):
        assert FAST.encode(w, np.float64(0.3), np.float64(0.0), bits, None).dtype == code_dtype(
            bits)


# ----------------------------------------------------------------------------- contract

BAD_CALLS = [
    ("quantize", ([], 2), {}),
    ("quantize", ([1.0, np.nan, np.nan], 2), {}),
    ("quantize", ([[1.0, 2.0], [np.inf, 0.0]], 2), {}),
    ("quantize", ([1 + 2j], 2), {}),
    ("quantize", ([True, False], 2), {}),
    ("quantize", (["a", "b"], 2), {}),
    ("quantize", (np.array([1.0], dtype=np.longdouble), 2), {}),
    ("quantize", (np.array([2**60, 1], dtype=np.int64), 2), {}),
    ("quantize", ([1.0, 2.0], 0), {}),
    ("quantize", ([1.0, 2.0], 17), {}),
    ("quantize", ([1.0, 2.0], 2.0), {}),
    ("quantize", ([1.0, 2.0], True), {}),
    ("quantize", ([1.0, 2.0], "2"), {}),
    ("quantize", ([[1.0, 2.0]], 2), {"axis": 2}),
    ("quantize", ([[1.0, 2.0]], 2), {"axis": -3}),
    ("quantize", ([1.0, 2.0], 2), {"axis": 0.0}),
    ("quantize", ([1.0, 2.0], 2), {"axis": True}),
    ("quantize", (3.0, 2), {"axis": 0}),
    ("fake_quantize", ([np.nan], 2), {}),
    ("fake_quantize", ([1.0, 2.0], 2), {"axis": 1}),
    ("fake_quantize", ([1.0, 2.0], 99), {}),
    ("moments", ([],), {}),
    ("moments", ([1.0, -np.inf],), {}),
    ("moments", ([[1.0]],), {"axis": 5}),
    ("encode", ([1.0, 2.0], -1.0, 0.0, 2), {}),
    ("encode", ([1.0, 2.0], np.nan, 0.0, 2), {}),
    ("encode", ([1.0, 2.0], 1.0, np.inf, 2), {}),
    ("encode", ([1.0, 2.0], [1.0, 2.0], 0.0, 2), {}),
    ("encode", ([[1.0, 2.0]], [1.0, 2.0, 3.0], 0.0, 2), {"axis": 1}),
    ("encode", ([[1.0, 2.0]], [1.0, -2.0], 0.0, 2), {"axis": 1}),
    ("encode", ([1.0, 2.0], 1.0, 0.0, 0), {}),
]


def outcome(name, args, kwargs, backend):
    try:
        getattr(uq, name)(*args, backend=backend, **kwargs)
    except Exception as error:  # noqa: BLE001 - the exception is what is compared
        return type(error), str(error)
    return None


@pytest.mark.parametrize(("name", "args", "kwargs"), BAD_CALLS)
def test_bad_input_fails_the_same_way_with_both_backends(name, args, kwargs):
    fast = outcome(name, args, kwargs, "fast")
    assert fast is not None, "bad input was accepted"
    assert fast == outcome(name, args, kwargs, "reference")


def test_bad_dequantize_calls_fail_the_same_way():
    q = uq.quantize([0.1, -0.2, 0.3], 2)
    for dtype in (np.int32, "bogus", bool):
        results = []
        for backend in ("fast", "reference"):
            with pytest.raises((TypeError, ValueError)) as info:
                q.dequantize(dtype, backend=backend)
            results.append((info.type, str(info.value)))
        assert results[0] == results[1]


@settings(max_examples=60, deadline=None)
@given(tensors_and_axes(min_dims=1), st.integers(1, 16))
def test_inputs_are_never_written(case, bits):
    w, axis = case
    try:
        uq.quantize(w, bits, axis=axis, backend="reference")
    except uq.api.UnrepresentableError:  # levels beyond the dtype (tests/test_representable)
        reject()
    for frozen in (as_read_only(w), w.view()):  # a read-only copy, and w's own layout
        frozen.setflags(write=False)
        before = frozen.tobytes()
        q = uq.quantize(frozen, bits, axis=axis, backend="fast")  # a write would raise
        uq.fake_quantize(frozen, bits, axis=axis, backend="fast")
        uq.moments(frozen, axis=axis, backend="fast")
        decoded(q.dequantize, np.float16, backend="fast")  # may not fit float16: refused
        assert frozen.tobytes() == before
    codes = q.codes[tuple(slice(None, None, -1) for _ in range(q.codes.ndim))]
    assert not codes.flags.writeable  # Quantized stores its codes read-only
    codes_before = codes.tobytes()
    uq.dequantize(uq.Quantized(codes, q.alpha, q.beta, 0.5, bits, q.lam, axis, "ul2q",
                               q.dtype), backend="fast")
    assert codes.tobytes() == codes_before
    assert q.codes.tobytes() == uq.quantize(w, bits, axis=axis, backend="fast").codes.tobytes()


# ----------------------------------------------------------------------------- threads


@pytest.fixture
def threads():
    """Set the kernels' thread count for one test, restoring it afterwards."""
    previous = _fast.get_num_threads()
    yield _fast.set_num_threads
    _fast.set_num_threads(previous)


@pytest.fixture
def small_tasks_threaded():
    """Let inputs of 65,536 elements per thread use threads (the kernels' rule asks for more,
    docs/performance.md), so that the threaded paths run on arrays of a test's size."""
    previous = _fast._set_min_per_thread(65536)
    yield
    _fast._set_min_per_thread(previous)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_results_do_not_depend_on_the_thread_count(threads, small_tasks_threaded, dtype):
    rng = np.random.default_rng(11)
    w = (0.3 + rng.standard_normal((4, 100_000))).astype(dtype)  # ≥ 2 × 65536 everywhere
    cases = [(w, None), (w, 0), (w[:, ::3], None), (np.asfortranarray(w), 0), (w.T, None)]
    for array, axis in cases:
        results = []
        for count in (1, 2):
            threads(count)
            mean, std = FAST.moments(array, axis)
            used = _fast._last_thread_count()
            alpha = uq.optimal_lambda(4) * std
            codes = FAST.encode(array, alpha, mean, 4, axis)
            results.append([
                mean, std, codes,
                FAST.decode(codes, alpha, mean, ZERO_POINT, axis, np.dtype(np.float32)),
                FAST.fake_quantize(array, alpha, mean, 4, axis, np.dtype(dtype)),
            ])
            assert used == (count if _fast.HAVE_OPENMP else 1)
        for one, two in zip(*results, strict=True):
            assert_identical(one, two)
        assert_identical(results[0][0], REF.moments(array, axis)[0])
        assert_identical(results[0][1], REF.moments(array, axis)[1])


def test_small_inputs_stay_on_one_thread(threads):
    """The rule of docs/performance.md, "Threads": one thread per 2^17 elements at most."""
    threads(2)
    FAST.moments(np.ones(1000), None)
    assert _fast._last_thread_count() == 1
    w = np.ones(2 * 2**17 - 1, dtype=np.float32)
    FAST.fake_quantize(w, np.float64(0.5), np.float64(0.0), 2, None, np.float32)
    assert _fast._last_thread_count() == 1
    FAST.fake_quantize(np.append(w, w[:1]), np.float64(0.5), np.float64(0.0), 2, None,
                       np.float32)
    assert _fast._last_thread_count() == (2 if _fast.HAVE_OPENMP else 1)


def test_thread_count_setting(threads, monkeypatch):
    assert threads(3) >= 1
    assert _fast.get_num_threads() == 3
    threads(0)
    assert _fast.get_num_threads() >= 1  # 0: all usable cores
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="thread count"):
            _fast.set_num_threads(bad)
    monkeypatch.setenv("UL2Q_NUM_THREADS", "2")
    _fast._threads_from_environment()
    assert _fast.get_num_threads() == 2
    monkeypatch.setenv("UL2Q_NUM_THREADS", "many")
    with pytest.warns(RuntimeWarning, match="UL2Q_NUM_THREADS"):
        _fast._threads_from_environment()
    assert _fast.get_num_threads() == 2


def test_every_entry_point_dispatches_to_the_kernels(monkeypatch):
    """backend="fast" really runs ul2q_ref._fast (guards against a silent fallback)."""
    calls = []
    for name in ("moments", "encode", "decode", "fake_quantize"):
        original = getattr(_fast, name)

        def spy(*args, _original=original, _name=name):
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(_fast, name, spy)
    q = uq.quantize([0.5, -1.0, 2.0], 2, backend="fast")
    q.dequantize(backend="fast")
    uq.fake_quantize([0.5, -1.0, 2.0], 2, backend="fast")
    uq.encode([0.5, -1.0], 0.5, 0.0, 2, backend="fast")
    assert set(calls) == {"moments", "encode", "decode", "fake_quantize"}
    assert math.isfinite(float(q.alpha))


# ----------------------------------------------------------------------------- the shortcut
#
# Small calls: a C-contiguous array gets its plan (the walk, and the layout of the output)
# from a shortcut in C instead of the general construction in Python (_fast.pyx, "The
# shortcut for C-contiguous arrays"), and the arguments are first checked by tests in C. The
# plans must be the general ones, and the results and refusals the twin's.

UNIT_SHAPES = [(), (1,), (7,), (1, 1), (5, 1), (1, 6), (3, 4), (2, 1, 3), (1, 3, 1, 2),
               (4, 1, 1), (2, 3, 4), (3, 1, 2, 1, 2), (1, 1, 1, 5)]


def contiguous_variants(shape, dtype):
    """C-contiguous arrays of `shape`: a fresh one, and (when it has dimensions of size 1)
    the same values with odd strides on those dimensions, which NumPy still flags
    C-contiguous (the strides of a dimension of size 1 are never used)."""
    w = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    yield w
    if 1 in shape:
        odd = tuple(977 * w.itemsize if side == 1 else stride
                    for side, stride in zip(shape, w.strides, strict=True))
        view = np.lib.stride_tricks.as_strided(w, shape, odd)
        assert view.flags.c_contiguous and view.strides != w.strides
        yield view


@pytest.mark.parametrize("shape", UNIT_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_the_contiguous_shortcut_makes_the_general_plan(shape, dtype):
    for w in contiguous_variants(shape, dtype):
        for axis in [None, *range(w.ndim)]:
            plans = _fast._plans(w, axis)
            assert plans["rows"][1] == plans["rows"][0], (w.strides, axis)
            assert plans["elementwise"][1] == plans["elementwise"][0], (w.strides, axis)
            general, shortcut = plans["outputs"]  # the same memory order of the output
            for side, one, two in zip(shape, general, shortcut, strict=True):
                assert side == 1 or one == two, (general, shortcut)
    strided = np.zeros((4, 6), dtype=dtype)[:, ::2]
    assert _fast._plans(strided, 0)["rows"][1] is None  # not C-contiguous: general only


def twin_calls(w, axis, rng):
    """The four kernels' arguments for `w` along `axis`: (name, args), in the registry's
    calling convention; the code book has a zero α (a constant channel) when there are
    several channels."""
    channels = 1 if axis is None else w.shape[axis]
    alpha = rng.uniform(0.05, 0.7, channels)
    beta = rng.uniform(-0.3, 0.3, channels)
    if channels > 2:
        alpha[1] = 0.0
    bits = int(rng.integers(1, 9))
    codes = kernels.reference.encode(w, alpha, beta, bits, axis, code_dtype(bits))
    return [
        ("moments", (w, axis)),
        ("encode", (w, alpha, beta, bits, axis, code_dtype(bits))),
        ("decode", (codes, alpha, beta, ZERO_POINT, axis, np.dtype(np.float32))),
        ("fake_quantize", (w, alpha, beta, bits, ZERO_POINT, axis, np.dtype(np.float16))),
        ("fake_quantize", (w, alpha, beta, bits, ZERO_POINT, axis, np.dtype(w.dtype))),
    ]


def assert_twins_agree(w, axis, rng):
    for name, args in twin_calls(w, axis, rng):
        with np.errstate(all="ignore"):
            expected = getattr(kernels.reference, name)(*args)
        result = getattr(_fast, name)(*args)
        for one, two in zip(result if name == "moments" else [result],
                            expected if name == "moments" else [expected], strict=True):
            assert_identical(one, two)
            if name != "moments" and w.flags.c_contiguous:
                assert one.flags.c_contiguous


SMALL_SIZES = [*range(1, 18), 127, 128, 129, 136, 255, 256, 257]
TASK_SIZES = [4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385, 32767, 32768, 32769]


@pytest.mark.parametrize("n", SMALL_SIZES + TASK_SIZES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_small_and_task_boundary_sizes_per_tensor_in_every_layout(n, dtype):
    rng = np.random.default_rng(n)
    w = (0.1 + rng.standard_normal(n)).astype(dtype)
    for array in (w, w[::-1], np.repeat(w, 2)[::2], w.reshape(1, n, 1)):
        assert_twins_agree(array, None, rng)


@pytest.mark.parametrize("n", SMALL_SIZES + [4097, 16385])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_small_and_task_boundary_sizes_per_channel_in_every_layout(n, dtype):
    """Per channel on axis 0 (the shortcut's usual case: output channels first), on an
    inner axis and on the last one, for C-contiguous, Fortran-ordered and strided arrays."""
    rng = np.random.default_rng(n)
    for channels in (1, 2, 3, 17):
        w = (0.1 + rng.standard_normal((channels, n))).astype(dtype)
        w[channels // 2] = 0.25  # a constant channel
        cases = [(w, 0), (w, 1), (np.asfortranarray(w), 0), (w[:, ::2], 0), (w.T, 1),
                 (w.reshape(channels, 1, n, 1), 0), (w.reshape(1, channels, n), 1),
                 (w.reshape(channels, n, 1), 2)]
        for array, axis in cases:
            if array.size:
                assert_twins_agree(array, axis, rng)


def refusal(function, args):
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - the exception is what is compared
        return type(error)
    return None


def test_arguments_the_quick_checks_do_not_know_are_judged_as_before():
    """The checks in C accept only NumPy's own dtype objects; anything else (a dtype with
    metadata, byte-swapped data, a strided α, a subclass, a dtype named by a string, an axis
    that is not an int) goes through the full checks: accepted with the twin's bits, or
    refused with the twin's exception type."""

    class Subclass(np.ndarray):
        pass

    rng = np.random.default_rng(5)
    w = rng.standard_normal((3, 4))
    one, three = np.array([0.4]), np.array([0.4, 0.0, 0.3])
    with_metadata = np.dtype(np.float64, metadata={"unit": "V"})
    swapped = w.astype(">f8")
    codes = np.ones((3, 4), dtype=np.int16)
    f32 = np.dtype(np.float32)
    calls = [
        ("moments", (w.astype(with_metadata), None)),
        ("moments", (swapped, None)),
        ("moments", (w.view(Subclass), 0)),
        ("moments", (w, np.int64(1))),
        ("moments", (w, True)),
        ("moments", (w, 0.0)),
        ("moments", (w, 2**70)),
        ("moments", (w.astype(np.float32)[:0], None)),
        ("encode", (w, one.astype(with_metadata), one, 2, None, np.dtype(np.int8))),
        ("encode", (w, one.astype(">f8"), one, 2, None, np.dtype(np.int8))),
        ("encode", (w, np.repeat(three, 2)[::2], three, 3, 0, "int8")),
        ("encode", (w, three.view(Subclass), three, 3, 0, np.int16)),
        ("encode", (w, three, three, 3, np.int64(0), np.dtype(np.int8))),
        ("encode", (w, three, three, 2.0, 0, np.dtype(np.int8))),
        ("encode", (w, three, three, 2.5, 0, np.dtype(np.int8))),
        ("encode", (w, three, three, 3, 0.0, np.dtype(np.int8))),
        ("decode", (codes.astype(">i2"), one, one, 0.5, None, f32)),
        ("decode", (codes.view(Subclass), one, one, 0.5, None, "float64")),
        ("decode", (codes, one, one, 0.5, None, np.dtype(">f4"))),
        ("decode", (codes.astype(np.uint16), one, one, 0.5, None, f32)),
        ("fake_quantize", (w, three, three, 2, 0.5, 0, with_metadata)),
        ("fake_quantize", (w, three, three, 2, 0.5, 0, np.float16)),
        ("fake_quantize", (w, three, three, 2, 0.5, 0, "bogus")),
        ("fake_quantize", (w, three, three, 2, 0.5, True, f32)),
        ("fake_quantize", (w[:, :3], three, three, 2, 0.5, 1, f32)),
        ("fake_quantize", (w, three, three, 2, "0.5", 0, f32)),
    ]
    accepted = 0
    for name, args in calls:
        kind = refusal(getattr(kernels.reference, name), args)
        assert refusal(getattr(_fast, name), args) is kind, (name, args)
        if kind is None:
            accepted += 1
            with np.errstate(all="ignore"):
                expected = getattr(kernels.reference, name)(*args)
            result = getattr(_fast, name)(*args)
            pairs = zip(result, expected, strict=True) if name == "moments" else [
                (result, expected)]
            for one_result, one_expected in pairs:
                assert one_result.dtype == one_expected.dtype
                assert_identical(np.asarray(one_result), np.asarray(one_expected))
    assert 8 <= accepted < len(calls)
