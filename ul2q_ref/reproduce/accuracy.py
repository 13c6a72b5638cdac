r"""Part 3: the paper's Table IV, MNIST column: LeNet-5 under every scheme, over seeds.

Twelve configurations of the NumPy trainer (:func:`ul2q_ref.nn.train.train`) that differ only
in the weight quantiser: float; μL2Q at 1, 2, 4, 8 and 16 bits; binary (BWN); ternary (TWN);
dynamic fixed point at 2, 4, 8 and 16 bits. Each is trained once per seed; a seed fixes the
initial weights, the batch order and the dropout masks, so seed s of every configuration
starts from the same weights and sees the same batches.

**Layer widths.** By default the fork's rule (:mod:`ul2q_ref.reproduce.recipes`): every
convolution and fully connected weight is quantised, the first layer included, biases stay
in float, and the classifier is kept at max(k, 8) bits. ``layers="uniform"`` quantises the
classifier at k too.

**Seeds and processes.** Every (configuration, seed) pair is one job; ``jobs=N`` trains N of
them at a time in separate processes with BLAS pinned to one thread each. With an output
directory each job writes its checkpoint and ``result.json`` under ``runs/NAME-seedS/``; a
rerun reuses finished jobs and resumes unfinished ones from their last epoch.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import queue
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .._atomic import write_text_atomic
from ..nn.data import Dataset, load_dataset
from ..nn.models import Sequential
from ..nn.train import (
    CHECKPOINT_NAME,
    EpochMetrics,
    TrainConfig,
    build,
    load_checkpoint,
    train,
    train_command,
)
from .recipes import last_bits_for

RUNS: dict[str, tuple[str, int | None]] = {
    "float": ("float", None),
    "ul2q-1": ("ul2q", 1),
    "ul2q-2": ("ul2q", 2),
    "ul2q-4": ("ul2q", 4),
    "ul2q-8": ("ul2q", 8),
    "ul2q-16": ("ul2q", 16),
    "binary": ("binary", 1),
    "ternary": ("ternary", 2),
    "fixed_point-2": ("fixed_point", 2),
    "fixed_point-4": ("fixed_point", 4),
    "fixed_point-8": ("fixed_point", 8),
    "fixed_point-16": ("fixed_point", 16),
}
"""Every configuration of the comparison: name -> (scheme, bit width)."""

PAPER_TABLE_IV: dict[str, dict[str, Any]] = {
    "LeNet-5 (MNIST)": {
        "float": 99.10, "ul2q-1": 99.06, "ul2q-2": 99.12, "ul2q-4": 99.12, "ul2q-8": 99.16,
        "ul2q-16": 99.14, "binary": 98.67, "ternary": 98.33, "fixed_point-2": 98.90,
        "fixed_point-4": 99.10, "fixed_point-8": 99.10, "fixed_point-16": 99.10,
    },
    "Cifarnet (CIFAR-10)": {
        "float": 81.82, "ul2q-1": 79.28, "ul2q-2": 80.26, "ul2q-4": 81.32, "ul2q-8": 81.66,
        "ul2q-16": 81.64, "fixed_point-2": 19.10, "fixed_point-4": 75.90,
        "fixed_point-8": 81.40, "fixed_point-16": 81.70,
    },
    "VGG7-64 (CIFAR-10)": {
        "float": 89.24, "ul2q-1": 89.02, "ul2q-2": 89.50, "ul2q-4": 89.80, "ul2q-8": 89.70,
        "ul2q-16": 89.42,
    },
    "ResNet-18 top-1/top-5 (ImageNet)": {
        "float": "65.44/85.80", "ul2q-1": "66.24/86.00", "ul2q-2": "65.60/86.12",
        "ul2q-4": "65.92/86.72", "ul2q-8": "65.52/86.36", "ul2q-16": "65.40/86.88",
    },
}
"""Table IV of the paper, test accuracy in %, as published (the fork's
``expriment_results.png``): the binary entry is BitwiseNN, the ternary one TNN, and
``fixed_point-k`` the paper's FP-k baselines."""

PAPER_ACCURACY: dict[str, float | None] = {
    name: PAPER_TABLE_IV["LeNet-5 (MNIST)"].get(name) for name in RUNS}
"""The paper's LeNet-5 MNIST test accuracy (%) of each configuration of :data:`RUNS`."""

