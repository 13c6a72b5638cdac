"""Why do (or don't) two threads pay? Probes of this machine and of the kernels' threading.

Run from the repository root (after ``python setup.py build_ext --inplace``)::

    python benchmarks/bench_threads.py            # 2^18 (cache-resident) and 2^24 float32

It prints, as ratios measured in this one run:

1. **the cores**: the same single-threaded kernel run in one process, then in two processes
   at once. If the two vCPUs are independent cores, each of the two runs as fast as the one
   alone (ratio ~1.0); if they share one physical core (SMT siblings on the host), or the
   hypervisor time-slices them, each takes up to twice as long.
2. **the kernels' threads**: ``fake_quantize`` (statistics included) and the moments on 1 and
   2 threads, on an array that fits in L2 (2^18 floats: compute-bound) and on one far larger
   than L3 (2^24: memory-bound), with how many threads the call really used.
3. **waking the threads**: the 2-thread call with the package's default wait
   (``GOMP_SPINCOUNT``, ``ul2q_ref.kernels.SPIN_COUNT``), ``OMP_WAIT_POLICY=PASSIVE`` (idle
   threads sleep at once), ``ACTIVE`` (they spin) and other spin counts, each in a fresh
   process, since libgomp reads the setting once when it is loaded.
4. **memory bandwidth**: ``np.copyto`` in one process and in two processes at once: how
   much of the machine's bandwidth one core can draw.
5. **the crossover**: ``fake_quantize`` (statistics included) on 1 and 2 threads, the two
   alternating call by call, for every size from 2^16 to 2^24, each in a few fresh
   processes, and the smallest size from which two threads never lost to one: the basis
   of the kernels' rule of one thread per ``_fast._min_per_thread`` elements
   (docs/performance.md, "Threads"). ``--crossover`` runs this part alone.

Sections 2, 3 and 5 lift the kernels' size rule in their processes
(``_fast._set_min_per_thread(1)``), so that two threads really run at every size measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ul2q_ref.kernels import SPIN_COUNT  # noqa: E402

# One measurement, run in a child process (so that the OpenMP settings are fresh) and
# printed as JSON: {name: median seconds}.
CHILD = r"""
import json, os, statistics, sys, time
sys.path.insert(0, {root!r})
import numpy as np
import ul2q_ref as uq
from ul2q_ref import _fast

def median_time(function, budget):
    function(); function()
    start = time.perf_counter(); function(); once = max(time.perf_counter() - start, 1e-7)
    times = []
    for _ in range(int(min(400, max(7, budget / once)))):
        start = time.perf_counter(); function(); times.append(time.perf_counter() - start)
    return statistics.median(times)

if {lift}:
    _fast._set_min_per_thread(1)  # two threads at every size (the rule is what is measured)
w = np.random.default_rng(0).standard_normal(2 ** {size}).astype(np.float32)
out = np.empty_like(w)
result = {{}}
for threads in {threads}:
    _fast.set_num_threads(threads)
    result[f"fake_quantize {{threads}}T"] = median_time(
        lambda: uq.fake_quantize(w, 2, backend="fast"), {budget})
    result[f"used {{threads}}T"] = _fast._last_thread_count()
    result[f"moments {{threads}}T"] = median_time(lambda: _fast.moments(w, None), {budget})
result["copyto"] = median_time(lambda: np.copyto(out, w), {budget})
print(json.dumps(result))
"""


# Part 5: 1 and 2 threads alternating call by call in one process, so that a change in the
# machine's load while it runs slows both alike; {name: median seconds}.
INTERLEAVED = r"""
import json, statistics, sys, time
sys.path.insert(0, {root!r})
import numpy as np
import ul2q_ref as uq
from ul2q_ref import _fast

_fast._set_min_per_thread(1)  # two threads at every size (the rule is what is measured)
w = np.random.default_rng(0).standard_normal(2 ** {size}).astype(np.float32)
times = {{1: [], 2: []}}
for threads in (1, 2, 1, 2):  # warm-up, and the pool started
    _fast.set_num_threads(threads); uq.fake_quantize(w, 2, backend="fast")
start = time.perf_counter(); uq.fake_quantize(w, 2, backend="fast")
repeats = int(min(300, max(9, {budget} / max(time.perf_counter() - start, 1e-7) / 2)))
for i in range(repeats):
    for threads in ((1, 2) if i % 2 == 0 else (2, 1)):
        _fast.set_num_threads(threads)
        start = time.perf_counter(); uq.fake_quantize(w, 2, backend="fast")
        times[threads].append(time.perf_counter() - start)
print(json.dumps({{f"fake_quantize {{t}}T": statistics.median(v) for t, v in times.items()}}))
"""


def run_interleaved(size: int, budget: float) -> dict[str, float]:
    """Part 5's measurement at 2^`size` elements, in a fresh process."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.pop("GOMP_SPINCOUNT", None)
    env.pop("OMP_WAIT_POLICY", None)
    code = INTERLEAVED.format(root=str(ROOT), size=size, budget=budget)
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True).stdout
    return json.loads(output)


