"""Shared hypothesis strategies and settings for the reference tests."""

from __future__ import annotations

import os

import numpy as np
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

    Values are drawn around a random mean with a random spread, so that the tensors look
    like weights at very different scales, with a few exact repeats and zeros mixed in.
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
