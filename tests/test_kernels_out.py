"""``fake_quantize(..., out=)`` of both kernel twins: the same bits as a fresh result, written
into the given array, and the same refusals (the PyTorch bridge reuses ŵ's memory with it)."""

from __future__ import annotations

import numpy as np
import pytest

from ul2q_ref import kernels as registry
from ul2q_ref.kernels import reference

TWINS = [pytest.param(reference, id="reference")]
if registry.fast is not None:
    TWINS.append(pytest.param(registry.fast, id="fast"))


def _book(weights: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    mean, std = reference.moments(weights, axis)
    return 0.9957 * std, mean


LAYOUTS = {
    "c-contiguous": lambda a: a,
    "fortran": np.asfortranarray,
    "transposed": lambda a: a.transpose(2, 0, 1),
    "strided": lambda a: a[:, ::2, :],
}


@pytest.mark.parametrize("kernels", TWINS)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("axis", [None, 0, 1, 2])
@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float64, np.float64),
                                    (np.float32, np.float16), (np.float64, np.float32)])
def test_out_gets_the_bits_of_a_fresh_result(kernels, layout, axis, dtypes):
    source, target = dtypes
    generator = np.random.default_rng(7)
    weights = LAYOUTS[layout](generator.normal(0.1, 0.3, (6, 8, 5)).astype(source))
    alpha, beta = _book(weights, axis)
    fresh = reference.fake_quantize(weights, alpha, beta, 2, 0.5, axis, np.dtype(target))
    out = np.full(weights.shape, np.nan, dtype=target)
    got = kernels.fake_quantize(weights, alpha, beta, 2, 0.5, axis, np.dtype(target), out)
    assert got is out
    bits = np.uint16 if target == np.float16 else np.uint32 if target == np.float32 else np.uint64
    np.testing.assert_array_equal(out.view(bits), fresh.astype(target).view(bits))


@pytest.mark.parametrize("kernels", TWINS)
def test_out_into_a_strided_array(kernels):
    weights = np.linspace(-1.0, 1.0, 60, dtype=np.float32).reshape(6, 10)
    alpha, beta = _book(weights, 0)
    holder = np.zeros((6, 20), dtype=np.float32)
    out = holder[:, ::2]
    kernels.fake_quantize(weights, alpha, beta, 3, 0.5, 0, np.dtype(np.float32), out)
    expected = reference.fake_quantize(weights, alpha, beta, 3, 0.5, 0, np.dtype(np.float32))
    np.testing.assert_array_equal(out, expected)
    assert not holder[:, 1::2].any()  # the other columns untouched


BAD_OUTS = {
    "wrong shape": lambda w: np.empty((w.size,), np.float32),
    "wrong dtype": lambda w: np.empty(w.shape, np.float64),
    "read-only": lambda w: np.broadcast_to(np.float32(0), w.shape),
    "not an array": lambda w: [0.0] * w.size,
    "the weights themselves": lambda w: w,
}


@pytest.mark.parametrize("kernels", TWINS)
@pytest.mark.parametrize("case", sorted(BAD_OUTS))
def test_a_bad_out_is_refused_by_both_twins(kernels, case):
    weights = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    alpha, beta = _book(weights, None)
    with pytest.raises(ValueError, match="out must"):
        kernels.fake_quantize(weights, alpha, beta, 2, 0.5, None, np.dtype(np.float32),
                              BAD_OUTS[case](weights))