def run_child(size: int, threads: tuple[int, ...], budget: float, policy: str = "default",
              copies: int = 1) -> list[dict[str, float]]:
    """Run the measurement in `copies` processes at once; their results.

    `policy`: ``default`` (the package's own setting), ``PASSIVE`` or ``ACTIVE``
    (OMP_WAIT_POLICY), or ``spin=N`` (GOMP_SPINCOUNT=N)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.pop("GOMP_SPINCOUNT", None)
    env.pop("OMP_WAIT_POLICY", None)
    if policy.startswith("spin="):  # libgomp spins this many times, then sleeps
        env["GOMP_SPINCOUNT"] = policy.removeprefix("spin=")
    elif policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    code = CHILD.format(root=str(ROOT), size=size, threads=threads, budget=budget, lift=True)
    children = [subprocess.Popen([sys.executable, "-c", code], env=env,
                                 stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    results = []
    for child in children:
        output, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"the measurement process failed (exit {child.returncode})")
        results.append(json.loads(output))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=0.5,
                        help="seconds of repeats per measurement (default: 0.5)")
    parser.add_argument("--crossover", action="store_true",
                        help="measure only the crossover (part 5)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per size in part 5 (default: 3)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("times: medians in milliseconds, float32 standard-normal input, k = 2\n")
    if not args.crossover:
        probe(args.budget)
    crossover(args.budget, args.repeats)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{time.perf_counter() - started:.0f} s")
    return 0


def crossover(budget: float, repeats: int) -> None:
    """Part 5: 1 vs 2 threads at every size from 2^16 to 2^24, `repeats` processes each."""
    print(f"5. the crossover: fake_quantize 2T / 1T speed-up by size, {repeats} processes each")
    never_lost = None
    for size in range(16, 25):
        ratios = []
        for _ in range(repeats):
            r = run_interleaved(size, budget)
            ratios.append(r["fake_quantize 1T"] / r["fake_quantize 2T"])
        print(f"   2^{size}: " + ", ".join(f"{ratio:.2f}x" for ratio in ratios)
              + f" (worst {min(ratios):.2f}x)")
        if min(ratios) < 1.0:
            never_lost = None
        elif never_lost is None:
            never_lost = size
    found = f"2^{never_lost}" if never_lost is not None else "none of these sizes"
    print(f"   two threads never lost to one from {found} on (compare the kernels' rule, "
          "docs/performance.md, \"Threads\")")


def probe(budget: float) -> None:
    """Parts 1 to 4."""
    print("1. the cores: one single-threaded kernel alone vs two at once (2^18, in L2)")
    alone = run_child(18, (1,), budget)[0]
    pair = run_child(18, (1,), budget, copies=2)
    slower = statistics.mean(r["fake_quantize 1T"] for r in pair) / alone["fake_quantize 1T"]
    print(f"   alone {alone['fake_quantize 1T'] * 1e3:.3f}, two at once "
          + ", ".join(f"{r['fake_quantize 1T'] * 1e3:.3f}" for r in pair)
          + f": each {slower:.2f}x the time alone (1.0: independent cores)\n")

    print(f"2. the kernels' threads (the default wait: GOMP_SPINCOUNT={SPIN_COUNT})")
    for size in (18, 24):
        r = run_child(size, (1, 2), budget)[0]
        print(f"   2^{size}: fake_quantize 1T {r['fake_quantize 1T'] * 1e3:.3f}, "
              f"2T {r['fake_quantize 2T'] * 1e3:.3f} (threads used: {r['used 2T']}) -> "
              f"{r['fake_quantize 1T'] / r['fake_quantize 2T']:.2f}x; moments 1T "
              f"{r['moments 1T'] * 1e3:.3f}, 2T {r['moments 2T'] * 1e3:.3f} -> "
              f"{r['moments 1T'] / r['moments 2T']:.2f}x; copyto {r['copyto'] * 1e3:.3f}")
    print()

    print("3. waking the threads: fake_quantize on 1 thread and on 2 under each wait policy")
    policies = ("default", "PASSIVE", "ACTIVE", "spin=300", "spin=30000")
    for size in (18, 22, 24):
        one = run_child(size, (1,), budget)[0]["fake_quantize 1T"]
        cells = []
        for policy in policies:
            two = run_child(size, (2,), budget, policy)[0]["fake_quantize 2T"]
            cells.append(f"{policy} {two * 1e3:.3f} ({one / two:.2f}x)")
        print(f"   2^{size}: 1T {one * 1e3:.3f}; 2T: " + ", ".join(cells))
    print(f"   (default: GOMP_SPINCOUNT={SPIN_COUNT}; PASSIVE: idle threads sleep at once; "
          "ACTIVE: they spin; spin=N: N spins, then sleep)")
    print()

    print("4. memory bandwidth: np.copyto of 2^24 floats (64 MiB) alone vs two at once")
    alone_copy = run_child(24, (), budget)[0]["copyto"]
    pair_copy = [r["copyto"] for r in run_child(24, (), budget, copies=2)]
    moved = 2 * 4 * 2**24 / 1e9  # GB read + written per copy
    print(f"   alone {alone_copy * 1e3:.2f} ({moved / alone_copy:.1f} GB/s), two at once "
          f"{', '.join(f'{t * 1e3:.2f}' for t in pair_copy)} "
          f"({sum(moved / t for t in pair_copy):.1f} GB/s together)")


if __name__ == "__main__":
    sys.exit(main())
