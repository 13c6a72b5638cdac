r"""The training loop: μL2Q quantisation-aware training of a small CNN, with checkpoints.

One SGD iteration (the paper's Algorithm 2, with the layers' straight-through hook):

1. forward with w_q = Q(w_f) in every quantised layer (:mod:`ul2q_ref.nn.qat`);
2. backward, which yields ∂L/∂w_q and stores it as the gradient of w_f;
3. Caffe's momentum SGD with L2 weight decay updates the full-precision w_f.

Runs are deterministic: the seed fixes the initialisation, and each epoch's shuffling and
dropout masks come from generators seeded with (seed, epoch), so a run resumed from the
checkpoint of epoch e continues bit for bit as if it had never stopped. Every training runs
with its BLAS pinned to one thread (:mod:`ul2q_ref.nn.determinism`), so the same
configuration and seed give the same weights whatever the thread settings, ``--jobs`` or the
load; what a run's bits may still depend on (library versions, the CPU) is recorded in its
metrics as ``environment``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..io import FileFormatError, read_npz, save_npz_atomic, write_text_atomic
from ..progress import progress as progress_report
from .data import Dataset, iterate_minibatches, load_dataset
from .determinism import pinned_blas, training_environment
from .layers import Dropout
from .losses import softmax_cross_entropy
from .models import MODEL_NAMES, Sequential, build_model
from .optim import SGD, LRSchedule
from .qat import SCHEME_NAMES, LayerPlan

CHECKPOINT_FORMAT = "ul2q-ref/checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.json"
LOCK_NAME = ".lock"


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite: training stopped (the last checkpoint is kept)."""


class RunLocked(RuntimeError):
    """Another trainer is writing the same run directory."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    The defaults are what a newcomer should get: Caffe's LeNet solver (learning rate 0.01,
    momentum 0.9, weight decay 5e-4, the ``inv`` policy with γ = 1e-4 and power 0.75),
    batch 64, Xavier initialisation and standardised inputs.

    ``max_iterations`` ends the run after that many SGD iterations (Caffe's ``max_iter``),
    inside the last of the `epochs` if it falls there; None trains whole epochs.
    """

    model: str = "lenet5"
    scheme: str = "float"
    bits: int | None = None
    last_bits: int | None = None
    layer_bits: Mapping[str, int] = field(default_factory=dict)
    quantize_bias: bool = False
    epochs: int = 2
    max_iterations: int | None = None
    batch: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_policy: str = "inv"
    gamma: float = 1e-4
    power: float = 0.75
    milestones: tuple[float, ...] = ()
    data: str = "mnist-small"
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {', '.join(MODEL_NAMES)}, got {self.model!r}")
        if self.scheme not in SCHEME_NAMES:
            raise ValueError(
                f"scheme must be one of {', '.join(SCHEME_NAMES)}, got {self.scheme!r}"
            )
        if self.scheme in ("ul2q", "fixed_point", "clip") and self.bits is None:
            raise ValueError(f"scheme {self.scheme!r} needs bits")
        for name in ("epochs", "batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "momentum", "weight_decay", "gamma", "power"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma}")
        if not all(math.isfinite(float(m)) and float(m) >= 0 for m in self.milestones):
            raise ValueError(f"milestones must be finite epochs >= 0, got {self.milestones}")
        for name in ("bits", "last_bits"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 1 <= value <= 16):
                raise ValueError(f"{name} must be an integer from 1 to 16, got {value!r}")
        for layer, value in dict(self.layer_bits).items():
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
                raise ValueError(f"layer_bits[{layer!r}] must be an integer from 1 to 16, "
                                 f"got {value!r}")
        for name in ("train_limit", "test_limit", "max_iterations"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        object.__setattr__(self, "layer_bits", dict(self.layer_bits))
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))

    @property
    def plan(self) -> LayerPlan:
        """The per-layer quantisation plan of this run."""
        return LayerPlan(self.scheme, self.bits, self.last_bits, self.layer_bits,
                         self.quantize_bias)

    def schedule(self) -> LRSchedule:
        """The learning-rate policy of this run."""
        return LRSchedule(self.lr_policy, base_lr=self.lr, gamma=self.gamma, power=self.power,
                          milestones=self.milestones)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        values = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown configuration keys {sorted(unknown)}")
        values["milestones"] = tuple(values.get("milestones", ()))
        return cls(**values)


OPTION_FLAGS: dict[str, str] = {"max_iterations": "--iterations"}
"""Command-line flags of ``ul2q-ref train`` whose name is not ``--`` + the field's name with
dashes (every other field of :class:`TrainConfig` except ``epochs`` is ``--field-name``)."""