OTHER_MODELS_COMMAND: dict[str, str] = {
    "Cifarnet (CIFAR-10)": "python examples/train_torch.py --model cifarnet --data cifar10:DIR",
    "VGG7-64 (CIFAR-10)": "python examples/train_torch.py --model vgg7 --data cifar10:DIR",
    "ResNet-18 top-1/top-5 (ImageNet)":
        "python examples/train_torch.py --model resnet18 --data imagefolder:DIR",
}
"""How the rows this part does not train would be run (CIFAR-10 and ImageNet are not on
this machine, and realistically they need a GPU): the PyTorch recipe, per bit width
``--bits K``."""

RESULT_NAME = "result.json"
"""A finished job's record, inside its directory under ``runs/``."""


@dataclass
class AccuracyOutcome:
    """The part's JSON results, and the float model of the first seed (for normality)."""

    results: dict[str, Any]
    float_model: Sequential | None
    float_config: TrainConfig | None


@dataclass(frozen=True)
class Job:
    """One training: configuration `run` of :data:`RUNS` with one seed."""

    run: str
    seed: int
    config: TrainConfig

    @property
    def key(self) -> str:
        """The job's directory name under ``runs/``."""
        return f"{self.run}-seed{self.seed}"


def run_config(base: TrainConfig, name: str, layers: str = "paper") -> TrainConfig:
    """`base` with the scheme and widths of configuration `name` under the layer rule."""
    scheme, bits = RUNS[name]
    return replace(base, scheme=scheme,
                   bits=bits if scheme in ("ul2q", "fixed_point") else None,
                   last_bits=last_bits_for(bits, layers))


def make_jobs(base: TrainConfig, runs: Sequence[str], seeds: Sequence[int],
              layers: str = "paper") -> list[Job]:
    """Every (configuration, seed) job, seed by seed so that early results span the runs."""
    unknown = [name for name in runs if name not in RUNS]
    if unknown:
        raise ValueError(f"unknown accuracy runs {unknown}; known: {', '.join(RUNS)}")
    return [Job(name, seed, replace(run_config(base, name, layers), seed=seed))
            for seed in seeds for name in runs]


