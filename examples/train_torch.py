"""Train one of the paper's networks with μL2Q in PyTorch (one process, or DDP via torchrun).

    python examples/train_torch.py --model lenet5 --bits 2 --data mnist-small --out runs/lenet
    torchrun --nproc-per-node 2 examples/train_torch.py --model lenet5 --bits 2 --out runs/ddp

``--data``: ``mnist-small`` (the MNIST subset shipped in the package), ``mnist:DIR`` (IDX
files), ``cifar10:DIR`` (the binary version), ``imagefolder:DIR`` (``DIR/train/CLASS/*.png``
and ``DIR/val/CLASS/*``, ImageNet style: resized to 256, 224 crops). Weights are quantised with
the paper's configuration (:func:`ul2q_ref.torch.quantize_model`); ``--bits 0`` trains in
float. A checkpoint (model, optimiser, epoch) is written after every epoch to
``--out/checkpoint.pt`` and ``--resume`` continues from it. Under ``torchrun`` (``WORLD_SIZE``
> 1) each process takes its share of every global batch and DistributedDataParallel averages
the gradients (gloo on CPU, nccl on CUDA); rank 0 writes the checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ul2q_ref.torch import quantize_model
from ul2q_ref.torch.models import MODELS

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet5")
    parser.add_argument("--bits", type=int, default=2, help="k (0: train in float)")
    parser.add_argument("--axis", type=int, default=0, help="channel axis (-1: per tensor)")
    parser.add_argument("--data", default="mnist-small")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32, help="global batch size")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N steps")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="checkpoint directory")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--dump-ranks", action="store_true",
                        help="also write every rank's final state to OUT/rank{R}.pt")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.bits != 0 and not 1 <= args.bits <= 16:
        parser.error(f"--bits must be 0 (float) or 1..16, got {args.bits}")
    if args.resume and args.out is None:
        parser.error("--resume needs --out")
    return args


# --------------------------------------------------------------------------- data


class ArrayData:
    """MNIST or CIFAR-10 from ul2q_ref's readers: uint8 NCHW images, normalised per batch."""

    def __init__(self, spec: str) -> None:
        from ul2q_ref.nn.data import load_dataset

        self.dataset = load_dataset(spec)
        self.train_size = len(self.dataset.train_labels)
        self.test_size = len(self.dataset.test_labels)
        self.channels = self.dataset.image_shape[0]
        self.classes = self.dataset.num_classes

    def batch(self, split: str, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        images = getattr(self.dataset, f"{split}_images")[indices]
        labels = getattr(self.dataset, f"{split}_labels")[indices].astype(np.int64)
        return torch.from_numpy(self.dataset.to_float(images)), torch.from_numpy(labels)


class ImageFolderData:
    """``DIR/train/CLASS/*`` and ``DIR/val/CLASS/*`` images (classes in sorted order)."""

    def __init__(self, directory: str) -> None:
        root = Path(directory)
        self.classes_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        if not self.classes_names:
            raise SystemExit(f"train_torch.py: error: {root / 'train'} has no class folders")
        self.files = {split: [(path, label) for label, name in enumerate(self.classes_names)
                              for path in sorted((root / split / name).glob("*"))
                              if path.suffix.lower() in IMAGE_SUFFIXES]
                      for split in ("train", "val")}
        self.train_size, self.test_size = len(self.files["train"]), len(self.files["val"])
        self.channels, self.classes = 3, len(self.classes_names)

    def _image(self, path: Path, train: bool, rng: np.random.Generator) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = 256 / min(image.size)
            image = image.resize((max(224, round(image.size[0] * scale)),
                                  max(224, round(image.size[1] * scale))))
            width, height = image.size
            left = rng.integers(0, width - 223) if train else (width - 224) // 2
            top = rng.integers(0, height - 223) if train else (height - 224) // 2
            array = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32)
        if train and rng.random() < 0.5:
            array = array[:, ::-1]
        array = (array / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)

    def batch(self, split: str, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        files = self.files["train" if split == "train" else "val"]
        rng = np.random.default_rng(int(indices[0]) if len(indices) else 0)
        images = [self._image(files[i][0], split == "train", rng) for i in indices]
        labels = [files[i][1] for i in indices]
        return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)


def load_data(spec: str) -> ArrayData | ImageFolderData:
    kind, _, directory = spec.partition(":")
    if kind == "imagefolder":
        return ImageFolderData(directory)
    try:
        return ArrayData(spec)
    except (ValueError, OSError) as error:
        raise SystemExit(f"train_torch.py: error: --data {spec}: {error}") from None


# --------------------------------------------------------------------------- training


def build(args: argparse.Namespace, data: ArrayData | ImageFolderData) -> nn.Module:
    torch.manual_seed(args.seed)
    if args.model == "lenet5":
        model = MODELS["lenet5"](in_channels=data.channels, num_classes=data.classes,
                                 input_size=28)
    elif args.model == "resnet18":
        model = MODELS["resnet18"](num_classes=data.classes, in_channels=data.channels)
    else:
        model = MODELS[args.model](in_channels=data.channels, num_classes=data.classes)
    if args.bits:
        quantize_model(model, args.bits, None if args.axis < 0 else args.axis)
    return model


def evaluate(model: nn.Module, data: ArrayData | ImageFolderData, limit: int | None,
             device: torch.device, batch: int = 500) -> float:
    model.eval()
    count = data.test_size if limit is None else min(limit, data.test_size)
    correct = 0
    with torch.no_grad():
        for start in range(0, count, batch):
            images, labels = data.batch("test", np.arange(start, min(start + batch, count)))
            predictions = model(images.to(device)).argmax(1).cpu()
            correct += int((predictions == labels).sum())
    model.train()
    return correct / max(count, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if args.batch % world:
        raise SystemExit(f"train_torch.py: error: --batch {args.batch} is not divisible by "
                         f"the {world} processes")
    data = load_data(args.data)
    model = build(args, data).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    start_epoch = 0
    checkpoint = None if args.out is None else args.out / "checkpoint.pt"
    if args.resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"]
    trained = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    train_size = data.train_size if args.train_limit is None else min(args.train_limit,
                                                                       data.train_size)
    share = args.batch // world
    step, began = 0, time.perf_counter()
    for epoch in range(start_epoch, args.epochs):
        order = np.random.default_rng([args.seed, epoch]).permutation(train_size)
        batches = range(0, train_size - args.batch + 1, args.batch)
        for number, start in enumerate(batches):
            if args.max_steps is not None and step >= args.max_steps:
                break
            mine = order[start + rank * share:start + (rank + 1) * share]
            images, labels = data.batch("train", mine)
            loss = nn.functional.cross_entropy(trained(images.to(device)), labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if rank == 0 and not args.quiet and (number % 50 == 0 or number == len(batches) - 1):
                print(f"epoch {epoch + 1} step {number + 1}/{len(batches)} "
                      f"loss {loss.item():.4f} ({time.perf_counter() - began:.0f} s)",
                      flush=True)
        accuracy = evaluate(model, data, args.test_limit, device)
        if rank == 0:
            print(f"epoch {epoch + 1}: test accuracy {100 * accuracy:.2f}%", flush=True)
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                temporary = args.out / "checkpoint.pt.tmp"
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "epoch": epoch + 1, "args": vars(args) | {"out": str(args.out)}},
                           temporary)
                os.replace(temporary, checkpoint)
                (args.out / "metrics.json").write_text(json.dumps(
                    {"epoch": epoch + 1, "test_accuracy": accuracy, "steps": step}))
    if args.dump_ranks and args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), args.out / f"rank{rank}.pt")
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
