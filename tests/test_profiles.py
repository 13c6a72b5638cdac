"""The λ source / arithmetic profiles: exact (unchanged), paper, and the Caffe float32 code."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ul2q_ref as uq
from tests.conftest import bit_widths, weight_arrays
from ul2q_ref import profiles
from ul2q_ref.gaussian import PAPER_TABLE_I
from ul2q_ref.reproduce.lambda_loss import effective_lambda, expected_range

ROOT = Path(__file__).resolve().parents[1]
f32 = np.float32


def bits_of(values) -> np.ndarray:
    """Bit patterns (NaNs made equal), for bit-for-bit comparisons."""
    array = np.asarray(values)
    view = array.view(np.uint32 if array.dtype == np.float32 else np.uint64).copy()
    view[np.isnan(array)] = 0
    return view


# --------------------------------------------------------------------------- exact


@given(weight_arrays(), bit_widths)
def test_exact_profile_is_the_default_bit_for_bit(w, bits):
    default = uq.quantize(w, bits)
    explicit = uq.quantize(w, bits, profile="exact")
    assert type(explicit) is uq.Quantized
    np.testing.assert_array_equal(explicit.codes, default.codes)
    assert bits_of(np.float64(explicit.alpha)) == bits_of(np.float64(default.alpha))
    assert explicit.beta == default.beta and explicit.lam == default.lam
    np.testing.assert_array_equal(bits_of(uq.fake_quantize(w, bits, profile="exact")),
                                  bits_of(uq.fake_quantize(w, bits)))


def test_bad_profile_and_backend_are_rejected_by_name():
    with pytest.raises(ValueError, match="profile must be one of 'exact', 'paper', 'caffe'"):
        uq.quantize([1.0, 2.0], 2, profile="Caffe")
    with pytest.raises(ValueError, match="profile must be one of"):
        uq.fake_quantize([1.0, 2.0], 2, profile=None)
    with pytest.raises(ValueError, match="backend must be one of"):
        uq.quantize([1.0, 2.0], 2, profile="caffe", backend="gpu")
    with pytest.raises(ValueError, match="bits must be an integer from 1 to 16"):
        uq.quantize([1.0, 2.0], 17, profile="paper")


# --------------------------------------------------------------------------- paper


@given(weight_arrays(dtypes=(np.float64,)), st.integers(1, 8))
def test_paper_profile_uses_table_one_with_the_exact_statistics_and_code_rule(w, bits):
    q = uq.quantize(w, bits, profile="paper")
    mean, std = uq.moments(w)
    lam = PAPER_TABLE_I[bits][0]
    assert q.lam == lam and q.beta == mean and q.alpha == lam * std
    np.testing.assert_array_equal(q.codes, uq.encode(w, q.alpha, q.beta, bits))
    np.testing.assert_array_equal(q.dequantize(), uq.dequantize(q))  # affine decoding


@pytest.mark.parametrize("bits", [9, 12, 16])
def test_paper_range_rule_above_eight_bits_multiplies_by_sigma_twice(bits):
    w = np.random.default_rng(bits).normal(0.0, 1.0, 500)
    q = uq.quantize(w, bits, profile="paper")
    _, std = uq.moments(w)
    value_range = w.max() - w.min()
    assert q.lam == value_range / (2.0**bits - 1.0)
    assert q.alpha == q.lam * std
    # Scaling the weights by c scales α by c², not by c: the step is not scale invariant.
    scaled = uq.quantize(w * 0.05, bits, profile="paper")
    assert scaled.alpha / q.alpha == pytest.approx(0.05**2, rel=1e-12)
    assert uq.quantize(w * 0.05, bits).alpha / uq.quantize(w, bits).alpha == pytest.approx(0.05)


def test_paper_per_channel_range_rule_has_one_lambda_per_channel():
    w = np.random.default_rng(3).normal(0.0, 1.0, (3, 50)) * np.array([[1.0], [2.0], [0.5]])
    q = uq.quantize(w, 10, axis=0, profile="paper")
    assert q.lam is None and q.profile == "paper"
    for channel in range(3):
        part = uq.quantize(w[channel], 10, profile="paper")
        assert q.alpha[channel] == part.alpha and q.beta[channel] == part.beta
        np.testing.assert_array_equal(q.codes[channel], part.codes)
    with pytest.raises(ValueError, match="needs value_range"):
        profiles.paper_lambda(9)


# --------------------------------------------------------------------------- caffe: scalar model


def caffe_scalar(w: np.ndarray, bits: int):
    """An independent, slow re-implementation of the Caffe arithmetic with NumPy scalars.

    Written from the C++ (``caffe_cpu_meanstd``, ``Blob::ulq_weights``, ``caffe_cpu_ulq``):
    float variables are np.float32 scalars, double literals and std::pow promote to
    np.float64, and each assignment to a float rounds with np.float32(...).
    """
    x = [f32(v) for v in np.asarray(w, dtype=np.float32).reshape(-1)]
    count = f32(len(x))  # int count converted to float, as C++ does
    total = f32(0.0)
    for value in x:
        total = f32(total + value)
    mean = f32(total / count)
    dot = f32(0.0)
    for value in x:  # reference BLAS sdot order: products rounded to float, left to right
        dot = f32(dot + f32(value * value))
    with np.errstate(invalid="ignore"):
        std = f32(math.sqrt(v) if (v := float(f32(dot / count)) - float(mean) ** 2) >= 0
                  else math.nan)
    if bits > 8:
        lam = f32(2 * 3.1 * float(std) / (2.0**bits - 1.0))
    else:
        lam = f32(profiles.caffe.LAMBDA_TABLE[bits - 1])
    alpha = f32(float(f32(lam * std)) + 1e-7)
    r = f32(1.0 / float(alpha))
    low, high = f32(1 - 2 ** (bits - 1)), f32(2 ** (bits - 1))
    codes, outputs = [], []
    for value in x:
        with np.errstate(invalid="ignore", over="ignore"):
            y = f32(float(f32(f32(value - mean) * r)) + 0.5)
        if y > high:
            y = high
        if y < low:
            y = low
        q = f32(math.floor(float(y) + 0.5) if y > 0.0 else
                (math.ceil(float(y) - 0.5) if not math.isnan(y) else math.nan))
        codes.append(q)
        outputs.append(f32((float(q) - 0.5) / float(r) + float(mean)))
    return mean, std, lam, alpha, np.array(codes, dtype=np.float64), np.array(outputs)


caffe_inputs = hnp.arrays(
    np.float32,
    st.integers(1, 40),
    elements=st.floats(-3.0, 3.0, width=32) | st.sampled_from([0.3, -0.3, 0.0, 1e-40]),
)


@given(caffe_inputs, st.integers(1, 16))
def test_caffe_profile_reproduces_the_scalar_model_element_for_element(w, bits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", profiles.NegativeVarianceWarning)
        q = uq.quantize(w, bits, profile="caffe")
        w_hat = q.dequantize()
    mean, std, lam, alpha, codes, outputs = caffe_scalar(w, bits)
    assert bits_of(np.float32(q.beta)) == bits_of(mean)
    assert bits_of(np.float32(q.std)) == bits_of(std)
    assert bits_of(np.float32(q.alpha)) == bits_of(alpha)
    if not np.isnan(lam):
        assert np.float32(q.lam) == lam
    assert w_hat.dtype == np.float32
    np.testing.assert_array_equal(bits_of(w_hat), bits_of(outputs.astype(np.float32)))
    defined = ~np.isnan(codes)
    np.testing.assert_array_equal(q.codes[defined], codes[defined])
    assert np.all(q.codes[~defined] == 0)


def test_caffe_profile_reproduces_the_scalar_model_on_larger_tensors():
    rng = np.random.default_rng(11)
    for bits in (1, 2, 4, 8, 9, 16):
        w = rng.normal(0.02, 0.07, 600).astype(np.float32)
        q = uq.quantize(w, bits, profile="caffe")
        mean, std, lam, alpha, codes, outputs = caffe_scalar(w, bits)
        assert np.float32(q.alpha) == alpha and np.float32(q.beta) == mean
        np.testing.assert_array_equal(q.codes, codes)
        np.testing.assert_array_equal(bits_of(q.dequantize()), bits_of(outputs.astype(f32)))


def test_caffe_sums_are_sequential_not_pairwise():
    """The float32 sums run strictly left to right (np.sum would sum pairwise)."""
    rng = np.random.default_rng(0)
    rows = rng.normal(0.0, 1.0, (4, 333)).astype(np.float32) * f32(1000.0)
    sums = profiles.caffe.sequential_sum(rows)
    for row, total in zip(rows, sums, strict=True):
        expected = f32(0.0)
        for value in row:
            expected = f32(expected + value)
        assert total == expected
    # On this input the pairwise order gives another float32 result: order matters.
    assert np.any(sums != rows.sum(axis=1, dtype=np.float32))
    cancel = np.array([1e8, 1.0, 1.0, 1.0, 1.0, -1e8] + [0.0] * 10, dtype=np.float32)[None]
    assert profiles.caffe.sequential_sum(cancel)[0] == 0.0  # 1e8 + 1 = 1e8 in float32, each time


def test_caffe_profile_refuses_a_channel_axis():
    w = np.random.default_rng(5).normal(0.0, 0.1, (3, 4))
    for function in (uq.quantize, uq.fake_quantize):
        with pytest.raises(ValueError, match=r"^profile='caffe' has no per-channel mode .*"
                                             r"axis=None"):
            function(w, 3, axis=0, profile="caffe")
    assert uq.quantize(w, 3, axis=1, profile="paper").alpha.shape == (4,)


def test_caffe_per_channel_is_each_channel_on_its_own_and_float64_is_rounded():
    """The conformance vectors' per-channel extension: each channel as its own blob."""
    rng = np.random.default_rng(5)
    w = rng.normal(0.0, 0.1, (3, 4, 5))
    record = profiles.get("caffe")
    q = profiles.quantize_with_profile(record, record.prepare(w), 3, 1, np.dtype(np.float64))
    assert q.dequantize().dtype == np.float64
    for channel in range(4):
        part = uq.quantize(w[:, channel].astype(np.float32), 3, profile="caffe")
        assert q.alpha[channel] == part.alpha and q.beta[channel] == part.beta
        np.testing.assert_array_equal(q.codes[:, channel], part.codes)
        np.testing.assert_array_equal(q.dequantize()[:, channel],
                                      part.dequantize().astype(np.float64))
    with pytest.raises(ValueError, match="overflows float32"):
        uq.quantize([1e300, 1.0], 2, profile="caffe")
    assert uq.fake_quantize(np.arange(6), 2, profile="caffe").dtype == np.float64


