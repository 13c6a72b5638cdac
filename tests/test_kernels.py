"""The kernel registry: every compiled kernel against its NumPy twin, bit for bit.

The kernels to compare are found in the compiled module itself (every public function of
``ul2q_ref._fast`` that is not a thread control), not in ``ul2q_ref.kernels.REGISTRY``: a
function added to ``_fast`` and not registered fails here, and each one found is compared with
the function of the same name in ``ul2q_ref/kernels/reference.py`` (as bottleneck's
``reduce_test.py`` walks its list of functions). Both twins must also reject the same
malformed calls with the same exception type. tests/test_fast.py holds the deeper,
kernel-specific cases (summation trees, thresholds, layouts, threads).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ul2q_ref import kernels
from ul2q_ref.codebook import code_dtype

needs_fast = pytest.mark.skipif(
    not kernels.HAVE_FAST,
    reason="ul2q_ref._fast is not built (tox -e pure): nothing to compare; with "
    "UL2Q_REQUIRE_FAST=1 a missing extension fails the run instead (tests/conftest.py)")

THREAD_CONTROLS = {"set_num_threads", "get_num_threads"}
"""The public functions of ``_fast`` that are not kernels."""


def compiled_kernels() -> list[str]:
    """The public functions of ``ul2q_ref._fast``, read from the module, less the thread
    controls: each must be a registered kernel with a NumPy twin."""
    if kernels.fast is None:
        return []
    import ul2q_ref._fast as fast  # the module itself, not the registry's reference to it

    return sorted(name for name in dir(fast) if not name.startswith("_")
                  and callable(getattr(fast, name)) and name not in THREAD_CONTROLS)


KERNELS = compiled_kernels()
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
    if name == "decode":
        codes = kernels.reference.encode(w, alpha, beta, bits, axis, code_dtype(bits))
        return (codes, alpha, beta, draw(st.sampled_from([0.0, 0.5])), axis, out)
    raise AssertionError(f"no calls are known for the kernel {name!r}: add them here")


def same_bits(fast, reference) -> None:
    if isinstance(reference, tuple):
        assert isinstance(fast, tuple) and len(fast) == len(reference)
        for one, two in zip(fast, reference, strict=True):
            same_bits(one, two)
        return
    assert fast.dtype == reference.dtype and fast.shape == reference.shape
    assert np.ascontiguousarray(fast).tobytes() == np.ascontiguousarray(reference).tobytes()


@needs_fast
def test_every_public_function_of_the_compiled_module_is_a_registered_kernel():
    assert KERNELS, "no kernels found in ul2q_ref._fast"
    import ul2q_ref._fast as fast

    for name in KERNELS:
        assert name in kernels.REGISTRY, f"ul2q_ref._fast.{name} is not in kernels.REGISTRY"
        twin = getattr(kernels.reference, name, None)
        assert twin is not None, f"ul2q_ref._fast.{name} has no twin in kernels/reference.py"
        assert kernels.REGISTRY[name] == (twin, getattr(fast, name))
        assert list(inspect.signature(twin).parameters) == list(
            inspect.signature(getattr(fast, name)).parameters), name
    assert set(kernels.REGISTRY) == set(KERNELS)  # nothing registered that is not compiled


@needs_fast
@pytest.mark.parametrize("name", KERNELS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_kernel_equals_its_twin_bit_for_bit(name, data):
    import ul2q_ref._fast as fast

    args = data.draw(kernel_calls(name))
    with np.errstate(all="ignore"):
        expected = getattr(kernels.reference, name)(*args)
        result = getattr(fast, name)(*args)
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


@needs_fast
@pytest.mark.parametrize("name", KERNELS)
def test_both_twins_reject_the_same_bad_input(name):
    import ul2q_ref._fast as fast

    for args in bad_calls(name):
        kind = raised(getattr(kernels.reference, name), args)
        assert kind is not None, f"the reference {name} accepted {args!r}"
        assert raised(getattr(fast, name), args) is kind, (name, args)


# ----------------------------------------------------------------------------- GOMP_SPINCOUNT


def environment_after_import(**variables: str) -> dict[str, str | None]:
    """GOMP_SPINCOUNT and OMP_WAIT_POLICY in a fresh interpreter after ``import ul2q_ref``,
    started with `variables` set and both unset otherwise."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(variables)
    code = ("import json, os, ul2q_ref; print(json.dumps({k: os.environ.get(k) for k in "
            "('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY')}))")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def test_importing_leaves_the_environment_as_it_was():
    """The spin count is set only while the extension (and libgomp) loads, then removed, so
    child processes and libraries loaded later see the user's environment."""
    assert environment_after_import() == {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None}
    assert environment_after_import(GOMP_SPINCOUNT="123") == {
        "GOMP_SPINCOUNT": "123", "OMP_WAIT_POLICY": None}
    assert environment_after_import(OMP_WAIT_POLICY="PASSIVE") == {
        "GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "PASSIVE"}


# ----------------------------------------------------------------------------- the source


def test_each_kernel_section_of_the_source_names_tests_that_exist():
    """``_fast.pyx`` opens each kernel's section with the tests that hold it: one section per
    registered kernel, and every test it names is defined (renaming a test without the
    source fails here)."""
    root = Path(__file__).resolve().parents[1]
    source = (root / "ul2q_ref" / "_fast.pyx").read_text(encoding="utf-8")
    defined = (root / "tests" / "test_fast.py").read_text(encoding="utf-8")
    sections = re.findall(r"^# Tests: tests/test_kernels\.py::\w+\[(\w+)\] and,\n"
                          r"# in tests/test_fast\.py:\n((?:#   test_\w+\n)+)", source, re.M)
    assert sorted(name for name, _ in sections) == sorted(kernels.NAMES)
    for name, listed in sections:
        for test in re.findall(r"test_\w+", listed):
            assert f"\ndef {test}(" in defined, f"the {name} section names {test}"
