r"""The training loop: μL2Q quantisation-aware training of a small CNN, with checkpoints.

One SGD iteration (the paper's Algorithm 2, with the layers' straight-through hook):

1. forward with w_q = Q(w_f) in every quantised layer (:mod:`ul2q_ref.nn.qat`);
2. backward, which yields ∂L/∂w_q and stores it as the gradient of w_f;
3. Caffe's momentum SGD with L2 weight decay updates the full-precision w_f.

Runs are deterministic: the seed fixes the initialisation, and each epoch's shuffling and
dropout masks come from generators seeded with (seed, epoch), so a run resumed from the
checkpoint of epoch e continues bit for bit as if it had never stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..io import save_npz_atomic
from .data import Dataset, iterate_minibatches, load_dataset
from .layers import Dropout
from .losses import softmax_cross_entropy
from .models import MODEL_NAMES, Sequential, build_model
from .optim import SGD, LRSchedule
from .qat import SCHEME_NAMES, LayerPlan

CHECKPOINT_FORMAT = "ul2q-ref/checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.json"


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
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
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
    """Read a checkpoint (never unpickles): config, epoch, history, model and optimiser state."""
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data.files or str(data["format"]) != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a ul2q-ref training checkpoint")
        return {
            "config": TrainConfig.from_json(str(data["config"])),
            "epoch": int(data["epoch"]),
            "history": [EpochMetrics(**m) for m in json.loads(str(data["history"]))],
            "model": {k[6:]: data[k] for k in data.files if k.startswith("model/")},
            "optim": {k[6:]: data[k] for k in data.files if k.startswith("optim/")},
        }


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

    Parameters
    ----------
    config : TrainConfig
        The run. With `resume`, the checkpoint's own configuration is used, with
        ``config.epochs`` as the new total (to extend a run).
    out_dir : path, optional
        Where ``checkpoint.npz`` and ``metrics.json`` are written after every epoch.
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
    checkpoint = None
    if resume:
        if out is None or not (out / CHECKPOINT_NAME).exists():
            raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT_NAME} in {out}")
        checkpoint = load_checkpoint(out / CHECKPOINT_NAME)
        config = replace(checkpoint["config"], epochs=config.epochs)
    dataset, (train_x, train_y), (test_x, test_y) = prepare_data(config, dataset)
    model, layers = build(config, dataset)
    optimizer = SGD(model.parameters(), momentum=config.momentum,
                    weight_decay=config.weight_decay)
    schedule = config.schedule()
    history: list[EpochMetrics] = []
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optim"])
        history = checkpoint["history"]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    count = len(train_y)
    per_epoch = -(-count // config.batch)
    epochs = _epochs_to_run(config, per_epoch)
    for epoch in range(len(history), epochs):
        rng = _seed_epoch(model, config, epoch)
        started = time.perf_counter()
        losses = []
        batches = iterate_minibatches(count, config.batch, rng)
        bar = _progress_bar(progress, per_epoch, f"epoch {epoch + 1}/{epochs}")
        iteration = epoch * per_epoch
        rate = schedule.lr_at(iteration, float(epoch))
        for index in batches:
            if config.max_iterations is not None and iteration >= config.max_iterations:
                break
            x = dataset.to_float(train_x[index])
            logits = model.forward(x, training=True)
            loss, grad = softmax_cross_entropy(logits, train_y[index])
            model.backward(grad, need_input_grad=False)
            rate = schedule.lr_at(iteration, iteration * config.batch / count)
            optimizer.step(rate)
            losses.append(loss)
            iteration += 1
            if bar is not None:
                bar.update(1)
                elapsed = max(bar.format_dict["elapsed"], 1e-9)
                bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{bar.n * config.batch / elapsed:.0f}")
        if bar is not None:
            bar.close()
        accuracy = evaluate(model, test_x, test_y, dataset)
        metrics = EpochMetrics(epoch + 1, float(np.mean(losses)), accuracy,
                               time.perf_counter() - started, rate)
        history.append(metrics)
        result = TrainResult(config, model, history, layers)
        if out is not None:
            save_checkpoint(out / CHECKPOINT_NAME, config, model, optimizer, history)
            write_metrics(out / METRICS_NAME, result)
        if on_epoch is not None:
            on_epoch(metrics)
    return TrainResult(config, model, history, layers)


def _epochs_to_run(config: TrainConfig, per_epoch: int) -> int:
    """`config.epochs`, or fewer when ``max_iterations`` ends the run earlier."""
    if config.max_iterations is None:
        return config.epochs
    return min(config.epochs, -(-config.max_iterations // per_epoch))


def write_metrics(path: str | Path, result: TrainResult) -> None:
    """Write the run's JSON metrics to `path` (atomically)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(json.dumps(result.metrics(), indent=2) + "\n", encoding="utf-8")
    temporary.replace(target)


def _progress_bar(enabled: bool, total: int, description: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="batch", leave=True, dynamic_ncols=True)
