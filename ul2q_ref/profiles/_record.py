"""The record every profile is: its steps, its bit range, its zero point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class ProfileStatistics(NamedTuple):
    """The statistics step of a profile, one value per channel (float64 vectors).

    For ``"caffe"`` every value is a float32 number stored exactly in float64 (NaN where the
    variance went negative).
    """

    mean: np.ndarray
    std: np.ndarray
    lam: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray


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
    bits : tuple of int
        The bit range (lowest, highest).
    zero_point : float
        z of the reconstruction α(q − z) + β (½: the μL2Q cell centres).
    parameter_dtype : str
        The precision α and β are defined in: ``"float32"`` or ``"float64"``.
    per_channel : bool
        Whether the implementation has a per-channel mode (the public ``quantize`` refuses
        an ``axis`` otherwise).
    """

    name: str
    statistics: Callable[..., ProfileStatistics]
    encode: Callable[..., np.ndarray]
    decode: Callable[..., np.ndarray]
    prepare: Callable[[np.ndarray], np.ndarray]
    bits: tuple[int, int]
    zero_point: float
    parameter_dtype: str
    per_channel: bool


def unchanged(weights: Any) -> Any:
    """The ``prepare`` step of the profiles that compute on the input as it is."""
    return weights
