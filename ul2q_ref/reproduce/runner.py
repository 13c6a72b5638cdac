"""Run the reproduction: the parts in order, then figures, ``results.json`` and ``report.md``."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import shutil
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
from ..nn.determinism import BLAS_THREADS
from ..nn.train import TrainConfig, build, train
from . import accuracy, figures, normality, report, simulation, table1
from .recipes import LAYER_RULES, RECIPES

PARTS = ("table1", "simulation", "accuracy", "normality")
"""The parts of the reproduction, in the order they run."""

QUICK_EPOCHS = 1
"""Epochs of each accuracy run in quick mode (one pass over the embedded subset)."""


QUICK_DATA = "mnist-small"
"""Data of quick mode: the embedded MNIST subset (20,000 training, 10,000 test images)."""

FORMAT = "ul2q-ref/reproduce-v1"

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that set the BLAS thread count: recorded, although every training
pins its BLAS to :data:`~ul2q_ref.nn.determinism.BLAS_THREADS` thread whatever they say."""


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
        Full mode: the full MNIST (``mnist:`` the default directory) and the recipe's whole
        schedule (its iterations), unless `data`, `epochs` or `iterations` say otherwise.
        Quick mode (default): the embedded subset and :data:`QUICK_EPOCHS` epoch.
    data, epochs, iterations : optional
        Override the mode's data (``mnist-small`` or ``mnist:DIR``) and schedule length
        (whole epochs, or SGD iterations; not both).
    recipe : str
        ``paper`` (Table II) or ``caffe`` (the fork's solver): model, batch, learning-rate
        policy and schedule (:mod:`ul2q_ref.reproduce.recipes`).
    layers : str
        ``paper`` (the fork's widths: classifier at max(k, 8)) or ``uniform`` (k everywhere).
    seed : int
        The seed of every random draw: Monte-Carlo samples, simulated data, and the first
        training seed.
    seeds : int
        Trainings per configuration, with seeds ``seed, seed + 1, …``.
    jobs : int
        Trainings at a time, in separate processes with one BLAS thread each.
    force : bool
        Replace a finished report in `out` (and retrain its runs); without it an existing
        finished report is an error, and an unfinished one is resumed.
    quiet : bool
        No progress output on stderr.
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
    iterations: int | None = None
    recipe: str = "paper"
    layers: str = "paper"
    seed: int = 0
    seeds: int = 1
    jobs: int = 1
    force: bool = False
    quiet: bool = False
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
        for name in ("epochs", "iterations", "seeds", "jobs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1, got {value}")
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("--epochs and --iterations: give one schedule length, not both")
        if self.recipe not in RECIPES:
            raise ValueError(f"--recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.layers not in LAYER_RULES:
            raise ValueError(f"--layers must be one of {', '.join(LAYER_RULES)}, "
                             f"got {self.layers!r}")
        for name in ("mc_samples", "sim_samples"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2, got {getattr(self, name)}")

    @property
    def mode(self) -> str:
        """``full``, ``quick``, or ``custom`` when data or epochs override quick mode's."""
        if self.full:
            return "full"
        if self.data in (None, QUICK_DATA) and self.epochs is None and self.iterations is None:
            return "quick"
        return "custom"

    @property
    def resolved_data(self) -> str:
        """The ``--data`` value in force."""
        if self.data is not None:
            return self.data
        return f"mnist:{default_mnist_dir().resolve()}" if self.full else QUICK_DATA

    def schedule(self, train_images: int) -> tuple[int, int | None]:
        """(epochs, max_iterations) in force on `train_images` training images.

        ``--epochs`` trains whole epochs; ``--iterations`` (or full mode's recipe length)
        stops after that many SGD iterations; quick mode trains :data:`QUICK_EPOCHS`.
        """
        recipe = RECIPES[self.recipe]
        if self.epochs is not None:
            return self.epochs, None
        iterations = self.iterations
        if iterations is None and self.full:
            iterations = recipe.iterations
        if iterations is None:
            return QUICK_EPOCHS, None
        per_epoch = -(-train_images // recipe.batch)
        return -(-iterations // per_epoch), iterations

    def train_config(self, train_images: int) -> TrainConfig:
        """The shared training configuration on `train_images` images (float; each run
        sets its scheme, widths and seed)."""
        recipe = RECIPES[self.recipe]
        epochs, iterations = self.schedule(train_images)
        return TrainConfig(
            model=recipe.model, scheme="float", epochs=epochs, max_iterations=iterations,
            batch=recipe.batch, lr=recipe.lr, momentum=recipe.momentum,
            weight_decay=recipe.weight_decay, lr_policy=recipe.lr_policy,
            gamma=recipe.gamma, power=recipe.power,
            milestones=recipe.milestones(train_images), data=self.resolved_data,
            train_limit=self.train_limit, test_limit=self.test_limit, seed=self.seed)

    @property
    def training_seeds(self) -> tuple[int, ...]:
        """The seeds of the accuracy runs: ``seed, seed + 1, …`` (`seeds` of them)."""
        return tuple(range(self.seed, self.seed + self.seeds))

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
    parts = tuple(part for part in PARTS if part in config.parts)
    _claim_output(out, config.force, log, parts)
    _remove_stale_temporaries(out)
    dataset = load_dataset(config.resolved_data) if config.needs_data else None
    state: dict[str, Any] = {}
    if dataset is not None:
        state["train_config"] = config.train_config(_train_count(dataset, config))
    out.mkdir(parents=True, exist_ok=True)
    draw = figures.matplotlib_available()
    if not draw:
        log(f"matplotlib is not installed: no figures ({figures.INSTALL_HINT} to get them)")
    results: dict[str, Any] = {
        "format": FORMAT,
        "run": _environment(config, state.get("train_config")),
        "part_order": list(parts),
        "parts": {},
        "figures": [],
        "figures_drawn": draw,
    }
    state["save_partial"] = lambda part, data: _save_partial(results, part, data, out, started)
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
    outcome = accuracy.compute(state["train_config"], runs=config.accuracy_runs,
                               seeds=config.training_seeds, layers=config.layers,
                               jobs=config.jobs, dataset=dataset, out_dir=out,
                               progress=not config.quiet, log=log,
                               on_run=lambda data: state["save_partial"]("accuracy", data))
    outcome.results["recipe"] = {"name": config.recipe,
                                 "source": RECIPES[config.recipe].source}
    state["float_model"] = outcome.float_model
    state["float_config"] = outcome.float_config
    drawn = [figures.accuracy_figure(outcome.results, out / "accuracy_vs_bits.png")] \
        if draw else []
    return outcome.results, drawn


def _normality(config, dataset, out, draw, log, state):
    model, base = state.get("float_model"), state.get("float_config")
    if model is None:
        base = state["train_config"]
        log(f"normality: training a float {base.model} ({base.epochs} epoch(s) on "
            f"{base.data}) to inspect")
        model = train(base, progress=not config.quiet, dataset=dataset).model
        origin = "trained for this part"
    else:
        origin = "the float run of part 3"
    initial, _ = build(base, dataset)
    length = (f"{base.max_iterations:,} iterations" if base.max_iterations is not None
              else f"{base.epochs} epoch{'s' if base.epochs != 1 else ''}")
    source = (f"the float {base.model} ({origin}: {length} at batch {base.batch} on "
              f"{base.data}, seed {base.seed})")
    data = normality.compute(model, initial, source=source)
    drawn = []
    if draw:
        caption = None
        if base.data == QUICK_DATA:
            caption = ("A short run on the embedded subset: these weights are still close to "
                       "their initialisation\nand cannot judge the normality premise; the "
                       "full run (docs/reproduction.md) can.")
        drawn.append(figures.normality_figure(data, normality.layer_weights(model),
                                              normality.layer_weights(initial),
                                              out / "normality.png", caption=caption))
    return data, drawn


RUNNERS = {"table1": _table1, "simulation": _simulation, "accuracy": _accuracy,
           "normality": _normality}


# --------------------------------------------------------------------------- helpers


def _train_count(dataset, config: ReproduceConfig) -> int:
    count = len(dataset.train_labels)
    return count if config.train_limit is None else min(count, config.train_limit)


def _claim_output(out: Path, force: bool, log: Callable[[str], None],
                  parts: tuple[str, ...] = PARTS) -> None:
    """Check that `out` may be written: a report there is never replaced without `force`.

    A finished report is an error; so is one whose ``results.json`` cannot be read, and an
    unfinished one of other parts (running ``table1`` into an interrupted run of all parts
    would replace its results). An unfinished report of the same parts (``complete: false``
    in results.json, e.g. after Ctrl-C) is resumed: its finished trainings under ``runs/``
    are reused. With `force` the old runs are removed.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    results_path = out / report.RESULTS_NAME
    if force:
        if (out / "runs").is_dir():
            shutil.rmtree(out / "runs")
        return
    if not results_path.is_file():
        return
    import json

    try:
        previous = json.loads(results_path.read_text(encoding="utf-8"))
        complete = previous["complete"]
        previous_parts = tuple(previous["part_order"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--out {out}: its {report.RESULTS_NAME} cannot be read as a report "
                         f"({type(error).__name__}); use --force to replace it or choose "
                         "another --out") from None
    if complete:
        raise ValueError(f"--out {out}: holds a finished report; use --force to replace it "
                         "or choose another --out")
    if previous_parts != parts:
        raise ValueError(f"--out {out}: holds an unfinished report of "
                         f"{', '.join(previous_parts)}; rerun those parts to resume it, use "
                         "--force to replace it, or choose another --out")
    log(f"resuming the unfinished report in {out}")


def _remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files of ``results.json`` and ``report.md`` that a killed run
    left in `out` (``.results.json.tmp``, ``.results.json.*.tmp``, likewise report.md)."""
    if not out.is_dir():
        return
    for name in (report.RESULTS_NAME, report.REPORT_NAME):
        for leftover in out.glob(f".{name}*.tmp"):
            leftover.unlink(missing_ok=True)


def _blas_libraries() -> list[dict[str, Any]]:
    """The BLAS libraries of this process, their versions and kernels (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a dependency
        return []
    return [{key: library.get(key) for key in ("internal_api", "version", "architecture")}
            for library in threadpool_info() if library.get("user_api") == "blas"]


def _environment(config: ReproduceConfig, train_config: TrainConfig | None
                 ) -> dict[str, Any]:
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
        "epochs": None if train_config is None else train_config.epochs,
        "iterations": None if train_config is None else train_config.max_iterations,
        "recipe": config.recipe,
        "layers": config.layers,
        "seed": config.seed,
        "seeds": list(config.training_seeds),
        "jobs": config.jobs,
        "versions": versions,
        "fast_kernels": bool(HAVE_FAST),
        "cpu_count": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "load_average": load,
        "thread_settings": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "blas": _blas_libraries(),
        "training_blas_threads": BLAS_THREADS,
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
    words += ["--iterations", str(config.iterations)] if config.iterations is not None else []
    words += ["--recipe", config.recipe] if config.recipe != "paper" else []
    words += ["--layers", config.layers] if config.layers != "paper" else []
    words += ["--seed", str(config.seed)]
    words += ["--seeds", str(config.seeds)] if config.seeds != 1 else []
    words += ["--jobs", str(config.jobs)] if config.jobs != 1 else []
    words += ["--force"] if config.force else []
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


__all__ = ["PARTS", "QUICK_DATA", "QUICK_EPOCHS", "ReproduceConfig",
           "equivalent_command", "reproduce"]
