"""What makes a training's bits a function of its configuration and seed alone.

A training step is a chain of float32 operations. Most of them give the same bits whatever
runs them: NumPy's elementwise operations and reductions, and the μL2Q kernels, whose
OpenMP tasks have a fixed size and whose partial sums are combined in a fixed order
(:mod:`ul2q_ref.kernels`), so ``UL2Q_NUM_THREADS`` never changes a result. The matrix
products are another matter, for two reasons:

* **The BLAS thread count.** A multi-threaded BLAS splits some products along the summed
  dimension, so Σ_k a_ik b_kj is added up in an order that depends on the thread count.
  Measured with NumPy 2.4's OpenBLAS 0.3.31 on a 2-core Xeon: the bias gradient
  ``ones(28800) @ g`` of LeNet-5's first convolution and the input gradient ``g @ W`` of
  its first fully connected layer (50×500 by 500×800) differ in their last bits between one
  and two threads. So :func:`train <ul2q_ref.nn.train.train>` runs inside
  :func:`pinned_blas`: every BLAS library loaded in the process (OpenBLAS, MKL, BLIS, found
  by threadpoolctl) is limited to one thread while it trains, and restored afterwards.
  The same configuration and seed then give the same weights, bit for bit, whatever
  ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``UL2Q_NUM_THREADS``, ``--jobs`` or the machine's load
  (``tests/test_train_reproducible.py``).
* **The BLAS kernels.** OpenBLAS picks its kernels for the CPU when it loads (recorded by
  threadpoolctl as ``architecture``): ``SkylakeX`` (AVX-512) on the Xeon this project
  measured, ``Haswell``/``Zen`` (AVX2) on other machines. They block the sums differently,
  so their products differ in the last bits and the trainings diverge: the full-data
  record ``ul2q-1-seed2`` (98.89 %, made with SkylakeX kernels) is reproduced bit for bit,
  epoch by epoch, by SkylakeX kernels and comes out at 98.98 % with Haswell kernels, which
  is what its retraining on another machine gave. This cannot be pinned from inside a
  running process, but it can be chosen before it starts: ``OPENBLAS_CORETYPE=Haswell``
  (any x86-64 CPU with AVX2) or ``=SkylakeX`` (with AVX-512) makes OpenBLAS load those
  kernels. :func:`training_environment` records the libraries, their kernels and versions
  and the CPU beside every run, so a rerun can use the same.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

BLAS_THREADS = 1
"""The BLAS thread count of every training (see the module docstring)."""

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "UL2Q_NUM_THREADS")
"""Environment variables that set thread counts: recorded, although with BLAS pinned and
the kernels thread-count independent none of them changes a training's result."""

_BLAS_KEYS = ("internal_api", "version", "architecture", "threading_layer", "num_threads")


@contextmanager
def pinned_blas() -> Iterator[list[dict[str, Any]]]:
    """Limit every loaded BLAS library to :data:`BLAS_THREADS` thread inside the block.

    Yields
    ------
    list of dict
        One entry per BLAS library in the process (``internal_api`` such as ``openblas``,
        ``version``, ``architecture`` (the CPU kernels it selected), ``threading_layer``,
        ``num_threads`` while pinned), as threadpoolctl describes it.

    Raises
    ------
    RuntimeError
        threadpoolctl (a dependency of ul2q-ref) is not installed: without it the thread
        count of the BLAS cannot be set, and a training's bits would depend on it.
    """
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise RuntimeError(
            "training needs threadpoolctl to pin the BLAS to one thread (a training's "
            "result depends on the BLAS thread count otherwise): pip install threadpoolctl"
        ) from None
    with warnings.catch_warnings():
        # threadpoolctl warns about OpenMP runtimes it finds side by side (e.g. torch's);
        # that concerns OpenMP, not the BLAS limited here
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="threadpoolctl")
        limiter = threadpool_limits(limits=BLAS_THREADS, user_api="blas")
        libraries = [{key: library.get(key) for key in _BLAS_KEYS}
                     for library in threadpool_info() if library.get("user_api") == "blas"]
    try:
        yield libraries
    finally:
        limiter.restore_original_limits()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def training_environment(blas: list[dict[str, Any]]) -> dict[str, Any]:
    """What a training's bits may depend on besides its configuration and seed.

    Parameters
    ----------
    blas : list of dict
        The BLAS libraries as :func:`pinned_blas` yielded them.

    Returns
    -------
    dict
        Versions (ul2q-ref, Python, NumPy), the BLAS libraries and the thread count they
        were pinned to, whether the compiled kernels ran and their thread count, the CPU,
        the platform, the thread environment variables and the command line.
    """
    from .. import __version__
    from ..kernels import HAVE_FAST, fast

    return {
        "ul2q_ref": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "blas_threads": BLAS_THREADS,
        "fast_kernels": bool(HAVE_FAST),
        "kernel_threads": int(fast.get_num_threads()) if fast is not None else 1,
        "cpu": cpu_model(),
        "platform": f"{platform.system()} {platform.machine()}",
        "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "argv": list(sys.argv),
    }


__all__ = ["BLAS_THREADS", "THREAD_VARIABLES", "cpu_model", "pinned_blas",
           "training_environment"]
