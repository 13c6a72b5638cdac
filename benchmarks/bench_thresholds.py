"""The fused kernel of this build against another build of ``ul2q_ref._fast``, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_thresholds.py OTHER_SO [--repeats N]

OTHER_SO is the extension file of another build (e.g. of the commit before "codes by
comparisons", built in a second checkout with ``python setup.py build_ext --inplace``). Both
extensions are loaded into this process and called alternately, so that both see the same
machine load; the printed ratio is this build's median time over the other's. Rows: the fused
kernel ``_fast.fake_quantize`` (float32 in and out, α = λ_k σ and β = μ from ``moments``) on
ResNet-18's 21 weight tensors per tensor (k = 1, 2, 3, 4, 8) and per channel (axis 0 and 1,
k = 1, 2, 3), ``_fast.encode`` on them (k = 1, 2, 3), small tensors (1,000 values per
tensor; 64 channels of 27, 576 and 2,304 values), and both kernels on 2^20 and 2^22
standard-normal values per tensor, each output dropped at once. Every pair of results is
first checked to be identical.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_torch import resnet_weights  # noqa: E402

from ul2q_ref import _fast as this  # noqa: E402
from ul2q_ref.gaussian import optimal_lambda  # noqa: E402


def load_other(path: str):
    """The extension at `path`, imported under the same module name as a second copy."""
    spec = importlib.util.spec_from_file_location("ul2q_ref._fast", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench_thresholds: error: cannot load {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alternating(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of two calls timed alternately."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for call, record in ((first, times[0]), (second, times[1])):
            began = time.perf_counter()
            call()
            record.append(time.perf_counter() - began)
    return statistics.median(times[0]), statistics.median(times[1])


def code_books(arrays, bits: int, axis: int | None):
    books = []
    for array in arrays:
        mean, std = this.moments(array, axis)
        books.append((array, optimal_lambda(bits) * std, mean))
    return books


def fused(module, book, bits: int, axis: int | None):
    array, alpha, beta = book
    return module.fake_quantize(array, alpha, beta, bits, 0.5, axis, np.dtype(np.float32))


def codes(module, book, bits: int, axis: int | None):
    array, alpha, beta = book
    return module.encode(array, alpha, beta, bits, axis, np.dtype(np.int8))


def every(module, kernel, books, bits: int, axis: int | None) -> None:
    """The kernel on every tensor, each output dropped at once (so its memory is reused)."""
    for book in books:
        kernel(module, book, bits, axis)


def row(label: str, kernel, other, books, bits: int, axis: int | None, repeats: int) -> None:
    for book in books:
        mine, theirs = kernel(this, book, bits, axis), kernel(other, book, bits, axis)
        assert mine.tobytes() == theirs.tobytes(), label
    new, old = alternating(lambda: every(this, kernel, books, bits, axis),
                           lambda: every(other, kernel, books, bits, axis), repeats)
    print(f"{label:<34} k={bits}  other {1e6 * old:9.1f} µs  this {1e6 * new:9.1f} µs  "
          f"this/other {new / old:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", help="the other build's extension file (_fast*.so)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    other = load_other(args.other)
    resnet = [w.detach().numpy() for w in resnet_weights()]
    for bits in (1, 2, 3, 4, 8):
        row("fake_quantize ResNet-18 per tensor", fused, other, code_books(resnet, bits, None),
            bits, None, args.repeats)
    for axis in (0, 1):
        for bits in (1, 2, 3):
            row(f"fake_quantize ResNet-18 axis {axis}", fused, other,
                code_books(resnet, bits, axis), bits, axis, args.repeats)
    for bits in (1, 2, 3):
        row("encode ResNet-18 per tensor", codes, other, code_books(resnet, bits, None), bits,
            None, args.repeats)
    generator = np.random.default_rng(0)
    for shape, axis in (((1000,), None), ((64, 27), 0), ((64, 576), 0), ((64, 2304), 0)):
        values = [generator.standard_normal(shape).astype(np.float32)]
        for bits in (1, 2, 3):
            row(f"fake_quantize {shape} axis {axis}", fused, other,
                code_books(values, bits, axis), bits, axis, 20 * args.repeats)
    for log2 in (20, 22):
        values = [generator.standard_normal(1 << log2).astype(np.float32)]
        for bits in (1, 2, 3, 4, 8):
            row(f"fake_quantize 2^{log2}", fused, other, code_books(values, bits, None), bits,
                None, args.repeats)
        for bits in (1, 2, 3):
            row(f"encode 2^{log2}", codes, other, code_books(values, bits, None), bits, None,
                args.repeats)


if __name__ == "__main__":
    main()
