"""The record every profile is: its steps, its bit range, its zero point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ul2q import Statistics as ProfileStatistics

__all__ = ["Profile", "ProfileStatistics", "unchanged"]


@dataclass(frozen=True)
class Profile:
    """One profile: how an implementation computes each step of μL2Q.

    Every step takes validated input (the public layer :mod:`ul2q_ref.api` checks it) and,
    last, the kernel module of the chosen backend (:func:`ul2q_ref.kernels.select`), which
    the profiles whose arithmetic the compiled kernels reproduce use for their loops.

    Attributes
    ----------
    name : str
        ``"exact"``, ``"paper"`` or ``"caffe"``.
    statistics : callable
        ``(weights, bits, axis, kernels) -> ProfileStatistics``: μ, σ, λ, α, β per channel.
    encode : callable
        ``(weights, alpha, beta, bits, axis, kernels) -> codes``.
    decode : callable
        ``(codes, alpha, beta, zero_point, axis, dtype, kernels) -> ŵ``.
    prepare : callable
        ``weights -> weights`` as the implementation holds them (caffe: float32).
    zero_point : float
        z of the reconstruction α(q − z) + β (½: the μL2Q cell centres).
    parameter_dtype : str
        The precision α and β are defined in: ``"float32"`` or ``"float64"``.
    per_channel : bool
        Whether the implementation has a per-channel mode (the public ``quantize`` refuses
        an ``axis`` otherwise).
    nan_alpha : bool
        Whether its α can be NaN (the caffe profile's negative-variance channels), which
        its results then accept (:meth:`ProfileQuantized.allows_nan_alpha`).

    The statistics step returns :class:`ul2q_ref.ul2q.Statistics` (μ, σ, λ, α, β per
    channel; for ``"caffe"`` float32 numbers held exactly in float64, NaN where the variance
    went negative).
    """

    name: str
    statistics: Callable[..., ProfileStatistics]
    encode: Callable[..., np.ndarray]
    decode: Callable[..., np.ndarray]
    prepare: Callable[[np.ndarray], np.ndarray]
    zero_point: float
    parameter_dtype: str
    per_channel: bool
    nan_alpha: bool = False


def unchanged(weights: Any) -> Any:
    """The ``prepare`` step of the profiles that compute on the input as it is."""
    return weights
