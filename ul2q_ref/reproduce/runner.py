"""Run the reproduction: the parts in order, then figures, ``results.json`` and ``report.md``."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..kernels import HAVE_FAST
from ..nn.data import default_mnist_dir, load_dataset
from ..nn.train import TrainConfig, build, train
from . import accuracy, figures, normality, report, simulation, table1

PARTS = ("table1", "simulation", "accuracy", "normality")
"""The parts of the reproduction, in the order they run."""

QUICK_EPOCHS = 1
"""Epochs of each accuracy run in quick mode (one pass over the embedded subset)."""

FULL_EPOCHS = 9
"""Epochs of each accuracy run in full mode by default."""

QUICK_DATA = "mnist-small"
"""Data of quick mode: the embedded MNIST subset (20,000 training, 10,000 test images)."""

FORMAT = "ul2q-ref/reproduce-v1"

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that set the BLAS thread count: recorded, because the training
numbers depend on it (a different count sums matrix products in a different order)."""


@dataclass(frozen=True)
class ReproduceConfig:
    """What ``ul2q-ref reproduce`` runs.

    Attributes
    ----------
    parts : tuple of str
        Parts to run, from :data:`PARTS` (run in that order).
    out : path
        Output directory for ``report.md``, ``results.json`` and the figures.
    full : bool
        Full mode: the full MNIST (``mnist:`` the default directory) and
        :data:`FULL_EPOCHS` epochs, unless `data` and `epochs` say otherwise. Quick mode
        (default): the embedded subset and :data:`QUICK_EPOCHS` epoch.
    data, epochs : optional
        Override the mode's data (``mnist-small`` or ``mnist:DIR``) and epochs.
    seed : int
        The seed of every random draw: Monte-Carlo samples, simulated data, initial weights
        and batch order.
    quiet : bool
        No progress output on stderr.
    last_bits : int, optional
        Keep the classifier at this width in the accuracy runs (the paper uses 8); default:
        every layer at the stated width.
    mc_samples, sim_samples, train_limit, test_limit, accuracy_runs
        Smaller settings for tests: Monte-Carlo samples, simulated values, training and
        test images, and which accuracy runs to train.
    command : str, optional
        The command line as typed, for the report.
    """

    parts: tuple[str, ...] = PARTS
    out: str | Path = "ul2q-report"
    full: bool = False
    data: str | None = None
    epochs: int | None = None
    seed: int = 0
    quiet: bool = False
    last_bits: int | None = None
    mc_samples: int = table1.MC_SAMPLES
    sim_samples: int = simulation.SAMPLES
    train_limit: int | None = None
    test_limit: int | None = None
    accuracy_runs: tuple[str, ...] = tuple(accuracy.RUNS)
    command: str | None = None

    def __post_init__(self) -> None:
        unknown = [part for part in self.parts if part not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"parts must be some of {', '.join(PARTS)}, got {self.parts!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        for name in ("mc_samples", "sim_samples"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2, got {getattr(self, name)}")

    @property
    def mode(self) -> str:
        """``full``, ``quick``, or ``custom`` when data or epochs override quick mode's."""
        if self.full:
            return "full"
        if self.data in (None, QUICK_DATA) and self.epochs is None:
            return "quick"
        return "custom"

    @property
    def resolved_data(self) -> str:
        """The ``--data`` value in force."""
        if self.data is not None:
            return self.data
        return f"mnist:{default_mnist_dir().resolve()}" if self.full else QUICK_DATA

    @property
    def resolved_epochs(self) -> int:
        """The epochs in force."""
        if self.epochs is not None:
            return self.epochs
        return FULL_EPOCHS if self.full else QUICK_EPOCHS

    def train_config(self) -> TrainConfig:
        """The shared training configuration (float; each run sets its scheme)."""
        return TrainConfig(model="lenet5", scheme="float", epochs=self.resolved_epochs,
                           data=self.resolved_data, train_limit=self.train_limit,
                           test_limit=self.test_limit, seed=self.seed,
                           last_bits=self.last_bits)

    @property
    def needs_data(self) -> bool:
        return "accuracy" in self.parts or "normality" in self.parts


def reproduce(config: ReproduceConfig, log: Callable[[str], None] | None = None
              ) -> dict[str, Any]:
    """Run `config`'s parts; write figures, ``results.json`` and ``report.md`` to its `out`.

    Parameters
    ----------
    config : ReproduceConfig
        What to run.
    log : callable, optional
        Receives progress lines (default: stderr, unless ``config.quiet``).

    Returns
    -------
    dict
        Everything written to ``results.json``.

    Raises
    ------
    ValueError, FileNotFoundError
        Bad data specification or missing data files (before any part runs).
    """
    started = time.perf_counter()
    if log is None:
        log = _silent if config.quiet else accuracy.default_log
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    parts = tuple(part for part in PARTS if part in config.parts)
    dataset = load_dataset(config.resolved_data) if config.needs_data else None
    out.mkdir(parents=True, exist_ok=True)
    draw = figures.matplotlib_available()
    if not draw:
        log(f"matplotlib is not installed: no figures ({figures.INSTALL_HINT} to get them)")
    results: dict[str, Any] = {
        "format": FORMAT,
        "run": _environment(config),
        "part_order": list(parts),
        "parts": {},
        "figures": [],
        "figures_drawn": draw,
    }
    state: dict[str, Any] = {"save_partial": lambda part, data: _save_partial(
        results, part, data, out, started)}
    for part in parts:
        log(f"{part}: running")
        part_started = time.perf_counter()
        data, drawn = RUNNERS[part](config, dataset, out, draw, log, state)
        data["wall_seconds"] = time.perf_counter() - part_started
        results["parts"][part] = data
        results["figures"] += drawn
        log(f"{part}: done in {data['wall_seconds']:.1f} s")
    results["wall_seconds"] = time.perf_counter() - started
    results["complete"] = True
    report.write_results(results, out)
    report.write_report(results, out)
    log(f"report: {out / report.REPORT_NAME} ({results['wall_seconds']:.1f} s in all)")
    return results


