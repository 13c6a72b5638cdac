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
(always NumPy), under every profile (:func:`select`). The names, the loading of ``_fast``
and the kernel dtypes are owned by :mod:`ul2q_ref._backend`, which the definition's
:meth:`~ul2q_ref.codebook.Quantized.dequantize` asks too; this module re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from .._backend import BACKENDS, HAVE_FAST, SPIN_COUNT, compiled, fast
from . import reference

NAMES = ("moments", "encode", "decode", "fake_quantize")
"""The kernels, by name: each is a function of :mod:`.reference` and of ``_fast``."""

REGISTRY: dict[str, tuple[Callable[..., object], Callable[..., object] | None]] = {
    name: (getattr(reference, name), None if fast is None else getattr(fast, name))
    for name in NAMES
}
"""name -> (NumPy twin, compiled kernel or None when the extension is not built)."""


def select(backend: str) -> ModuleType:
    """The kernel module for `backend`: ``_fast`` or :mod:`.reference`
    (:func:`ul2q_ref._backend.compiled` says which).

    Raises
    ------
    ValueError
        If `backend` is not one of ``"auto"``, ``"fast"``, ``"reference"``.
    ImportError
        If ``backend="fast"`` and the extension was not built.
    """
    kernels = compiled(backend)
    return reference if kernels is None else kernels


__all__ = ["BACKENDS", "HAVE_FAST", "NAMES", "REGISTRY", "SPIN_COUNT", "fast", "reference",
           "select"]
