"""A training's bits are a function of its configuration and seed (issue 20, item 6).

Each training runs in its own process, as ``ul2q-ref train`` and the workers of
``reproduce --jobs N`` do, under different thread settings: the BLAS thread count
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``) and the μL2Q kernels'
(``UL2Q_NUM_THREADS``). Without the trainer's pin (:mod:`ul2q_ref.nn.determinism`) the
first two give different weights on a multi-core machine (OpenBLAS splits some LeNet-5
products along the summed dimension); with it the weights' bytes must be identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ul2q_ref.nn.determinism import BLAS_THREADS, pinned_blas
from ul2q_ref.nn.train import TrainConfig, train, train_command

ROOT = Path(__file__).resolve().parents[1]

TRAIN = r"""
import hashlib, json, sys
import numpy as np
from ul2q_ref.nn.train import TrainConfig, train
config = TrainConfig(model="lenet5", scheme="ul2q", bits=1, last_bits=8, epochs=1,
                     max_iterations=30, batch=50, weight_decay=1e-4, train_limit=1500,
                     test_limit=300, seed=2)
result = train(config, progress=False)
digest = hashlib.sha256()
for name, value in sorted(result.model.state_dict().items()):
    digest.update(name.encode())
    digest.update(np.ascontiguousarray(value).tobytes())
print(json.dumps({"sha256": digest.hexdigest(), "loss": result.history[-1].train_loss,
                  "environment": result.environment}))
"""
"""A few dozen iterations of the full-data run's ul2q-1 configuration on the embedded
subset: long enough for the products whose sum order depends on the thread count to run
(they do in every step), short enough for a test."""


def _train_in_process(threads: int) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "UL2Q_NUM_THREADS"):
        environment[name] = str(threads)
    result = subprocess.run([sys.executable, "-c", TRAIN], capture_output=True, text=True,
                            env=environment, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_one_and_two_threads_give_the_same_bits():
    one, two = _train_in_process(1), _train_in_process(2)
    assert one["sha256"] == two["sha256"]
    assert one["loss"] == two["loss"]
    for run, threads in ((one, "1"), (two, "2")):
        environment = run["environment"]
        assert environment["thread_variables"]["OPENBLAS_NUM_THREADS"] == threads
        assert environment["blas_threads"] == BLAS_THREADS == 1
        assert environment["blas"], "no BLAS library found to pin"
        assert all(library["num_threads"] == 1 for library in environment["blas"])
        if environment["fast_kernels"]:  # the compiled kernels ran with the threads asked for
            assert environment["kernel_threads"] == int(threads)


def test_the_pin_is_undone_after_training():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="the pin's own dependency")

    def counts():
        return [library["num_threads"] for library in threadpoolctl.threadpool_info()
                if library["user_api"] == "blas"]

    before = counts()
    with pinned_blas() as libraries:
        assert counts() == [1] * len(before) and len(libraries) == len(before)
    assert counts() == before


def test_the_record_says_how_to_retrain_it(tmp_path):
    config = TrainConfig(epochs=1, train_limit=64, test_limit=40, batch=32)
    result = train(config, out_dir=tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    environment = metrics["environment"]
    assert environment == json.loads(json.dumps(result.environment))
    assert environment["numpy"] == np.__version__ and environment["ul2q_ref"]
    assert {library["internal_api"] for library in environment["blas"]} <= {
        "openblas", "mkl", "blis", "flexiblas"}
    assert environment["cpu"] and environment["argv"]
    command = train_command(config, tmp_path / "again")
    assert command.startswith("ul2q-ref train --model lenet5 --scheme float --epochs 1 ")
    digest = hashlib.sha256(json.dumps(metrics["config"], sort_keys=True).encode())
    assert digest.hexdigest() == hashlib.sha256(
        json.dumps(json.loads(config.to_json()), sort_keys=True).encode()).hexdigest()


def test_jobs_one_and_two_give_the_same_records(tmp_path):
    """``--jobs 1`` trains in this process, ``--jobs 2`` in workers: the same numbers."""
    from ul2q_ref.reproduce import accuracy

    base = TrainConfig(epochs=1, max_iterations=8, batch=50, train_limit=400, test_limit=200)
    records = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        accuracy.compute(base, runs=("ul2q-1", "fixed_point-2"), seeds=(0,), jobs=jobs,
                         out_dir=out, progress=False)
        records[jobs] = {path.parent.name: json.loads(path.read_text(encoding="utf-8"))
                         for path in sorted((out / "runs").glob("*/result.json"))}
    assert sorted(records[1]) == sorted(records[2]) == ["fixed_point-2-seed0", "ul2q-1-seed0"]
    for name, record in records[1].items():
        other = records[2][name]
        assert [epoch["train_loss"] for epoch in record["epochs"]] == [
            epoch["train_loss"] for epoch in other["epochs"]]
        assert record["test_accuracy_percent"] == other["test_accuracy_percent"]
        assert record["command"].startswith("ul2q-ref train --model lenet5 ")
        assert record["environment"]["blas_threads"] == 1
