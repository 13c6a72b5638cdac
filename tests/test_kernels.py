"""The kernel registry: every compiled kernel against its NumPy twin, bit for bit.

``ul2q_ref.kernels.REGISTRY`` lists each kernel once with its two implementations; this
test walks it (as bottleneck's ``reduce_test.py`` walks its list of functions), so a kernel
added to the registry is compared without another test being written. Both twins must also
reject the same malformed calls with the same exception type. tests/test_fast.py holds the
deeper, kernel-specific cases (summation trees, thresholds, layouts, threads).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ul2q_ref import kernels
from ul2q_ref.codebook import code_dtype

pytestmark = pytest.mark.skipif(
    not kernels.HAVE_FAST, reason="ul2q_ref.kernels._fast is not built: nothing to compare")

FLOATS = (np.float16, np.float32, np.float64)


@st.composite
def kernel_calls(draw, name):
    """Valid arguments for the kernel `name`, in the registry's calling convention."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5))
    elements = st.floats(-1e3, 1e3, width=32 if dtype == np.float32 else 64)
    w = draw(hnp.arrays(dtype, shape, elements=elements))
    if draw(st.booleans()) and w.ndim > 1:
        w = w.T  # another memory layout
    axis = draw(st.none() | st.integers(0, w.ndim - 1)) if w.ndim else None
    channels = 1 if axis is None else w.shape[axis]
    alpha = np.array(draw(st.lists(st.floats(0.0, 10.0) | st.just(0.0), min_size=channels,
                                   max_size=channels)), dtype=np.float64)
    beta = np.array(draw(st.lists(st.floats(-10.0, 10.0), min_size=channels,
                                  max_size=channels)), dtype=np.float64)
    bits = draw(st.integers(1, 16))
    out = np.dtype(draw(st.sampled_from(FLOATS)))
    if name == "moments":
        return (w, axis)
    if name == "encode":
        return (w, alpha, beta, bits, axis, code_dtype(bits))
    if name == "fake_quantize":
        return (w, alpha, beta, bits, 0.5, axis, out)
    codes = kernels.reference.encode(w, alpha, beta, bits, axis, code_dtype(bits))
    return (codes, alpha, beta, draw(st.sampled_from([0.0, 0.5])), axis, out)


def same_bits(fast, reference) -> None:
    if isinstance(reference, tuple):
        assert isinstance(fast, tuple) and len(fast) == len(reference)
        for one, two in zip(fast, reference, strict=True):
            same_bits(one, two)
        return
    assert fast.dtype == reference.dtype and fast.shape == reference.shape
    assert np.ascontiguousarray(fast).tobytes() == np.ascontiguousarray(reference).tobytes()


@pytest.mark.parametrize("name", kernels.NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_kernel_equals_its_twin_bit_for_bit(name, data):
    reference, fast = kernels.REGISTRY[name]
    assert fast is not None and fast.__name__ == reference.__name__ == name
    args = data.draw(kernel_calls(name))
    with np.errstate(all="ignore"):
        expected = reference(*args)
        result = fast(*args)
    same_bits(result, expected)


def bad_calls(name):
    """Malformed calls of the kernel `name`: each breaks one rule of the convention."""
    w = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    one, two = np.array([0.5]), np.array([0.5, 0.25])
    codes = np.zeros((2, 3), dtype=np.int8)
    f64 = np.dtype(np.float64)
    if name == "moments":
        return [(w.astype(np.float16), None), (w.astype(np.int64), None), (w, 2),
                (np.zeros((0,)), None), (w.tolist(), None)]
    if name == "encode":
        i8 = np.dtype(np.int8)
        return [(w, one, one, 2, None, np.dtype(np.int64)), (w, one, one, 0, None, i8),
                (w, one, one, 17, None, i8), (w, two, one, 2, None, i8),
                (w, one, one.astype(np.float32), 2, None, i8), (w, one, one, 2, 2, i8),
                (w.astype(np.float16), one, one, 2, None, i8), (w, two, two, 2, 1, i8)]
    if name == "fake_quantize":
        return [(w, one, one, 2, 0.5, None, np.dtype(np.longdouble)),
                (w, one, one, 2, 0.5, None, np.dtype(np.int32)),
                (w, one, one, 0, 0.5, None, f64), (w, two, two, 2, 0.5, None, f64),
                (w, one, one, 2, 0.5, 5, f64), (w.astype(np.int32), one, one, 2, 0.5, None, f64)]
    return [(codes.astype(np.int64), one, one, 0.5, None, f64),
            (codes.astype(np.uint8), one, one, 0.5, None, f64),
            (codes, one, one, 0.5, None, np.dtype(">f4")), (codes, two, two, 0.5, None, f64),
            (codes, one, one, 0.5, 3, f64), (codes, one[:, None], one, 0.5, None, f64)]


def raised(function, args):
    try:
        function(*args)
    except (TypeError, ValueError) as error:
        return type(error)
    return None


@pytest.mark.parametrize("name", kernels.NAMES)
def test_both_twins_reject_the_same_bad_input(name):
    reference, fast = kernels.REGISTRY[name]
    for args in bad_calls(name):
        kind = raised(reference, args)
        assert kind is not None, f"the reference {name} accepted {args!r}"
        assert raised(fast, args) is kind, (name, args)


def test_the_registry_lists_every_kernel_of_both_modules():
    assert set(kernels.REGISTRY) == set(kernels.NAMES)
    for name, (reference, fast) in kernels.REGISTRY.items():
        assert reference is getattr(kernels.reference, name)
        assert fast is getattr(kernels.fast, name)
