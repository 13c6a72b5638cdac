"""Review of the eager CPU route and the composition micro-changes: inputs where the new
fast branches behaved differently from the code they replaced (78a9a8e).

Oracles are values computed by plain NumPy (λ·σ) or behaviour of ``torch.nn.Module``
itself, never the code under test.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import ul2q_ref
from ul2q_ref import ul2q

# --------------------------------------------------------------------------- ul2q.code_book


@pytest.mark.parametrize("lam", [0.75, np.float64(0.75), np.array(0.75)],
                         ids=["float", "np.float64", "0-d"])
def test_code_book_takes_a_scalar_lambda(lam):
    """A scalar λ broadcasts (as before the one-channel fast branch, which indexed lam[0])."""
    book = ul2q.code_book(np.array([1.0]), np.array([2.0]), lam)
    assert np.array_equal(book.alpha, np.array([1.5]))


def test_code_book_takes_a_zero_dimensional_sigma():
    book = ul2q.code_book(np.array(1.0), np.array(2.0), np.array([0.75]))
    assert np.array_equal(book.alpha, np.array([1.5]))


@pytest.mark.parametrize("std, lam", [
    (np.array([1e308]), np.array([1.0, 10.0])),               # λ broadcast: only lam[0] tested
    (np.array([3e38], np.float32), np.array([10.0], np.float32)),  # finite in float64 only
])
def test_code_book_overflow_is_silent_whatever_the_shapes_and_dtypes(std, lam):
    """An α that overflows is +inf without a warning (the representability check refuses it
    later), even under a caller's ``np.errstate(all="raise")``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            book = ul2q.code_book(np.zeros_like(std), std, lam)
    with np.errstate(over="ignore"):
        expected = lam * std
    assert np.array_equal(book.alpha, expected)
    assert np.isinf(book.alpha).any()


# --------------------------------------------------------------------------- UL2Q pickling


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # .compile() imports torch.jit
def test_ul2q_state_drops_what_module_state_drops():
    """``UL2Q.__getstate__`` keeps ``nn.Module.__getstate__``'s rule: a compiled module's
    ``_compiled_call_impl`` is not pickled (an ``nn.Identity`` pickles after ``.compile()``)."""
    torch = pytest.importorskip("torch")
    from ul2q_ref.torch import UL2Q

    layer = UL2Q(2, axis=0)
    layer.compile()
    reference = torch.nn.Identity()
    reference.compile()
    assert "_compiled_call_impl" not in reference.__getstate__()
    assert "_compiled_call_impl" not in layer.__getstate__()
    restored = pickle.loads(pickle.dumps(layer))
    assert (restored.bits, restored.axis) == (2, 0)
    assert "_compiled_call_impl" not in copy.deepcopy(layer).__dict__


def test_the_shared_lambda_vector_cannot_be_changed_by_a_caller():
    from ul2q_ref.gaussian import optimal_lambda

    first = ul2q.statistics(np.linspace(-1.0, 1.0, 9), 2, None)
    with pytest.raises(ValueError):
        first.lam[0] = 1.0
    with pytest.raises(ValueError):
        first.lam.setflags(write=True)
    again = ul2q.statistics(np.linspace(-1.0, 1.0, 9), 2, None)
    assert float(again.lam[0]) == optimal_lambda(2)


def test_the_device_route_returns_a_contiguous_result_for_any_layout():
    """The operators' fake kernels promise C-contiguous outputs: the device route keeps it."""
    torch = pytest.importorskip("torch")
    from ul2q_ref import torch as ul2q_ref_torch

    w = torch.randn(12, 7, dtype=torch.float64)
    for axis in (None, 0, 1):
        transposed = ul2q_ref_torch.fake_quantize(w.t(), 2, axis, mode="device")
        assert transposed.is_contiguous() and transposed.shape == (7, 12)
        # (values: the device route's statistics are within a stated bound, not bit-exact,
        # and depend on the memory order of the reductions, so only the layout is checked)
    for mode_codes in (ul2q_ref_torch.encode(w.t(), 0.5, 0.1, 2, None),
                       ul2q_ref_torch.encode(w.t().to("meta"), 0.5, 0.1, 2, None)):
        assert mode_codes.is_contiguous()
    expected = ul2q_ref.encode(w.t().numpy(), np.array([0.5]), np.array([0.1]), 2)
    assert np.array_equal(ul2q_ref_torch.encode(w.t(), 0.5, 0.1, 2, None).numpy(), expected)
