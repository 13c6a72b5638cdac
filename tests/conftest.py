"""Shared hypothesis strategies and settings, and the check that the compiled kernels are there.

``UL2Q_REQUIRE_FAST=1`` (set by ``.ci/run`` and tox's default environment) makes the run fail
at collection when ``ul2q_ref._fast`` cannot be imported, instead of letting every
fast-vs-reference test skip; ``tox -e pure`` tests without the extension and does not set it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

bit_widths = st.integers(min_value=1, max_value=16)


@st.composite
def weight_arrays(draw, max_dims: int = 3, min_side: int = 1, max_side: int = 6,
                  dtypes=(np.float32, np.float64)):
    """Real weight tensors: float32/float64, up to `max_dims` dimensions, finite values.

    Values are any finite floats of the dtype's width in [−1e6, 1e6] (hypothesis favours
    zeros, repeats and boundary values such as ±1e6 and tiny magnitudes).
    """
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=min_side,
                                  max_side=max_side))
    width = 32 if dtype == np.float32 else 64
    elements = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False,
                         allow_infinity=False, width=width)
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    return array


def as_read_only(array: np.ndarray) -> np.ndarray:
    """A read-only copy of `array`: functions that try to write to it fail loudly."""
    copy = np.array(array)
    copy.setflags(write=False)
    return copy


def pytest_configure(config: pytest.Config) -> None:
    """Fail the run before collection if UL2Q_REQUIRE_FAST=1 and the extension is missing."""
    if os.environ.get("UL2Q_REQUIRE_FAST", "") in ("", "0"):
        return
    try:
        import ul2q_ref._fast  # noqa: F401 - the import is the check
    except ImportError as error:
        raise pytest.UsageError(
            f"UL2Q_REQUIRE_FAST is set but the compiled kernels ul2q_ref._fast cannot be "
            f"imported ({error}); build them with `pip install .` or `python setup.py "
            f"build_ext --inplace` (a C compiler is needed), or unset UL2Q_REQUIRE_FAST to "
            f"test the pure NumPy reference (tox -e pure)") from None
