"""The training loop's μL2Q quantizer: the public call's results, without its per-step checks."""

from __future__ import annotations

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref.nn.qat import make_quantizer

BACKENDS = ["reference"] + (["fast"] if uq.HAVE_FAST else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", [1, 2, 8])
def test_every_step_gives_the_public_calls_bits(backend, dtype, bits):
    rng = np.random.default_rng(bits)
    quantizer = make_quantizer("ul2q", bits, backend=backend)
    weights = rng.standard_normal((20, 1, 5, 5)).astype(dtype)
    for _ in range(5):  # the first call validates, the later ones run the kernels directly
        got = quantizer(weights)
        expected = uq.fake_quantize(weights, bits, backend="reference")
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert np.array_equal(got.view(np.uint8), expected.view(np.uint8))
        weights = weights - np.asarray(0.01, dtype) * rng.standard_normal(weights.shape)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_first_call_checks_the_input(backend):
    quantizer = make_quantizer("ul2q", 2, backend=backend)
    bad = np.ones((3, 4), dtype=np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"w contains 1 non-finite value .* index \(1, 2\)"):
        quantizer(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_dtype_or_shape_is_checked_again(backend):
    rng = np.random.default_rng(0)
    quantizer = make_quantizer("ul2q", 2, backend=backend)
    quantizer(rng.standard_normal((4, 4)).astype(np.float32))
    bad = np.ones((5, 4), dtype=np.float32)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        quantizer(bad)  # another shape: through the public call again
    half = rng.standard_normal((4, 4)).astype(np.float16)
    got = quantizer(half)  # float16 is not a kernel dtype: always the public call
    assert got.dtype == np.float16
    assert np.array_equal(got, uq.fake_quantize(half, 2, backend="reference"))
