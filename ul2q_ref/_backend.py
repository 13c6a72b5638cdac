"""What a ``backend=`` argument means, and what the kernels accept.

Every public function with a ``backend`` argument accepts ``"auto"`` (the compiled kernels
when they are built, the NumPy reference otherwise), ``"fast"`` (the compiled kernels,
raising ImportError with build instructions when they are missing) and ``"reference"``
(always NumPy). :func:`compiled` is the one place that turns the name into the compiled
module ``ul2q_ref._fast`` or None (the NumPy definition); :func:`ul2q_ref.kernels.select`
and :meth:`ul2q_ref.codebook.Quantized.dequantize` both ask it.

This module imports nothing of the package but the compiled module ``ul2q_ref._fast``, which
imports nothing of the package at all. So the definition (:mod:`ul2q_ref.codebook`) can
swap its decoder for the compiled one by name without importing the layers built on it,
and no module has to rebind another's attributes at import time.
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
"""The reconstruction dtypes the kernels write (the kernel convention's one statement)."""

WEIGHT_DTYPES = FLOAT_DTYPES[1:]
"""The weight dtypes the kernels read: native float32 and float64."""

CODE_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))
"""The code dtypes the kernels read and write."""

BACKENDS = ("auto", "fast", "reference")
"""The values of every ``backend=`` argument."""

SPIN_COUNT = "3000"
"""GOMP_SPINCOUNT for GNU libgomp while the extension loads, unless the environment chooses.

An idle OpenMP thread spins this many times (~0.1 ms) before it sleeps. libgomp's default,
300,000 spins (~16 ms), made two threads several times slower than one on a busy machine;
sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) made them no faster than one on an idle one,
because each of a call's parallel regions (the two moment passes, the quantisation) then had
to wake the sleeping thread, a wake-up that costs a virtual machine about as much as the
region's work. A spin this short bridges the gaps within one call and still leaves the core
almost at once; docs/performance.md has the measurements.

The scope: libgomp reads the variable once, when it is loaded, so it is put in the
environment just for the import of ``ul2q_ref._fast`` (which loads libgomp) and removed
again: child processes and libraries loaded later do not see it. It is a setting of the
process's libgomp, though, so another library of the same process that uses the same libgomp
(not PyTorch, whose wheels bring their own copy) waits this way too, and if libgomp was
already loaded the setting has no effect. The way out: set ``GOMP_SPINCOUNT`` (libgomp's
default is 300000) or ``OMP_WAIT_POLICY`` yourself before importing ul2q_ref; either one is
then left alone."""


def _import_fast() -> ModuleType | None:
    """``ul2q_ref._fast``, loaded with :data:`SPIN_COUNT` unless the user set a wait policy;
    None when it is not built."""
    lend = "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ
    if lend:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:  # pragma: no cover - depends on how the package was built
        from . import _fast  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover
        return None
    finally:
        if lend:
            del os.environ["GOMP_SPINCOUNT"]
    return _fast


fast: ModuleType | None = _import_fast()
"""The compiled kernels ``ul2q_ref._fast``, or None when they are not built."""

HAVE_FAST: bool = fast is not None
"""True when the compiled kernels ``ul2q_ref._fast`` are importable."""


def compiled(backend: str) -> ModuleType | None:
    """The compiled kernels `backend` names, or None where it means the NumPy reference.

    Raises
    ------
    ValueError
        If `backend` is not one of ``"auto"``, ``"fast"``, ``"reference"``.
    ImportError
        If ``backend="fast"`` and the extension was not built.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        choices = ", ".join(map(repr, BACKENDS))
        raise ValueError(f"backend must be one of {choices}, got {backend!r}")
    if backend == "reference":
        return None
    if fast is None and backend == "fast":
        raise ImportError(
            "backend='fast' needs the compiled extension ul2q_ref._fast, which is "
            "not built. Install a C compiler and reinstall from the source tree with "
            "`pip install .` (or build in place with `python setup.py build_ext "
            "--inplace`), without UL2Q_PURE_PYTHON set."
        )
    return fast


__all__ = ["BACKENDS", "CODE_DTYPES", "FLOAT_DTYPES", "HAVE_FAST", "SPIN_COUNT",
           "WEIGHT_DTYPES", "compiled", "fast"]
