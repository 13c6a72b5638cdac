"""Peak memory and speed of the model commands on a large synthetic bfloat16 model.

Run from the repository root (after ``python setup.py build_ext --inplace``)::

    python benchmarks/bench_models_large.py                # 8 × 4096 × 4096: 128M weights
    python benchmarks/bench_models_large.py --tensors 2    # a quarter of it

It writes a safetensors file of ``--tensors`` bfloat16 weight matrices of
``--size × --size`` (Laplace-distributed, seed 0; generated in slices, so the benchmark
itself stays small) to a temporary directory, then runs, each as its own process,

* ``ul2q-ref inspect MODEL`` (k = 1..8, per channel, best steps),
* ``ul2q-ref plan MODEL --budget 2.5``,
* ``ul2q-ref quantize MODEL --bits 4 -o q.npz``,
* ``ul2q-ref dequantize q.npz -o back.safetensors``,

and prints, per command, the wall time, the CPU time, the peak resident memory of that
process (``ru_maxrss`` from ``os.wait4``: the process's high-water mark, however busy the
machine is — an upper bound, since Linux counts the forking parent's peak too, and this
benchmark's own is small) and the weights handled per second of wall time. ``--jobs`` is passed
to inspect and plan (default: auto, every usable core). Wall times depend on the machine's
load, which is printed; memory does not.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_model(path: Path, tensors: int, size: int) -> int:
    """A bfloat16 safetensors file of `tensors` (size, size) weights; return the weights."""
    header = {}
    offset = 0
    for index in range(tensors):
        nbytes = size * size * 2
        header[f"layers.{index}.weight"] = {"dtype": "BF16", "shape": [size, size],
                                            "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(0)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        for index in range(tensors):
            scale = 0.02 * (1 + index % 3)
            for _ in range(0, size, 256):  # 256 rows at a time
                rows = rng.laplace(0.0, scale, (min(256, size), size)).astype(np.float32)
                handle.write((rows.view(np.uint32) >> 16).astype("<u2").tobytes())
    return tensors * size * size


def run(label: str, arguments: list[str], weights: int) -> dict:
    """Run ``python -m ul2q_ref ARGUMENTS``; print and return its time and peak memory."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "ul2q_ref", *arguments], cwd=ROOT,
                               env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    error = process.stderr.read().decode() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{label} failed ({process.returncode}): {error.strip()[-500:]}")
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    print(f"{label:<11} {wall:8.1f} s wall {cpu:8.1f} s CPU {peak:8.0f} MiB peak RSS "
          f"{weights / wall / 1e6:8.2f} M weights/s")
    return {"command": label, "wall_s": wall, "cpu_s": cpu, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tensors", type=int, default=8, help="weight matrices (default 8)")
    parser.add_argument("--size", type=int, default=4096, help="rows = columns (default 4096)")
    parser.add_argument("--jobs", default="auto", help="--jobs of inspect and plan")
    parser.add_argument("--only", action="append", default=[],
                        help="run only these commands (repeatable)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "large.safetensors"
        weights = write_model(model, options.tensors, options.size)
        print(f"{model.name}: {weights:,} bfloat16 weights in {options.tensors} tensors, "
              f"{model.stat().st_size / 2**20:.0f} MiB; cores usable "
              f"{len(os.sched_getaffinity(0))}, --jobs {options.jobs}; load average "
              f"{os.getloadavg()[0]:.2f}")
        quantized, back = Path(folder) / "q.npz", Path(folder) / "back.safetensors"
        commands = {
            "inspect": ["inspect", str(model), "--quiet", "--jobs", options.jobs],
            "plan": ["plan", str(model), "--budget", "2.5", "--quiet", "--jobs", options.jobs],
            "quantize": ["quantize", str(model), "--bits", "4", "-o", str(quantized)],
            "dequantize": ["dequantize", str(quantized), "-o", str(back)],
        }
        for label, arguments in commands.items():
            if not options.only or label in options.only or (
                    label == "quantize" and "dequantize" in options.only):
                run(label, arguments, weights)
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
