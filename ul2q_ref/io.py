"""Saving and loading :class:`~ul2q_ref.codebook.Quantized` results as ``.npz`` (no pickles).

The file holds the arrays ``codes``, ``alpha``, ``beta`` and the 0-d arrays ``zero_point``,
``bits``, ``scheme``, ``dtype``, ``format`` and, for μL2Q, ``lam``; ``axis`` is present only
for per-channel results. Everything loads with ``numpy.load(path, allow_pickle=False)``, so a
file can be read by any NumPy program without this package.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .codebook import Quantized

FORMAT = "ul2q-ref/quantized-v1"


def quantized_arrays(quantized: Quantized) -> dict[str, np.ndarray]:
    """The arrays that describe `quantized`, as stored by :func:`save_quantized`."""
    arrays = {
        "format": np.array(FORMAT),
        "codes": quantized.codes,
        "alpha": np.asarray(quantized.alpha, dtype=np.float64),
        "beta": np.asarray(quantized.beta, dtype=np.float64),
        "zero_point": np.array(quantized.zero_point, dtype=np.float64),
        "bits": np.array(quantized.bits, dtype=np.int64),
        "scheme": np.array(quantized.scheme),
        "dtype": np.array(quantized.dtype.str),
    }
    if quantized.lam is not None:
        arrays["lam"] = np.array(quantized.lam, dtype=np.float64)
    if quantized.axis is not None:
        arrays["axis"] = np.array(quantized.axis, dtype=np.int64)
    return arrays


def quantized_from_arrays(arrays: Any, source: str = "the arrays") -> Quantized:
    """Rebuild a :class:`Quantized` from the mapping written by :func:`quantized_arrays`."""
    missing = [key for key in ("codes", "alpha", "beta", "zero_point", "bits", "scheme")
               if key not in arrays]
    if missing:
        raise ValueError(f"{source} is not a quantised tensor: missing {', '.join(missing)}")
    axis = int(arrays["axis"]) if "axis" in arrays else None
    alpha = np.asarray(arrays["alpha"], dtype=np.float64)
    beta = np.asarray(arrays["beta"], dtype=np.float64)
    return Quantized(
        codes=np.asarray(arrays["codes"]),
        alpha=alpha if axis is not None else np.float64(alpha),
        beta=beta if axis is not None else np.float64(beta),
        zero_point=float(arrays["zero_point"]),
        bits=int(arrays["bits"]),
        lam=float(arrays["lam"]) if "lam" in arrays else None,
        axis=axis,
        scheme=str(arrays["scheme"]),
        dtype=np.dtype(str(arrays["dtype"])) if "dtype" in arrays else np.dtype(np.float64),
    )


def save_npz_atomic(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to `path` as an uncompressed ``.npz``, atomically.

    The data goes to a temporary file in the same directory, which then replaces `path` in
    one step (``os.replace``): a crash leaves either the old file or the new one, never a
    truncated file. `path` is used exactly as given (no ``.npz`` is appended).
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_quantized(path: str | os.PathLike[str], quantized: Quantized) -> None:
    """Save `quantized` to `path` (``.npz``, written atomically)."""
    save_npz_atomic(path, quantized_arrays(quantized))


def load_quantized(path: str | os.PathLike[str]) -> Quantized:
    """Load a :class:`Quantized` written by :func:`save_quantized` (never unpickles)."""
    with np.load(path, allow_pickle=False) as data:
        return quantized_from_arrays(data, source=str(path))
