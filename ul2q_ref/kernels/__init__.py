"""The kernel registry: each compiled kernel beside its NumPy twin, under the same name.

Four kernels carry the work of μL2Q: ``moments`` (μ, σ per channel), ``encode`` (the codes
for a code book α, β), ``decode`` (ŵ = α(q − z) + β) and ``fake_quantize`` (encode then
decode in one pass). Each exists twice with the same name and signature:

* :mod:`ul2q_ref.kernels.reference`: NumPy, running the definitions of :mod:`ul2q_ref.stats`,
  :mod:`ul2q_ref.ul2q` and :mod:`ul2q_ref.codebook`;
* ``ul2q_ref._fast`` (``ul2q_ref/_fast.pyx``, optional, at the package root): Cython loops
  that give the same bits, faster, one section per kernel. It imports nothing from this
  package.

The calling convention (valid input only, as the public layer :mod:`ul2q_ref.api` prepares
it): weights a finite, non-empty, native float32/float64 array of any layout; ``axis`` None
or in ``0..ndim-1``; α and β float64 vectors with one entry per channel (one entry without an
axis); the output dtype chosen by the caller (codes int8/int16/int32 wide enough for k bits;
reconstructions float16/float32/float64). Both twins reject the same malformed calls with
the same exception types. ``tests/test_kernels.py`` finds every public function of ``_fast``,
checks that it is registered here, and compares it with its twin bit for bit.

Backends: every public function with a ``backend`` argument accepts ``"auto"`` (the compiled
kernels when they are built, the reference otherwise), ``"fast"`` (the compiled kernels,
raising ImportError with build instructions when they are missing) and ``"reference"``
(always NumPy), under every profile (:func:`select`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from . import reference

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
        from .. import _fast  # type: ignore[attr-defined]
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

NAMES = ("moments", "encode", "decode", "fake_quantize")
"""The kernels, by name: each is a function of :mod:`.reference` and of ``_fast``."""

BACKENDS = ("auto", "fast", "reference")
"""The values of every ``backend=`` argument."""

REGISTRY: dict[str, tuple[Callable[..., object], Callable[..., object] | None]] = {
    name: (getattr(reference, name), None if fast is None else getattr(fast, name))
    for name in NAMES
}
"""name -> (NumPy twin, compiled kernel or None when the extension is not built)."""


def select(backend: str) -> ModuleType:
    """The kernel module for `backend`: ``_fast`` or :mod:`.reference`.

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
        return reference
    if fast is None:
        if backend == "fast":
            raise ImportError(
                "backend='fast' needs the compiled extension ul2q_ref._fast, which is "
                "not built. Install a C compiler and reinstall from the source tree with "
                "`pip install .` (or build in place with `python setup.py build_ext "
                "--inplace`), without UL2Q_PURE_PYTHON set."
            )
        return reference
    return fast


__all__ = ["BACKENDS", "HAVE_FAST", "NAMES", "REGISTRY", "reference", "select"]
