"""convert: a quantised PyTorch model in the project's model file, read by the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402
from ul2q_ref.weights import read_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "ul2q_ref", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_the_file_is_read_by_inspect_and_dequantize(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 4 * 4, 3))
    bridge.quantize_model(model, 2)
    path = tmp_path / "model.npz"
    codes = bridge.convert(model, path)
    assert {name: q.bits for name, q in codes.items()} == {"0.weight": 2, "3.weight": 8}
    raw = model[0].parametrizations.weight.original.detach().numpy()
    expected = uq.quantize(raw, 2, axis=0)
    assert np.array_equal(codes["0.weight"].codes, expected.codes)
    assert np.array_equal(codes["0.weight"].alpha, expected.alpha)
    tensors = {t.name: t.array for t in read_model(path).tensors}
    assert set(tensors) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    assert np.array_equal(tensors["0.weight"], model[0].weight.detach().numpy())
    inspected = cli("inspect", str(path), "--quiet")
    assert inspected.returncode == 0, inspected.stderr
    out = tmp_path / "float.npz"
    dequantized = cli("dequantize", str(path), "-o", str(out))
    assert dequantized.returncode == 0, dequantized.stderr
    with np.load(out) as arrays:
        assert np.array_equal(arrays["3.weight"], model[3].weight.detach().numpy())


def test_convert_refuses_a_float_model_and_a_mismatched_file(tmp_path):
    with pytest.raises(ValueError, match="has no quantised tensor"):
        bridge.convert(torch.nn.Linear(3, 2))
    model = torch.nn.Linear(4, 2)
    bridge.quantize_model(model, 2)
    bridge.convert(model, tmp_path / "m.npz")
    with pytest.raises(ValueError, match="weight has shape"):
        bridge.load_converted(torch.nn.Linear(5, 2), tmp_path / "m.npz")