# --------------------------------------------------------------------------- parts


def _table1(config, dataset, out, draw, log, state):
    data = table1.compute(mc_samples=config.mc_samples, seed=config.seed)
    drawn = [figures.table1_figure(data, out / "table1_excess.png")] if draw else []
    return data, drawn


def _simulation(config, dataset, out, draw, log, state):
    data, arrays = simulation.compute(samples=config.sim_samples, seed=config.seed)
    drawn = []
    if draw:
        drawn.append(figures.reconstruction_figure(arrays, data,
                                                   out / "simulation_reconstruction.png"))
        drawn.append(figures.loss_curve_figure(data, out / "loss_vs_lambda.png"))
    return data, drawn


def _accuracy(config, dataset, out, draw, log, state):
    outcome = accuracy.compute(config.train_config(), runs=config.accuracy_runs,
                               dataset=dataset, progress=not config.quiet, log=log,
                               on_run=lambda data: state["save_partial"]("accuracy", data))
    state["float_model"] = outcome.float_model
    state["float_config"] = outcome.float_config
    drawn = [figures.accuracy_figure(outcome.results, out / "accuracy_vs_bits.png")] \
        if draw else []
    return outcome.results, drawn


def _normality(config, dataset, out, draw, log, state):
    model, base = state.get("float_model"), state.get("float_config")
    if model is None:
        base = config.train_config()
        log(f"normality: training a float {base.model} ({base.epochs} epoch(s) on "
            f"{base.data}) to inspect")
        model = train(base, progress=not config.quiet, dataset=dataset).model
        origin = "trained for this part"
    else:
        origin = "the float run of part 3"
    initial, _ = build(base, dataset)
    source = (f"the float LeNet-5 ({origin}: {base.epochs} epoch(s) on {base.data}, "
              f"seed {base.seed})")
    data = normality.compute(model, initial, source=source)
    drawn = []
    if draw:
        drawn.append(figures.normality_figure(data, normality.layer_weights(model),
                                              normality.layer_weights(initial),
                                              out / "normality.png"))
    return data, drawn


RUNNERS = {"table1": _table1, "simulation": _simulation, "accuracy": _accuracy,
           "normality": _normality}


# --------------------------------------------------------------------------- helpers


def _environment(config: ReproduceConfig) -> dict[str, Any]:
    import scipy

    versions = {"ul2q-ref": __version__, "python": platform.python_version(),
                "numpy": np.__version__, "scipy": scipy.__version__}
    try:
        import matplotlib

        versions["matplotlib"] = matplotlib.__version__
    except ImportError:
        versions["matplotlib"] = "not installed"
    try:
        load = list(os.getloadavg())
    except (AttributeError, OSError):
        load = None
    return {
        "command": config.command or equivalent_command(config),
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "mode": config.mode,
        "data": config.resolved_data if config.needs_data else None,
        "epochs": config.resolved_epochs if config.needs_data else None,
        "seed": config.seed,
        "last_bits": config.last_bits,
        "versions": versions,
        "fast_kernels": bool(HAVE_FAST),
        "cpu_count": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "load_average": load,
        "thread_settings": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "argv": list(sys.argv),
    }


def equivalent_command(config: ReproduceConfig) -> str:
    """The ``ul2q-ref reproduce`` command line that runs `config`.

    Settings the command line does not offer (smaller samples, training limits, a subset
    of the accuracy runs: the knobs of the tests) are appended in brackets.
    """
    parts = "all" if set(config.parts) == set(PARTS) else " ".join(config.parts)
    words = ["ul2q-ref", "reproduce", *parts.split(), "--out", str(config.out)]
    words += ["--full"] if config.full else []
    words += ["--data", config.data] if config.data is not None else []
    words += ["--epochs", str(config.epochs)] if config.epochs is not None else []
    words += ["--last-bits", str(config.last_bits)] if config.last_bits is not None else []
    words += ["--seed", str(config.seed)]
    words += ["--quiet"] if config.quiet else []
    command = shlex.join(words)
    defaults = ReproduceConfig()
    extra = [f"{name}={getattr(config, name)!r}" for name in
             ("mc_samples", "sim_samples", "train_limit", "test_limit", "accuracy_runs")
             if getattr(config, name) != getattr(defaults, name)]
    return command + (f" (with {', '.join(extra)})" if extra else "")


def _save_partial(results: dict[str, Any], part: str, data: dict[str, Any], out: Path,
                  started: float) -> None:
    """Write results.json with `part` unfinished, so a long run's finished work is kept."""
    partial = dict(results, parts=dict(results["parts"], **{part: dict(data, complete=False)}),
                   wall_seconds=time.perf_counter() - started, complete=False)
    report.write_results(partial, out)


def _silent(message: str) -> None:
    """Discard a progress line."""


__all__ = ["FULL_EPOCHS", "PARTS", "QUICK_DATA", "QUICK_EPOCHS", "ReproduceConfig",
           "equivalent_command", "reproduce"]