def test_profile_decoding_matches_the_module_function_and_fake_quantize():
    w = np.random.default_rng(8).normal(0.0, 0.05, (4, 9)).astype(np.float32)
    for profile in profiles.PROFILES:
        axis = None if profile == "caffe" else 0
        q = uq.quantize(w, 4, axis=axis, profile=profile)
        np.testing.assert_array_equal(q.dequantize(), profiles.dequantize(q))
        np.testing.assert_array_equal(q.dequantize(np.float64),
                                      profiles.dequantize(q, np.float64))
        np.testing.assert_array_equal(uq.fake_quantize(w, 4, axis=axis, profile=profile),
                                      q.dequantize())
        assert q.dequantize().dtype == np.float32
    ternary = uq.schemes.ternary(w, axis=0)  # a plain Quantized decodes with its own z
    np.testing.assert_array_equal(profiles.dequantize(ternary), ternary.dequantize())


# --------------------------------------------------------------------------- defects
# Each test is one entry of docs/crosscheck.md, "Defects", with the minimal input shown there.


def test_defect_alpha_gets_1e7_added_so_a_zero_weight_is_not_reconstructed_as_zero():
    q = uq.quantize(np.float32([0.0]), 2, profile="caffe")
    assert np.float32(q.alpha) == np.float32(1e-7) and q.beta == 0.0
    *_, model_outputs = caffe_scalar(np.float32([0.0]), 2)  # the independent model
    assert q.dequantize()[0] == model_outputs[0]
    assert q.dequantize()[0] == pytest.approx(5e-8, rel=1e-6)  # (1 − ½)/r, r = f32(1/f32(1e-7))
    assert uq.fake_quantize(np.float32([0.0]), 2)[0] == 0.0