def seed_statistics(values: Sequence[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation of per-seed accuracies.

    For n values x_i: mean x̄ = Σ x_i / n and sd s = sqrt(Σ (x_i − x̄)² / (n − 1)), the
    spread one more seed would be expected to show; None for a single seed.
    """
    if not values:
        raise ValueError("seed_statistics needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd}


def compute(
    base: TrainConfig,
    *,
    runs: Sequence[str] = tuple(RUNS),
    seeds: Sequence[int] = (0,),
    layers: str = "paper",
    jobs: int = 1,
    dataset: Dataset | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> AccuracyOutcome:
    """Train every configuration in `runs` once per seed; test accuracy of each.

    Parameters
    ----------
    base : TrainConfig
        The shared configuration (model, schedule, data, limits); its scheme, widths and seed
        are replaced job by job.
    runs : sequence of str
        Names from :data:`RUNS`, in the order to report them.
    seeds : sequence of int
        The seeds; each configuration is trained once per seed.
    layers : str
        ``paper`` (classifier at max(k, 8)) or ``uniform`` (every layer at k).
    jobs : int
        Trainings at a time, each in its own process with one BLAS thread (1: in this
        process, with the given threads).
    dataset : Dataset, optional
        The loaded data of ``base.data`` (loaded once by the caller; processes load their own).
    out_dir : path, optional
        Keeps each job's checkpoint and result under ``runs/`` to resume from.
    progress : bool
        Progress bars on stderr while training (one process only; with several processes
        a line per finished job).
    log : callable, optional
        Receives one line per finished job.
    on_run : callable, optional
        Called with the part's results so far after every finished job.

    Returns
    -------
    AccuracyOutcome
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    work = make_jobs(base, runs, seeds, layers)
    runs_dir = None if out_dir is None else Path(out_dir) / "runs"
    settings = {key: value for key, value in vars(base).items()
                if key not in ("scheme", "bits", "last_bits", "layer_bits", "seed")}
    results: dict[str, Any] = {
        "settings": settings,
        "layers": layers,
        "seeds": list(seeds),
        "test_images": None if dataset is None else _test_count(dataset, base),
        "train_images": None if dataset is None else _train_count(dataset, base),
        "rows": [],
    }
    done: dict[str, dict[str, Any]] = {}
    for job in work:
        record = _finished(job, runs_dir)
        if record is not None:
            done[job.key] = record
    if done and log is not None:
        log(f"accuracy: {len(done)} of {len(work)} trainings already done in {runs_dir}")

    def finish(job: Job, record: dict[str, Any]) -> None:
        done[job.key] = record
        results.update(summarise(_rows(runs, seeds, done), results["test_images"]))
        if log is not None:
            log(f"accuracy [{len(done)}/{len(work)}] {job.key}: "
                f"{record['test_accuracy_percent']:.2f}% test accuracy "
                f"({record['seconds']:.0f} s)")
        if on_run is not None:
            on_run(results)

    pending = [job for job in work if job.key not in done]
    float_model = None
    if jobs == 1 or len(pending) <= 1:
        for job in pending:
            if log is not None:
                log(f"accuracy [{len(done) + 1}/{len(work)}] training {job.key}")
            record, model = _train_job(job, runs_dir, dataset, progress)
            if job.run == "float" and job.seed == seeds[0]:
                float_model = model
            finish(job, record)
    else:
        if log is not None:
            log(f"accuracy: training {len(pending)} job(s), {jobs} at a time")
        _train_in_processes(pending, runs_dir, jobs, finish)
    results.update(summarise(_rows(runs, seeds, done), results["test_images"]))
    float_config = None
    if "float" in runs:
        float_config = replace(run_config(base, "float", layers), seed=seeds[0])
        if float_model is None:
            float_model = _load_model(float_config, runs_dir, dataset)
    return AccuracyOutcome(results, float_model, float_config)


def _train_job(job: Job, runs_dir: Path | None, dataset: Dataset | None,
               progress: bool) -> tuple[dict[str, Any], Sequential]:
    """Train `job` (resuming its checkpoint if there is one); its record and model."""
    job_dir = None if runs_dir is None else runs_dir / job.key
    resume = job_dir is not None and (job_dir / CHECKPOINT_NAME).exists()
    if resume:
        assert job_dir is not None
        saved = load_checkpoint(job_dir / CHECKPOINT_NAME)["config"]
        if replace(saved, epochs=job.config.epochs) != job.config:
            raise ValueError(f"--out: {job_dir} holds a training of another configuration; "
                             "use --force to start afresh or another --out")
    result = train(job.config, out_dir=job_dir, resume=resume, progress=progress,
                   dataset=dataset)
    record = {
        "run": job.run,
        "seed": job.seed,
        "config": asdict(job.config),
        "layers": {layer: {"scheme": s, "bits": b} for layer, (s, b) in result.layers.items()},
        "test_accuracy_percent": 100.0 * result.test_accuracy,
        "epochs": [_epoch(m) for m in result.history],
        "seconds": sum(m.seconds for m in result.history),
        "command": train_command(job.config, job_dir if job_dir is not None else job.key),
        "environment": result.environment,
    }
    if job_dir is not None:
        for leftover in job_dir.glob(f".{RESULT_NAME}.*.tmp"):  # of a killed earlier run
            leftover.unlink(missing_ok=True)
        write_text_atomic(job_dir / RESULT_NAME, json.dumps(record, indent=2) + "\n")
    return record, result.model


def _train_in_processes(pending: Sequence[Job], runs_dir: Path | None, jobs: int,
                        finish: Callable[[Job, dict[str, Any]], None]) -> None:
    """Train `pending` in `jobs` worker processes; `finish` each record as it arrives.

    The workers ignore SIGINT: Ctrl-C (which the terminal sends to the whole process group)
    interrupts this process only, which then cancels the queued jobs and terminates the
    workers (:func:`_stop_workers`) before the KeyboardInterrupt goes on, so the command
    ends within seconds; an unfinished job resumes from its last epoch's checkpoint next
    time. A job that fails stops the others the same way and raises its error here.
    """
    arrived: queue.SimpleQueue = queue.SimpleQueue()
    with _single_threaded_blas(), _sigint_ignored():  # the workers inherit both
        pool = multiprocessing.get_context("spawn").Pool(
            min(jobs, len(pending)), initializer=_ignore_sigint)
    try:
        for job in pending:
            pool.apply_async(_train_job_in_process, (job, runs_dir),
                             callback=functools.partial(_arrived_record, arrived, job),
                             error_callback=functools.partial(_arrived_error, arrived, job))
        pool.close()
        for _ in pending:
            job, record, error = _next_arrival(arrived)
            if error is not None:
                raise error
            finish(job, record)
    except BaseException:
        _stop_workers(pool)
        raise
    pool.join()


def _arrived_record(arrived: queue.SimpleQueue, job: Job, record: dict[str, Any]) -> None:
    """A worker's finished record, queued for :func:`_next_arrival` (pool callback)."""
    arrived.put((job, record, None))


def _arrived_error(arrived: queue.SimpleQueue, job: Job, error: BaseException) -> None:
    """A worker's failure, queued for :func:`_next_arrival` (pool error callback)."""
    arrived.put((job, None, error))


def _next_arrival(arrived: queue.SimpleQueue) -> tuple[Job, Any, BaseException | None]:
    """The next finished job; waits in short steps so that Ctrl-C is seen at once."""
    while True:
        try:
            return arrived.get(timeout=0.2)
        except queue.Empty:
            continue


def _stop_workers(pool) -> None:
    """Cancel the queued jobs and terminate the workers, with Ctrl-C ignored meanwhile (a
    second Ctrl-C cannot interrupt the clean-up half way, and the clean-up takes a moment:
    the workers die on SIGTERM, and their checkpoints are written atomically)."""
    with _sigint_ignored():
        pool.terminate()
        pool.join()


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored inside the block (where signals can be set: the main thread)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not ours to set
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ignore_sigint() -> None:
    """A worker's initialiser: Ctrl-C is for the main process, which stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _train_job_in_process(job: Job, runs_dir: Path | None) -> dict[str, Any]:
    """A worker process's job: load the data, train without progress bars, return the record."""
    dataset = load_dataset(job.config.data)
    record, _ = _train_job(job, runs_dir, dataset, progress=False)
    return record


def _finished(job: Job, runs_dir: Path | None) -> dict[str, Any] | None:
    """The record of `job` if an earlier run finished it with the same configuration."""
    if runs_dir is None or not (runs_dir / job.key / RESULT_NAME).is_file():
        return None
    path = runs_dir / job.key / RESULT_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        same = TrainConfig(**dict(record["config"], milestones=tuple(
            record["config"]["milestones"]))) == job.config
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--out: {path} is not a readable job record ({error}); "
                         "use --force to start afresh") from None
    if not same:
        raise ValueError(f"--out: {path.parent} holds a training of another configuration; "
                         "use --force to start afresh or another --out")
    return record


def _load_model(config: TrainConfig, runs_dir: Path | None,
                dataset: Dataset | None) -> Sequential | None:
    """The trained model of `config` from its checkpoint under `runs_dir`, if there is one."""
    if runs_dir is None or dataset is None:
        return None
    path = runs_dir / f"float-seed{config.seed}" / CHECKPOINT_NAME
    if not path.is_file():
        return None
    model, _ = build(config, dataset)
    model.load_state_dict(load_checkpoint(path)["model"])
    return model


def _rows(runs: Sequence[str], seeds: Sequence[int],
          done: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration with at least one finished seed: per-seed values and stats."""
    rows = []
    for name in runs:
        records = [done[f"{name}-seed{seed}"] for seed in seeds if f"{name}-seed{seed}" in done]
        if not records:
            continue
        values = [record["test_accuracy_percent"] for record in records]
        stats = seed_statistics(values)
        mean = stats["mean"]
        assert mean is not None  # seed_statistics always has a mean
        scheme, bits = RUNS[name]
        paper = PAPER_ACCURACY[name]
        rows.append({
            "run": name,
            "scheme": scheme,
            "bits": bits,
            "layers": records[0]["layers"],
            "seeds": [record["seed"] for record in records],
            "per_seed_percent": values,
            "test_accuracy_percent": mean,
            "sd_percent": stats["sd"],
            "paper_accuracy_percent": paper,
            "difference_to_paper_points": None if paper is None else mean - paper,
            "epochs": records[0]["epochs"],
            "seconds": sum(record["seconds"] for record in records),
        })
    _compare_to_float(rows)
    return rows


ORDERINGS = (("ul2q-1", "binary"), ("ul2q-2", "ternary"), ("ul2q-2", "fixed_point-2"))
"""The paper's orderings, (better, worse): μL2Q ≥ binary at 1 bit, ≥ ternary and ≥ dynamic
fixed point at 2 bits."""

TABLE_IV_RUNS = ("ul2q-1", "ul2q-2", "ul2q-4", "ul2q-8", "ul2q-16")
"""The μL2Q rows compared with the paper's Table IV."""

TABLE_IV_MARGIN_POINTS = 0.15
"""How far below Table IV a μL2Q mean may be and still count as agreeing (points)."""


def summarise(rows: list[dict[str, Any]], test_images: int | None) -> dict[str, Any]:
    """The accuracy part's rows with the judgements made on them: ``noise``, ``orderings``
    and ``table_iv`` (:func:`noise`, :func:`orderings`, :func:`table_iv`), for results.json.
    """
    return {"rows": rows, "noise": noise(rows, test_images), "orderings": orderings(rows),
            "table_iv": table_iv(rows)}


def noise(rows: Sequence[dict[str, Any]], test_images: int | None) -> dict[str, Any] | None:
    r"""How large a difference between two runs must be to mean anything.

    With p the float run's test accuracy (the first row's if there is no float run) on n test
    images, the binomial standard error is SE = 100·√(p(1 − p)/n) points, and a difference
    between two runs below 2·√2·SE (two standard errors of a difference of two independent
    accuracies) is not evidence either way. None without rows or a test-set size.
    """
    if not rows or not test_images:
        return None
    reference = next((row for row in rows if row["run"] == "float"), rows[0])
    p = reference["test_accuracy_percent"] / 100.0
    error = 100.0 * math.sqrt(max(p * (1.0 - p), 0.0) / test_images)
    return {"test_images": test_images, "reference_run": reference["run"],
            "accuracy_percent": 100.0 * p, "standard_error_points": error,
            "meaningful_difference_points": 2.0 * math.sqrt(2.0) * error}


def orderings(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each of :data:`ORDERINGS` whose two runs are present, judged with the seeds' spread.

    gap = mean(better) − mean(worse) in points, combined sd = √(sd₁² + sd₂²) (0 for one
    seed). Verdicts: "holds" (gap ≥ 2·sd, or gap ≥ 0 with one seed), "holds on the means"
    (0 ≤ gap < 2·sd), "not on the means" (−2·sd < gap < 0), "does not hold" (otherwise).
    """
    by_run = {row["run"]: row for row in rows}
    judged = []
    for better, worse in ORDERINGS:
        if better not in by_run or worse not in by_run:
            continue
        a, b = by_run[better], by_run[worse]
        gap = a["test_accuracy_percent"] - b["test_accuracy_percent"]
        spread = math.hypot(a.get("sd_percent") or 0.0, b.get("sd_percent") or 0.0)
        if spread == 0.0:
            verdict = "holds" if gap >= 0 else "does not hold"
            detail = "one seed: no spread to judge by"
        elif gap >= 2 * spread:
            verdict, detail = "holds", "by more than twice the combined sd"
        elif gap >= 0:
            verdict, detail = "holds on the means", "within twice the combined sd"
        elif gap > -2 * spread:
            verdict, detail = "not on the means", "but within twice the combined sd"
        else:
            verdict, detail = "does not hold", "by more than twice the combined sd"
        judged.append({"better": better, "worse": worse, "gap_points": gap,
                       "combined_sd_points": spread, "verdict": verdict, "detail": detail})
    return judged


def table_iv(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """μL2Q's mean minus Table IV at each k of :data:`TABLE_IV_RUNS` that ran, and whether
    every one is at least −:data:`TABLE_IV_MARGIN_POINTS`, judged on the differences as
    reported (to two decimals). None when no such run has a published value."""
    by_run = {row["run"]: row for row in rows}
    differences = {}
    for name in TABLE_IV_RUNS:
        row = by_run.get(name)
        if row is not None and row.get("difference_to_paper_points") is not None:
            differences[str(row["bits"])] = row["difference_to_paper_points"]
    if not differences:
        return None
    within = all(round(value, 2) >= -TABLE_IV_MARGIN_POINTS for value in differences.values())
    return {"difference_points_by_bits": differences, "margin_points": TABLE_IV_MARGIN_POINTS,
            "within_margin": within}


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Worker processes started inside this block use one BLAS/OpenMP thread each."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _compare_to_float(rows: list[dict[str, Any]]) -> None:
    float_row = next((row for row in rows if row["run"] == "float"), None)
    for row in rows:
        row["difference_to_float_points"] = (
            None if float_row is None
            else row["test_accuracy_percent"] - float_row["test_accuracy_percent"])


def _epoch(metrics: EpochMetrics) -> dict[str, Any]:
    return {"epoch": metrics.epoch, "train_loss": metrics.train_loss,
            "test_accuracy_percent": 100.0 * metrics.test_accuracy,
            "learning_rate": metrics.learning_rate, "seconds": metrics.seconds}


def _train_count(dataset: Dataset, config: TrainConfig) -> int:
    count = len(dataset.train_labels)
    return count if config.train_limit is None else min(count, config.train_limit)


def _test_count(dataset: Dataset, config: TrainConfig) -> int:
    count = len(dataset.test_labels)
    return count if config.test_limit is None else min(count, config.test_limit)


def default_log(message: str) -> None:
    """Print a progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


__all__ = ["OTHER_MODELS_COMMAND", "PAPER_ACCURACY", "PAPER_TABLE_IV", "RUNS", "AccuracyOutcome",
           "Job", "compute", "default_log", "make_jobs", "run_config", "seed_statistics"]
