"""What ``torch.ops.ul2q.fake_quantize`` does with a bool (docs/torch.md, "Called directly"):
the dispatcher turns it into 0/1 for the integer arguments before the operator runs, so the
operator cannot refuse it; the Python functions, which see the caller's object, do."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402

W = torch.linspace(-1.0, 1.0, 12).reshape(3, 4) ** 3


def test_the_schema_declares_integers():
    schema = str(torch.ops.ul2q.fake_quantize.default._schema)
    assert "SymInt bits, SymInt? axis=None" in schema  # int/SymInt: a bool becomes 0/1


def test_a_bool_reaches_the_operator_as_an_integer():
    assert np.array_equal(torch.ops.ul2q.fake_quantize(W, True).numpy(),
                          uq.fake_quantize(W.numpy(), 1))  # bits=True runs as 1 bit
    assert np.array_equal(torch.ops.ul2q.fake_quantize(W, 2, True).numpy(),
                          uq.fake_quantize(W.numpy(), 2, axis=1))  # axis=True as axis 1
    with pytest.raises(ValueError, match="bits must be an integer from 1 to 16, got 0"):
        torch.ops.ul2q.fake_quantize(W, False)


def test_the_python_functions_refuse_a_bool():
    with pytest.raises(TypeError, match="got True of type bool"):
        bridge.fake_quantize(W, True)
    with pytest.raises(TypeError, match="got True of type bool"):
        bridge.ul2q(W, True)
    with pytest.raises(TypeError, match="bits must be an integer"):
        bridge.UL2Q(True)
