"""Per-tensor and per-channel views shared by the statistics, encoders and decoders.

Throughout the package ``axis`` names the *channel* axis, as in PyTorch's per-channel
quantisation: ``axis=None`` gives one (α, β) for the whole tensor; ``axis=0`` on a
convolution weight of shape ``(out, in, kh, kw)`` gives one (α, β) per output channel,
each computed over the ``in·kh·kw`` values of that channel.

Inside the package α, β (and μ, σ, λ) always have one form: a 1-D float64 vector with one
entry per channel, of length 1 for a whole tensor. Only the public result turns a length-1
vector into a scalar (:func:`ul2q_ref.codebook.public_parameter`).
"""

from __future__ import annotations

import numpy as np


def channel_count(shape: tuple[int, ...], axis: int | None) -> int:
    """How many channels (α, β pairs) a tensor of `shape` has: 1 without an axis."""
    return 1 if axis is None else shape[axis]


def as_rows(array: np.ndarray, axis: int | None) -> np.ndarray:
    """View (or, if the layout requires it, copy) `array` as ``(channels, values)``.

    ``axis=None`` gives one row holding every value; otherwise row ``c`` holds the values of
    ``array`` whose index along `axis` is ``c``.
    """
    if axis is None:
        return array.reshape(1, -1)
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)


def broadcastable(per_channel: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """Shape a per-channel vector so that it broadcasts against an ``ndim``-dimensional array."""
    values = np.asarray(per_channel, dtype=np.float64)
    if axis is None:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)
