"""Time ``ul2q-ref inspect`` and ``plan`` on a ResNet-18-shaped model (11.7M weights).

Run from the repository root (after ``python setup.py build_ext --inplace``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_models.py

It writes a safetensors file with torchvision's ResNet-18 names and shapes (He-normal conv
weights, a Laplace fc layer, BatchNorm tensors; seed 0) to a temporary directory with
``safetensors.numpy.save_file``, then reports the CPU time (``time.process_time``) and the
wall time of reading its index, of the full ``inspect`` measurements (on one thread and on
every usable core) at k = 1..8 (statistics,
per-tensor and per-channel losses, best steps), of the losses alone (what ``plan`` measures)
and of the exact 2.5-bit plan. The load average is printed: on a shared machine wall time
inflates with it, CPU time much less.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def resnet18(path: Path) -> int:
    """Write the model; return its number of conv and linear weights."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        shape = (out, inp, k, k)
        tensors[f"{name}.weight"] = rng.normal(0, np.sqrt(2 / (inp * k * k)), shape).astype(
            np.float32)

    def norm(name: str, c: int) -> None:
        for part, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0),
                            ("running_var", 1.0)):
            tensors[f"{name}.{part}"] = np.full(c, value, np.float32)

    conv("conv1", 64, 3, 7)
    norm("bn1", 64)
    inp = 64
    for stage, out in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            conv(f"{prefix}.conv1", out, inp if block == 0 else out, 3)
            norm(f"{prefix}.bn1", out)
            conv(f"{prefix}.conv2", out, out, 3)
            norm(f"{prefix}.bn2", out)
            if block == 0 and inp != out:
                conv(f"{prefix}.downsample.0", out, inp, 1)
                norm(f"{prefix}.downsample.1", out)
        inp = out
    tensors["fc.weight"] = rng.laplace(0, 0.02, (1000, 512)).astype(np.float32)
    tensors["fc.bias"] = np.zeros(1000, np.float32)
    save_file(tensors, str(path))
    return sum(v.size for v in tensors.values() if v.ndim >= 2)


def timed(label: str, function, *args, **options):
    cpu, wall = time.process_time(), time.perf_counter()
    result = function(*args, **options)
    print(f"{label:<44} {time.process_time() - cpu:7.2f} s CPU  "
          f"{time.perf_counter() - wall:7.2f} s wall")
    return result


def main() -> None:
    import ul2q_ref as uq
    from ul2q_ref.weights import (
        capacity_bits,
        inspect_tensors,
        plan_bits,
        read_model,
        select_weights,
    )

    print(f"compiled kernels: {uq.HAVE_FAST}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
          f"; load average {os.getloadavg()[0]:.2f}")
    jobs = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as folder:  # the tensors are read when measured
        path = Path(folder) / "resnet18.safetensors"
        count = resnet18(path)
        print(f"{path.name}: {count:,} conv and linear weights, {path.stat().st_size:,} bytes")
        model = timed("read the index", read_model, path)
        tensors = select_weights(model)
        bits = range(1, 9)
        timed("inspect (k = 1..8, per channel, best steps)", inspect_tensors, tensors, bits)
        timed(f"inspect, {jobs} threads (--jobs auto)", inspect_tensors, tensors, bits,
              jobs=jobs)
        rows = timed("losses only (what plan measures)", inspect_tensors, tensors, bits,
                     per_channel=False, best_step=False)
    total = sum(row["n"] for row in rows)
    result = timed("exact 2.5-bit plan", plan_bits, rows, capacity_bits(total, "2.5"), bits)
    print(f"plan: {result['bits_per_weight']:.4f} bits per weight, normalised error "
          f"{result['normalised_error']:.5f}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
