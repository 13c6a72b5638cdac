"""examples/train_torch.py on small synthetic data in the CIFAR-10 and ImageNet-folder formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_torch.py"


def train(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), "--threads", "1", *argv],
                          capture_output=True, text=True, env=env, timeout=600)


def test_cifar10_binary_files(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "cifar-10-batches-bin"
    data.mkdir()
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:  # 8 records each: 1 label byte + 3 × 32 × 32 pixel bytes
        records = rng.integers(0, 256, (8, 3073), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, 8)
        records.tofile(data / name)
    out = tmp_path / "run"
    done = train("--model", "cifarnet", "--bits", "2", "--data", f"cifar10:{tmp_path}",
                 "--batch", "8", "--epochs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "epoch 2: test accuracy" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["steps"] == 10  # 40 images / batch 8, 2 epochs
    state = torch.load(out / "checkpoint.pt")
    assert state["model"]["conv1.parametrizations.weight.0._extra_state"]["bits"] == 2
    assert state["model"]["ip1.parametrizations.weight.0._extra_state"]["bits"] == 8
    again = train("--model", "cifarnet", "--bits", "2", "--data", f"cifar10:{tmp_path}",
                  "--batch", "8", "--epochs", "3", "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert "epoch 1:" not in again.stdout and "epoch 3: test accuracy" in again.stdout


def test_imagenet_style_folders(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for index in range(2):
                pixels = rng.integers(0, 256, (40 + 10 * index, 50, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    done = train("--model", "resnet18", "--bits", "2", "--data", f"imagefolder:{tmp_path}",
                 "--batch", "2", "--max-steps", "1", "--lr", "0.001")
    assert done.returncode == 0, done.stderr
    assert "epoch 1: test accuracy" in done.stdout


def test_bad_data_is_one_line(tmp_path):
    done = train("--data", f"cifar10:{tmp_path / 'missing'}", "--max-steps", "1")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("train_torch.py: error: --data")