def test_defect_constant_tensor_gives_nan_everywhere_with_a_warning():
    x = f32(0.3)  # the one-pass variance of [0.3] as the scalar model computes it
    variance = float(f32(f32(f32(0.0) + f32(x * x)) / f32(1.0))) - float(x) ** 2
    assert variance < 0
    with pytest.warns(profiles.NegativeVarianceWarning,
                      match=re.escape(f"negative value ({variance:.3g})")):
        q = uq.quantize(np.float32([0.3]), 2, profile="caffe")
    assert np.isnan(q.alpha) and np.isnan(q.std) and np.all(np.isnan(q.dequantize()))
    with pytest.warns(profiles.NegativeVarianceWarning):
        assert np.all(np.isnan(uq.fake_quantize(np.full(5, 0.3, np.float32), 2,
                                                profile="caffe")))
    assert uq.fake_quantize(np.float32([0.3]), 2)[0] == np.float32(0.3)


def test_defect_subnormal_weights_give_nan_because_their_squares_underflow():
    with pytest.warns(profiles.NegativeVarianceWarning):
        q = uq.quantize(np.float32([1e-40, 2e-40]), 2, profile="caffe")
    assert np.isnan(q.alpha)
    assert uq.quantize(np.float32([1e-40, 2e-40]), 2).alpha > 0


def test_defect_one_pass_variance_loses_a_small_spread_around_a_large_mean():
    w = np.float32([1000.0, 1000.001])
    caffe = uq.quantize(w, 2, profile="caffe")
    _, std = uq.moments(w)
    assert std == 0.00048828125  # the two float32 values are 2⁻¹⁰ apart
    mean, model_std, _, model_alpha, _, _ = caffe_scalar(w, 2)  # the independent model
    assert np.float32(caffe.std) == model_std and np.float32(caffe.alpha) == model_alpha
    assert 300 < float(caffe.std) / std < 330  # 313 times too large


