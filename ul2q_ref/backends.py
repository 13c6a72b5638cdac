"""Choosing between the NumPy reference and the compiled kernels of ``ul2q_ref._fast``.

The reference (plain NumPy, in the modules beside this one) *defines* every result. The
optional Cython extension ``ul2q_ref._fast`` computes the same results faster and is tested
against the reference. Every function with a ``backend`` argument accepts:

``"auto"``
    the compiled kernels when they are built, the reference otherwise;
``"fast"``
    the compiled kernels, raising ImportError with build instructions when they are missing;
``"reference"``
    always the NumPy reference.
"""

from __future__ import annotations

import os
from types import ModuleType

# The compiled kernels may use OpenMP. GNU libgomp's default is to spin while waiting for
# work, which on a busy machine made two threads slower than one; it reads this setting only
# when it is loaded, so it is set (unless the user chose otherwise) before the import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:  # pragma: no cover - depends on how the package was built
    from . import _fast as _fast_module
except ImportError:  # pragma: no cover
    _fast_module = None

HAVE_FAST: bool = _fast_module is not None
"""True when the compiled kernels ``ul2q_ref._fast`` are importable."""

BACKENDS = ("auto", "fast", "reference")


def fast_kernels(backend: str) -> ModuleType | None:
    """Return the compiled kernel module to use for `backend`, or None for the reference.

    Raises
    ------
    ValueError
        If `backend` is not one of ``"auto"``, ``"fast"``, ``"reference"``.
    ImportError
        If ``backend="fast"`` and the extension was not built.
    """
    if backend not in BACKENDS:
        choices = ", ".join(map(repr, BACKENDS))
        raise ValueError(f"backend must be one of {choices}, got {backend!r}")
    if backend == "reference":
        return None
    if _fast_module is None and backend == "fast":
        raise ImportError(
            "backend='fast' needs the compiled extension ul2q_ref._fast, which is not built. "
            "Install a C compiler and reinstall from the source tree with "
            "`pip install .` (or build in place with `python setup.py build_ext --inplace`), "
            "without UL2Q_PURE_PYTHON set."
        )
    return _fast_module
