"""Start-up time: ``import ul2q_ref`` and ``ul2q-ref --help`` against ``import numpy``.

    python benchmarks/bench_startup.py [--runs 15] [--tree PATH]

Each command runs in a fresh interpreter (``python -c …`` / ``python -m ul2q_ref --help``),
timed from outside with ``time.perf_counter`` around ``subprocess.run``; the commands are
interleaved, so a slow spell of a shared machine hits all of them alike, and the median of
--runs is reported. Targets (issue 19): ``import ul2q_ref`` within 2x of ``import numpy``,
``ul2q-ref --help`` within 3x of ``python -c "import numpy"`` (an interpreter start plus the
NumPy import). The import ratio is also given net of the interpreter start (each median
less that of ``python -c pass``). The ratios are what to compare; absolute times depend on
the machine. --tree measures another checkout (e.g. the commit before a change).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "import numpy": ["-c", "import numpy"],
    "import ul2q_ref": ["-c", "import ul2q_ref"],
    "ul2q-ref --help": ["-m", "ul2q_ref", "--help"],
    "ul2q-ref lambdas --bits 2": ["-m", "ul2q_ref", "lambdas", "--bits", "2"],
}


def seconds(arguments: list[str], environment: dict[str, str], tree: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], env=environment, cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout whose ul2q_ref is timed (default: this one)")
    args = parser.parse_args()
    tree = args.tree.resolve()
    environment = {**os.environ, "PYTHONPATH": str(tree)}  # that tree, not an installed copy
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for arguments in COMMANDS.values():  # warm the file cache once
        seconds(arguments, environment, tree)
    for _ in range(args.runs):
        for name, arguments in COMMANDS.items():
            times[name].append(seconds(arguments, environment, tree))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"median of {args.runs} runs each, {sys.executable}, ul2q_ref from {tree}")
    for name, value in median.items():
        print(f"{name:<28} {1000 * value:8.1f} ms")
    numpy_start = median["import numpy"]
    package = median["import ul2q_ref"] / numpy_start
    start = median["python -c pass"]
    net = (median["import ul2q_ref"] - start) / (numpy_start - start)
    helps = median["ul2q-ref --help"] / numpy_start
    print(f"import ul2q_ref / import numpy:           {package:.2f}x  (target <= 2x: "
          f"{'met' if package <= 2 else 'MISSED'}); net of the interpreter start {net:.2f}x")
    print(f"ul2q-ref --help / python -c 'import numpy': {helps:.2f}x  (target <= 3x: "
          f"{'met' if helps <= 3 else 'MISSED'})")


if __name__ == "__main__":
    main()