def option_flag(name: str) -> str:
    """The ``ul2q-ref train`` flag of :class:`TrainConfig` field `name`."""
    return OPTION_FLAGS.get(name, "--" + name.replace("_", "-"))


def train_command(config: TrainConfig, out: str | Path) -> str:
    """The ``ul2q-ref train`` command that trains `config` into `out`, every option spelled
    out (so that changed defaults cannot change what it runs)."""
    import shlex

    words = ["ul2q-ref", "train"]
    for item in fields(TrainConfig):
        value = getattr(config, item.name)
        if value is None or (item.name == "milestones" and not value):
            continue
        flag = "--epochs" if item.name == "epochs" else option_flag(item.name)
        if item.name == "layer_bits":
            for layer, bits in sorted(value.items()):
                words += [flag, f"{layer}={bits}"]
        elif item.name == "quantize_bias":
            words += [flag] if value else []
        elif item.name == "milestones":
            words += [flag, ",".join(repr(float(m)) for m in value)]
        else:
            words += [flag, repr(value) if isinstance(value, float) else str(value)]
    return shlex.join([*words, "--out", str(out)])


@dataclass
class EpochMetrics:
    """What one epoch measured."""

    epoch: int
    train_loss: float
    test_accuracy: float
    seconds: float
    learning_rate: float


@dataclass
class TrainResult:
    """A finished (or resumed and finished) run."""

    config: TrainConfig
    model: Sequential
    history: list[EpochMetrics]
    layers: dict[str, tuple[str, int | None]]
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return self.history[-1].test_accuracy

    def metrics(self) -> dict[str, Any]:
        """The JSON metrics document: configuration, per-epoch numbers, final accuracy."""
        return {
            "config": asdict(self.config),
            "layers": {name: {"scheme": s, "bits": b} for name, (s, b) in self.layers.items()},
            "epochs": [asdict(m) for m in self.history],
            "final_test_accuracy": self.test_accuracy,
            "environment": self.environment,
        }


def prepare_data(config: TrainConfig, dataset: Dataset | None = None) -> tuple[Dataset, ...]:
    """Load the run's data (unless given) and apply its train/test limits."""
    dataset = load_dataset(config.data) if dataset is None else dataset
    return dataset, _limited(dataset.train_images, dataset.train_labels, config.train_limit), \
        _limited(dataset.test_images, dataset.test_labels, config.test_limit)


def _limited(images: np.ndarray, labels: np.ndarray, limit: int | None):
    if limit is None:
        return images, labels
    return images[:limit], labels[:limit]


def build(config: TrainConfig, dataset: Dataset) -> tuple[Sequential, dict]:
    """The run's model, initialised from its seed, with its quantisers attached."""
    channels, height, width = dataset.image_shape
    model = build_model(config.model, np.random.default_rng(config.seed),
                        in_channels=channels, num_classes=dataset.num_classes,
                        input_size=(height, width))
    layers = config.plan.apply(model, backend=config.backend)
    return model, layers


def evaluate(model: Sequential, images: np.ndarray, labels: np.ndarray,
             dataset: Dataset, batch: int = 500) -> float:
    """Test accuracy of `model` (eval mode, quantised forward) on uint8 `images`."""
    correct = 0
    for start in range(0, len(labels), batch):
        x = dataset.to_float(images[start:start + batch])
        logits = model.forward(x, training=False)
        correct += int(np.count_nonzero(logits.argmax(axis=1) == labels[start:start + batch]))
    return correct / len(labels)


def _seed_epoch(model: Sequential, config: TrainConfig, epoch: int) -> np.random.Generator:
    """The epoch's shuffling generator; also reseeds every dropout layer for the epoch."""
    for index, (_, layer) in enumerate(model):
        if isinstance(layer, Dropout):
            layer.rng = np.random.default_rng([config.seed, epoch, 1, index])
    return np.random.default_rng([config.seed, epoch, 0])


