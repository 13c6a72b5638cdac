"""Weight initialisers driven by an explicit ``numpy.random.Generator``.

All functions take the array ``shape`` and a generator and return a new
``float32`` array (pass ``dtype=`` for something else).  Fan-in and fan-out
follow the Caffe / PyTorch conventions for the two weight layouts used in
:mod:`ul2q_ref.nn.layers`:

* Linear weight ``(out_features, in_features)``:
  ``fan_in = in_features``, ``fan_out = out_features``.
* Conv2d weight ``(out_channels, in_channels, kh, kw)``:
  ``fan_in = in_channels * kh * kw``, ``fan_out = out_channels * kh * kw``.

Initialisers
------------
``xavier_uniform`` (default ``mode="fan_in"``)
    Caffe's ``"xavier"`` filler with its default ``variance_norm: FAN_IN``::

        w ~ U(-a, +a),   a = sqrt(3 / fan_in)       (Var[w] = 1 / fan_in)

    ``mode="fan_avg"`` gives the original Glorot & Bengio (2010) variant,
    ``a = sqrt(6 / (fan_in + fan_out))``; ``mode="fan_out"`` uses ``3 / fan_out``.
``he_normal``
    He et al. (2015), Caffe's ``"msra"`` filler (``variance_norm: FAN_IN``)::

        w ~ N(0, std^2),  std = sqrt(2 / fan_in)
``he_uniform``
    Uniform with the same variance: ``a = sqrt(6 / fan_in)``.

Biases are initialised to zero by the layers (Caffe's ``constant`` filler).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

FanMode = Literal["fan_in", "fan_out", "fan_avg"]


def fan_in_and_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` for a Linear (2-D) or Conv (4-D) weight shape.

    For ``shape = (out, in, *kernel)`` the receptive field size is
    ``prod(kernel)`` (1 for Linear), ``fan_in = in * prod(kernel)`` and
    ``fan_out = out * prod(kernel)``.
    """
    if len(shape) < 2:
        raise ValueError(f"weight shape must have at least 2 dims, got {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def _fan(shape: tuple[int, ...], mode: FanMode) -> float:
    fan_in, fan_out = fan_in_and_out(shape)
    if mode == "fan_in":
        return float(fan_in)
    if mode == "fan_out":
        return float(fan_out)
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    raise ValueError(f"unknown fan mode {mode!r}")


def xavier_uniform(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    *,
    mode: FanMode = "fan_in",
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Xavier/Glorot uniform init, Caffe ``"xavier"`` filler.

    ``w ~ U(-a, a)`` with ``a = sqrt(3 / n)``, where ``n`` is ``fan_in``
    (Caffe default), ``fan_out``, or ``(fan_in + fan_out) / 2`` (Glorot's
    original ``sqrt(6 / (fan_in + fan_out))``), so that ``Var[w] = 1 / n``.
    """
    a = np.sqrt(3.0 / _fan(shape, mode))
    return rng.uniform(-a, a, size=shape).astype(dtype)


def he_normal(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    *,
    mode: FanMode = "fan_in",
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """He/Kaiming normal init, Caffe ``"msra"`` filler: ``w ~ N(0, 2 / fan_in)``."""
    std = np.sqrt(2.0 / _fan(shape, mode))
    return (rng.standard_normal(size=shape) * std).astype(dtype)


def he_uniform(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    *,
    mode: FanMode = "fan_in",
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """He uniform init: ``w ~ U(-a, a)``, ``a = sqrt(6 / fan_in)`` (variance ``2 / fan_in``)."""
    a = np.sqrt(6.0 / _fan(shape, mode))
    return rng.uniform(-a, a, size=shape).astype(dtype)


INITIALIZERS = {
    "xavier": xavier_uniform,
    "he": he_normal,
    "he_uniform": he_uniform,
}


def get_initializer(name: str):
    """Look up an initialiser by name: ``"xavier"``, ``"he"`` or ``"he_uniform"``."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        choices = sorted(INITIALIZERS)
        raise ValueError(f"unknown initializer {name!r}; choose from {choices}") from None