@pytest.mark.parametrize("profile", ["paper", "caffe"])
def test_defect_sigma_enters_twice_above_eight_bits(profile):
    w = np.random.default_rng(1).normal(0.0, 1.0, 4000).astype(np.float32)
    big = uq.quantize(w, 9, profile=profile)
    small = uq.quantize(w * np.float32(0.05), 9, profile=profile)
    assert float(small.alpha) / float(big.alpha) == pytest.approx(0.0025, rel=5e-3)
    # 20 times smaller weights clip far more: most codes hit the ends of the range
    assert np.mean(np.abs(small.codes) >= 255) > 0.5 > np.mean(np.abs(big.codes) >= 255)


def test_defect_caffe_lambda_table_is_neither_table_one_nor_the_optimum():
    for k in range(1, 9):
        caffe, paper, exact = (profiles.caffe.LAMBDA_TABLE[k - 1], PAPER_TABLE_I[k][0],
                               uq.optimal_lambda(k))
        assert round(caffe, 4) != paper
        assert caffe != exact
    assert profiles.caffe.LAMBDA_TABLE[0] == 1.5950161625215948  # paper 1.5959, λ₁* 1.59577


def test_defect_reciprocal_multiply_moves_a_value_across_a_threshold():
    w, alpha = np.float32([0.5]), np.float32(0.1)
    exact_code = uq.encode(w, float(alpha), 0.0, 8)[0]  # 0.5/0.1f = 4.99999993 → cell 5
    caffe_code = profiles.encode(w, float(alpha), 0.0, 8, None, "caffe")[0]  # 0.5·10 = 5 → 6
    assert (exact_code, caffe_code) == (5, 6)


def test_defect_negative_ties_go_to_the_lower_cell():
    w = np.float32([-0.25, 0.0, 0.25])  # thresholds t = −1, 0, 1 for α = 0.25, β = 0
    exact = uq.encode(w, 0.25, 0.0, 2)
    caffe = profiles.encode(w, 0.25, 0.0, 2, None, "caffe")
    np.testing.assert_array_equal(exact, [0, 1, 2])
    np.testing.assert_array_equal(caffe, [-1, 1, 2])


def caffe_decode(codes, alpha, mean):
    return profiles.caffe.decode(codes, np.array([alpha]), np.array([mean]), 0.5, None,
                                 np.float32)


def test_defect_the_stored_alpha_does_not_decode_caffes_weights():
    q, alpha = np.array([-2]), np.float32(0.01)
    caffe = caffe_decode(q, float(alpha), 0.0)[0]
    affine = np.float32(float(alpha) * (-2.5))
    assert caffe == np.float32(-0.025) and affine == np.float32(-0.024999999)
    assert caffe != affine
    rng = np.random.default_rng(0)
    alphas = (10.0 ** rng.uniform(-3, 0, 1000)).astype(np.float32)
    means = rng.normal(0.0, 0.1, 1000).astype(np.float32)
    codes = rng.integers(-7, 9, 1000)
    decoded = np.array([caffe_decode(np.array([q]), float(a), float(m))[0]
                        for q, a, m in zip(codes, alphas, means, strict=True)])
    affine = (alphas.astype(np.float64) * (codes - 0.5) + means).astype(np.float32)
    assert 0.15 < np.mean(decoded != affine) < 0.35  # "roughly a quarter"


# --------------------------------------------------------------------------- loss table


def test_docs_profile_loss_table_matches_the_code():
    text = (ROOT / "docs" / "crosscheck.md").read_text(encoding="utf-8")
    table = text.split("<!-- profile-loss-table -->")[1].split("<!-- /profile-loss-table -->")[0]
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 16
    for line in rows:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        k = int(cells[0])
        assert float(cells[1]) == pytest.approx(uq.optimal_lambda(k), rel=5e-4)
        columns = [("paper", 1.0), ("paper", 0.05), ("caffe", 1.0), ("caffe", 0.05)]
        for (profile, std), lam_text, excess_text in zip(columns, cells[2::2], cells[3::2],
                                                         strict=True):
            lam = effective_lambda(profile, k, std=std)
            best = uq.expected_loss(uq.optimal_lambda(k), k)
            excess = 100.0 * (uq.expected_loss(lam, k) - best) / best
            assert float(lam_text) == pytest.approx(lam, rel=5e-4)
            assert float(excess_text) == pytest.approx(excess, rel=5e-3, abs=5e-4)


def test_expected_range_of_normal_samples():
    assert expected_range(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-10)
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((2000, 4096))
    empirical = float(np.mean(samples.max(axis=1) - samples.min(axis=1)))
    assert expected_range(4096) == pytest.approx(empirical, rel=5e-3)
