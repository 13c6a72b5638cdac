r"""Part 3: the paper's Table IV, MNIST column: LeNet-5 under every scheme, same schedule.

Eleven runs of the NumPy trainer (:func:`ul2q_ref.nn.train.train`) that differ only in the
weight quantiser: float; μL2Q at 1, 2, 4, 8 and 16 bits; binary (BWN); ternary (TWN); dynamic
fixed point at 2, 4 and 8 bits. Every run uses the same seed (so the same initial weights,
the same shuffling), the same schedule and the same data.

**Layer widths.** Every quantisable layer (conv1, conv2, fc1 and the classifier fc2) is
quantised at the run's stated width, so that each row compares the schemes at one bit width
throughout. The paper's LeNet keeps the classifier at 8 bits; ``last_bits=8``
(``--last-bits 8``) reproduces that setting (binary and ternary runs then quantise the
classifier with 8-bit fixed point, see :meth:`ul2q_ref.nn.qat.LayerPlan.scheme_for`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..nn.data import Dataset
from ..nn.models import Sequential
from ..nn.train import EpochMetrics, TrainConfig, train

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
}
"""Every run of the comparison: name -> (scheme, bit width); binary and ternary are fixed."""

PAPER_ACCURACY: dict[str, float | None] = {
    "float": 99.10,
    "ul2q-1": 99.06,
    "ul2q-2": 99.12,
    "ul2q-4": 99.12,
    "ul2q-8": 99.16,
    "ul2q-16": None,
    "binary": None,
    "ternary": None,
    "fixed_point-2": None,
    "fixed_point-4": None,
    "fixed_point-8": None,
}
"""The paper's LeNet-5 MNIST test accuracy (%), Table IV; None where no number was found.

The μL2Q and float numbers are from the paper; its BWN, TWN and fixed-point numbers for
LeNet-5 are printed in a table image that was not available as text when this was written,
so they are shown as "–" rather than guessed.
"""


@dataclass
class AccuracyOutcome:
    """The part's JSON results, and the float model (for the normality part)."""

    results: dict[str, Any]
    float_model: Sequential | None
    float_config: TrainConfig | None


def run_config(base: TrainConfig, name: str) -> TrainConfig:
    """`base` with the scheme and bit width of run `name` (a key of :data:`RUNS`)."""
    scheme, bits = RUNS[name]
    return replace(base, scheme=scheme, bits=bits if scheme in ("ul2q", "fixed_point") else None)


def compute(
    base: TrainConfig,
    *,
    runs: Sequence[str] = tuple(RUNS),
    dataset: Dataset | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> AccuracyOutcome:
    """Train every run in `runs` on `base`'s schedule and data; test accuracy of each.

    Parameters
    ----------
    base : TrainConfig
        The shared configuration (model, schedule, data, limits, seed, ``last_bits``); its
        scheme and bits are replaced run by run.
    runs : sequence of str
        Names from :data:`RUNS`, in the order to train them.
    dataset : Dataset, optional
        The loaded data of ``base.data`` (loaded once by the caller).
    progress : bool
        Progress bars on stderr while training.
    log : callable, optional
        Receives one line per finished run.
    on_run : callable, optional
        Called with the part's results so far after every run (to save partial results).

    Returns
    -------
    AccuracyOutcome
    """
    unknown = [name for name in runs if name not in RUNS]
    if unknown:
        raise ValueError(f"unknown accuracy runs {unknown}; known: {', '.join(RUNS)}")
    rows = []
    float_model, float_config = None, None
    settings = {key: value for key, value in vars(base).items()
                if key not in ("scheme", "bits", "layer_bits")}
    results = {
        "settings": settings,
        "test_images": None if dataset is None else _test_count(dataset, base),
        "train_images": None if dataset is None else _train_count(dataset, base),
        "rows": rows,
    }
    for position, name in enumerate(runs, start=1):
        config = run_config(base, name)
        if log is not None:
            log(f"accuracy [{position}/{len(runs)}] training {name} "
                f"({config.epochs} epoch{'s' if config.epochs != 1 else ''})")
        result = train(config, progress=progress, dataset=dataset)
        scheme, bits = RUNS[name]
        rows.append({
            "run": name,
            "scheme": scheme,
            "bits": bits,
            "layers": {layer: {"scheme": s, "bits": b} for layer, (s, b) in result.layers.items()},
            "test_accuracy_percent": 100.0 * result.test_accuracy,
            "paper_accuracy_percent": PAPER_ACCURACY[name],
            "epochs": [_epoch(m) for m in result.history],
            "seconds": sum(m.seconds for m in result.history),
        })
        if log is not None:
            log(f"accuracy [{position}/{len(runs)}] {name}: "
                f"{100.0 * result.test_accuracy:.2f}% test accuracy")
        if name == "float":
            float_model, float_config = result.model, config
        _compare_to_float(rows)
        if on_run is not None:
            on_run(results)
    return AccuracyOutcome(results, float_model, float_config)


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


__all__ = ["PAPER_ACCURACY", "RUNS", "AccuracyOutcome", "compute", "default_log", "run_config"]
