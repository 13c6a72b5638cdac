"""One composition of μL2Q: the spec functions of ul2q_ref.ul2q are what every caller runs.

* ``ul2q.quantize`` / ``fake_quantize`` / ``statistics`` / ``encode`` with their default step
  implementations (the NumPy definition, :data:`ul2q_ref.ul2q.DEFINITION`) give, bit for bit,
  what the public :func:`ul2q_ref.quantize` gives with either backend, for every profile,
  per tensor and per channel, float32 and float64. The oracle is the definition run on its
  own (NumPy), the thing compared is the public call (validation, backend, compiled
  kernels); under the paper and caffe profiles the oracle is the profile record's steps run
  with the definition's kernels.
* The public layer, the trainer's quantiser, the PyTorch bridge and the exact profile record
  all reach the composition (a spy on ``ul2q.statistics`` counts them): nothing re-sequences
  moments → code book → representability check → kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref import profiles, ul2q

BACKENDS = ["reference"] + (["fast"] if uq.HAVE_FAST else [])


def assert_identical(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


def assert_same_result(got, expected):
    assert_identical(got.codes, expected.codes)
    assert_identical(got.alpha, expected.alpha)
    assert_identical(got.beta, expected.beta)
    assert (got.lam, got.axis, got.bits, got.dtype, got.zero_point, got.scheme) == \
        (expected.lam, expected.axis, expected.bits, expected.dtype, expected.zero_point,
         expected.scheme)
    assert_identical(got.dequantize(), expected.dequantize())


def weights(dtype, seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((6, 5, 3)) * 0.05 + 0.01).astype(dtype)
    w[2] = w[2, 0, 0]  # a constant channel along axis 0: σ = 0, α = 0
    return w


CASES = [(dtype, axis) for dtype in (np.float32, np.float64) for axis in (None, 0, 2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("dtype", "axis"), CASES)
@pytest.mark.parametrize("bits", [1, 2, 4, 8, 12, 16])
def test_the_spec_composition_is_the_public_quantize(backend, dtype, axis, bits):
    w = weights(dtype, bits)
    expected = ul2q.quantize(w, bits, axis, w.dtype)  # the definition, NumPy, no checks
    assert_same_result(uq.quantize(w, bits, axis=axis, backend=backend), expected)
    assert_identical(uq.fake_quantize(w, bits, axis=axis, backend=backend),
                     ul2q.fake_quantize(w, bits, axis, w.dtype))
    book = ul2q.statistics(w, bits, axis)
    assert_identical(book.alpha, np.atleast_1d(expected.alpha))
    assert_identical(uq.encode(w, book.alpha if axis is not None else book.alpha[0],
                               book.beta if axis is not None else book.beta[0], bits,
                               axis=axis, backend=backend),
                     ul2q.encode(w, book.alpha, book.beta, bits, axis))


PROFILE_CASES = [(profile, dtype, axis) for profile in ("paper", "caffe")
                 for dtype, axis in CASES if profiles.get(profile).per_channel or axis is None]
"""Caffe has no per-channel mode (quantize refuses an axis): per tensor only."""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("profile", "dtype", "axis"), PROFILE_CASES)
@pytest.mark.parametrize("bits", [2, 8, 10])
def test_every_profile_is_its_records_steps_on_the_definition(backend, profile, dtype, axis,
                                                              bits):
    record = profiles.get(profile)
    w = weights(dtype, bits)
    expected = profiles.quantize_with_profile(record, record.prepare(w), bits, axis, w.dtype,
                                              ul2q.DEFINITION)
    got = uq.quantize(w, bits, axis=axis, backend=backend, profile=profile)
    assert_same_result(got, expected)
    assert_identical(got.std, expected.std)


def test_the_exact_profile_record_is_the_definition():
    w = weights(np.float64, 0)
    record = profiles.get("exact")
    expected = ul2q.quantize(w, 3, 0, w.dtype)
    got = profiles.quantize_with_profile(record, w, 3, 0, w.dtype, ul2q.DEFINITION)
    assert_identical(got.codes, expected.codes)
    assert_identical(got.alpha, expected.alpha)


def test_every_caller_runs_the_composition(monkeypatch):
    calls = []
    original = ul2q.statistics

    def spy(*args, **kwargs):
        calls.append(kwargs.get("kernels", args[3] if len(args) > 3 else None))
        return original(*args, **kwargs)

    monkeypatch.setattr(ul2q, "statistics", spy)
    w = weights(np.float32, 1)

    def count(action):
        calls.clear()
        action()
        return len(calls)

    assert count(lambda: uq.quantize(w, 2)) == 1
    assert count(lambda: uq.fake_quantize(w, 2, axis=0)) == 1
    assert count(lambda: uq.quantize(w, 2, profile="exact")) == 1
    assert count(lambda: profiles.statistics(w, 2, None, "exact")) == 1

    from ul2q_ref.nn.qat import make_quantizer

    quantizer = make_quantizer("ul2q", 2)
    assert quantizer is not None
    assert count(lambda: quantizer(w)) == 1  # the first, validated call
    assert count(lambda: quantizer(w)) == 1  # the fast path: still the composition
    torch = pytest.importorskip("torch", reason="the PyTorch bridge needs torch")
    from ul2q_ref.torch import ops

    assert count(lambda: ops.fake_quantize(torch.from_numpy(w), 2)) == 1


def test_the_finiteness_check_is_the_same_for_both_backends():
    w = weights(np.float64, 2)
    w[4, 1, 2] = np.nan
    messages = set()
    for backend in BACKENDS:
        for function, kwargs in ((uq.quantize, {"bits": 2}),
                                 (uq.fake_quantize, {"bits": 2, "axis": 0}),
                                 (uq.moments, {})):
            with pytest.raises(ValueError, match="non-finite") as error:
                function(w, backend=backend, **kwargs)
            messages.add(str(error.value))
    assert messages == {"w contains 1 non-finite value (NaN or ±inf); "
                        "the first is nan at index (4, 1, 2)"}