def save_checkpoint(path: Path, config: TrainConfig, model: Sequential, optimizer: SGD,
                    history: list[EpochMetrics]) -> None:
    """Write the run's state after ``len(history)`` epochs to `path`, atomically."""
    arrays = {
        "format": np.array(CHECKPOINT_FORMAT),
        "config": np.array(config.to_json()),
        "epoch": np.array(len(history), dtype=np.int64),
        "history": np.array(json.dumps([asdict(m) for m in history])),
    }
    arrays.update({f"model/{k}": v for k, v in model.state_dict().items()})
    arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    save_npz_atomic(path, arrays)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint (never unpickles).

    Returns config, epoch, history, model and optimiser state. A truncated, corrupted or
    tampered file (wrong format, bad configuration, history that does not match the epoch,
    non-finite parameters) raises :class:`~ul2q_ref.io.FileFormatError` naming `path`.
    """
    data = read_npz(path)
    source = str(path)
    if "format" not in data or data["format"].shape != () or \
            str(data["format"]) != CHECKPOINT_FORMAT:
        found = str(data["format"])[:60] if "format" in data and data["format"].shape == () \
            else None
        hint = " (an exported integer model: evaluate it, or export from its checkpoint)" \
            if found and found.startswith("ul2q-ref/integer-model") else ""
        raise FileFormatError(f"{source}: not a ul2q-ref training checkpoint{hint}")
    for key in ("config", "epoch", "history"):
        if key not in data or data[key].shape != ():
            raise FileFormatError(f"{source}: checkpoint field {key!r} is missing or malformed")
    try:
        config = TrainConfig.from_json(str(data["config"]))
    except (TypeError, ValueError, RecursionError) as error:
        raise FileFormatError(f"{source}: bad configuration ({error})") from None
    if data["epoch"].dtype.kind not in "iu":
        raise FileFormatError(f"{source}: epoch must be an integer")
    epoch = int(data["epoch"])
    try:
        records = json.loads(str(data["history"]))
        history = [EpochMetrics(**m) for m in records]
    except (TypeError, ValueError, RecursionError) as error:
        raise FileFormatError(f"{source}: bad training history ({error})") from None
    if not 0 <= epoch <= config.epochs or len(history) != epoch:
        raise FileFormatError(f"{source}: epoch {epoch} does not match its history "
                              f"({len(history)} epochs) and configuration ({config.epochs})")
    arrays = {"model": {}, "optim": {}}
    for key, value in data.items():
        group, _, name = key.partition("/")
        if group in arrays:
            if value.dtype.kind != "f" or not np.isfinite(value).all():
                raise FileFormatError(f"{source}: {key} must hold finite floats")
            arrays[group][name] = value
    return {"config": config, "epoch": epoch, "history": history, **arrays}


def restore(path: str | Path, config: TrainConfig, model: Sequential,
            optimizer: SGD | None, state: dict[str, Any]) -> None:
    """Load checkpoint `state` into `model` (and `optimizer`); a mismatch names `path`."""
    try:
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optim"])
    except (KeyError, ValueError, TypeError) as error:
        text = str(error).strip("'\"")
        raise FileFormatError(f"{path}: its parameters do not fit a {config.model} model "
                              f"({text[:200]})") from None


class RunLock:
    """An exclusive lock on a run directory (``RUN_DIR/.lock``), so two trainers cannot
    write the same checkpoint. Released when the trainer ends, however it ends (the
    operating system drops the lock of a killed process)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._handle = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip()[:20]
            handle.close()
            raise RunLocked(f"--out {self.path.parent}: another trainer is running in this "
                            f"directory{f' (pid {owner})' if owner else ''}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def remove_stale_temporaries(directory: Path,
                             names: tuple[str, ...] = (CHECKPOINT_NAME, METRICS_NAME)) -> None:
    """Delete temporary files a killed writer left behind (``.checkpoint.npz.*.tmp``,
    ``.metrics.json.*.tmp`` and those of `names`); call it holding the directory's lock."""
    for name in names:
        for leftover in directory.glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)


def train(
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    dataset: Dataset | None = None,
    on_epoch=None,
) -> TrainResult:
    """Train `config`'s model; checkpoint into `out_dir` after every epoch.

    The data is loaded (and a resumed checkpoint read) before `out_dir` is created, so a
    run that cannot start leaves nothing behind. The training itself runs with the BLAS
    pinned to one thread (:func:`~ul2q_ref.nn.determinism.pinned_blas`).

    Parameters
    ----------
    config : TrainConfig
        The run. With `resume`, the checkpoint's own configuration is used, with
        ``config.epochs`` as the new total (to extend a run).
    out_dir : path, optional
        Where ``checkpoint.npz`` and ``metrics.json`` are written after every epoch; missing
        parent directories are created.
    resume : bool
        Continue from ``out_dir/checkpoint.npz``.
    progress : bool
        Show a tqdm progress bar per epoch on stderr (loss and images per second).
    dataset : Dataset, optional
        Use this instead of loading ``config.data``.
    on_epoch : callable, optional
        Called with each :class:`EpochMetrics` as soon as it is known.
    """
    out = Path(out_dir) if out_dir is not None else None
    if out is None and resume:
        raise FileNotFoundError("nothing to resume: no out_dir given")
    if resume:
        assert out is not None
        if not (out / CHECKPOINT_NAME).exists():
            raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT_NAME} in {out}")
        config = replace(load_checkpoint(out / CHECKPOINT_NAME)["config"], epochs=config.epochs)
    dataset = load_dataset(config.data) if dataset is None else dataset
    if out is None:
        return _train(config, None, None, progress, dataset, on_epoch)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        remove_stale_temporaries(out)
        checkpoint = None
        if resume:  # read again under the lock: another trainer may have written it since
            checkpoint = load_checkpoint(out / CHECKPOINT_NAME)
            config = replace(checkpoint["config"], epochs=config.epochs)
        return _train(config, out, checkpoint, progress, dataset, on_epoch)


