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
