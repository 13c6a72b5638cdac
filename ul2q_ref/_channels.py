"""Per-tensor and per-channel views shared by the statistics, encoders and decoders.

Throughout the package ``axis`` names the *channel* axis, as in PyTorch's per-channel
quantisation: ``axis=None`` gives one (α, β) for the whole tensor; ``axis=0`` on a
convolution weight of shape ``(out, in, kh, kw)`` gives one (α, β) per output channel,
each computed over the ``in·kh·kw`` values of that channel.
"""

from __future__ import annotations

import numpy as np


def as_rows(array: np.ndarray, axis: int | None) -> np.ndarray:
    """View (or, if the layout requires it, copy) `array` as ``(channels, values)``.

    ``axis=None`` gives one row holding every value; otherwise row ``c`` holds the values of
    ``array`` whose index along `axis` is ``c``.
    """
    if axis is None:
        return array.reshape(1, -1)
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)


def broadcastable(per_channel: np.ndarray | float, ndim: int, axis: int | None) -> np.ndarray:
    """Shape per-channel values so that they broadcast against an ``ndim``-dimensional array."""
    values = np.asarray(per_channel, dtype=np.float64)
    if axis is None:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def per_channel_result(values: np.ndarray, axis: int | None) -> np.ndarray | np.float64:
    """A float64 scalar for ``axis=None``, else a read-only float64 vector, one per channel."""
    if axis is None:
        return np.float64(values.reshape(-1)[0])
    result = np.array(values, dtype=np.float64).reshape(-1)
    result.setflags(write=False)
    return result