def _train(config: TrainConfig, out: Path | None, checkpoint: dict[str, Any] | None,
           progress: bool, dataset: Dataset, on_epoch) -> TrainResult:
    with pinned_blas() as blas:
        environment = training_environment(blas)
        return _train_pinned(config, out, checkpoint, progress, dataset, on_epoch, environment)


def _train_pinned(config: TrainConfig, out: Path | None, checkpoint: dict[str, Any] | None,
                  progress: bool, dataset: Dataset, on_epoch,
                  environment: dict[str, Any]) -> TrainResult:
    dataset, (train_x, train_y), (test_x, test_y) = prepare_data(config, dataset)
    model, layers = build(config, dataset)
    optimizer = SGD(model.parameters(), momentum=config.momentum,
                    weight_decay=config.weight_decay)
    schedule = config.schedule()
    history: list[EpochMetrics] = []
    if checkpoint is not None:
        assert out is not None
        restore(out / CHECKPOINT_NAME, config, model, optimizer, checkpoint)
        history = checkpoint["history"]

    count = len(train_y)
    per_epoch = -(-count // config.batch)
    epochs = epochs_to_run(config, per_epoch)
    for epoch in range(len(history), epochs):
        rng = _seed_epoch(model, config, epoch)
        started = time.perf_counter()
        losses = []
        batches = iterate_minibatches(count, config.batch, rng)
        bar = progress_report(per_epoch, f"epoch {epoch + 1}/{epochs}", enabled=progress,
                              unit="batch")
        iteration = epoch * per_epoch
        rate = schedule.lr_at(iteration, float(epoch))
        for index in batches:
            if config.max_iterations is not None and iteration >= config.max_iterations:
                break
            x = dataset.to_float(train_x[index])
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                logits = model.forward(x, training=True)  # a diverging run is caught below
                loss, grad = softmax_cross_entropy(logits, train_y[index])
                model.backward(grad, need_input_grad=False)
            rate = schedule.lr_at(iteration, iteration * config.batch / count)
            if not math.isfinite(loss):
                if bar is not None:
                    bar.close()
                raise TrainingDiverged(_diverged(loss, iteration, epoch, rate, out, history))
            optimizer.step(rate)
            losses.append(loss)
            iteration += 1
            if bar is not None:
                elapsed = max(bar.elapsed, 1e-9)
                bar.advance(1, loss=f"{loss:.4f}",
                            img_s=f"{bar.count * config.batch / elapsed:.0f}")
        if bar is not None:
            bar.close()
        accuracy = evaluate(model, test_x, test_y, dataset)
        metrics = EpochMetrics(epoch + 1, float(np.mean(losses)), accuracy,
                               time.perf_counter() - started, rate)
        history.append(metrics)
        result = TrainResult(config, model, history, layers, environment)
        if out is not None:
            save_checkpoint(out / CHECKPOINT_NAME, config, model, optimizer, history)
            write_metrics(out / METRICS_NAME, result)
        if on_epoch is not None:
            on_epoch(metrics)
    return TrainResult(config, model, history, layers, environment)


def epochs_to_run(config: TrainConfig, per_epoch: int) -> int:
    """`config.epochs`, or fewer when ``max_iterations`` ends the run earlier
    (`per_epoch` iterations make an epoch)."""
    if config.max_iterations is None:
        return config.epochs
    return min(config.epochs, -(-config.max_iterations // per_epoch))


def _diverged(loss: float, iteration: int, epoch: int, rate: float, out: Path | None,
              history: list[EpochMetrics]) -> str:
    kept = (f"the last good checkpoint ({out / CHECKPOINT_NAME}, epoch {len(history)}) is kept"
            if out is not None and history else "no checkpoint was written")
    return (f"the training loss became {loss} at iteration {iteration + 1} (epoch "
            f"{epoch + 1}) with learning rate {rate:.3g}; training stopped and {kept}. "
            "Try a lower learning rate (--lr).")


def write_metrics(path: str | Path, result: TrainResult) -> None:
    """Write the run's JSON metrics to `path` (atomically, a unique temporary name)."""
    write_text_atomic(path, json.dumps(result.metrics(), indent=2) + "\n")
