"""Fuzz every file reader: corrupted files load or fail with one clean error (issue 11).

The corruptions run in a subprocess of their own (tests/fuzz_files_worker.py) with its
address space capped, an alarm per example against hangs, and its peak RSS reported: a
reader that allocates what a lying header claims fails the test instead of the machine.
Set FUZZ_EXAMPLES for a longer run (the default keeps CI near one minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEAK_RSS_LIMIT_KIB = 1 << 20  # 1 GiB; the valid files are all below 4 MB


def test_corrupted_files_load_or_fail_cleanly_within_bounded_memory():
    examples = os.environ.get("FUZZ_EXAMPLES", "12")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz_files_worker.py"),
                             examples], capture_output=True, text=True, env=environment,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["peak_rss_kib"] < PEAK_RSS_LIMIT_KIB, report
    kinds = {"npy", "npz", "npz-compressed", "quantized", "idx", "idx-gzip", "cifar",
             "checkpoint", "exported", "vectors"}
    assert set(report["outcomes"]) == kinds
    for kind, counts in report["outcomes"].items():
        assert counts["loaded"] + counts["error"] >= 1, kind
