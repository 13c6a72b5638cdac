"""Integer export of PyTorch μL2Q models: the project's integer-model file and ONNX."""

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
from ul2q_ref.nn.data import load_dataset  # noqa: E402
from ul2q_ref.nn.export import load_integer_model  # noqa: E402
from ul2q_ref.torch.export import export_model, export_onnx  # noqa: E402
from ul2q_ref.torch.models import LeNet5  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained():
    """A LeNet-5 at 2 bits trained for 100 steps on the embedded MNIST subset."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dataset = load_dataset("mnist-small")
    model = LeNet5()
    bridge.quantize_model(model, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.from_numpy(dataset.to_float(dataset.train_images[:100 * 64]))
    labels = torch.from_numpy(dataset.train_labels[:100 * 64].astype(np.int64))
    for start in range(0, len(labels), 64):
        loss = torch.nn.functional.cross_entropy(model(images[start:start + 64]),
                                                 labels[start:start + 64])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, dataset


def test_the_integer_model_file_runs_in_evaluate_and_agrees(trained, tmp_path):
    model, dataset = trained
    path = tmp_path / "model.npz"
    summary = export_model(model, path)
    assert summary["layers"] == {"conv1": 2, "conv2": 2, "fc1": 2, "fc2": 8}
    _, numpy_model, _ = load_integer_model(path)
    # the decoded codes are exactly the PyTorch model's quantised weights
    for name in ("conv1", "conv2", "fc1", "fc2"):
        decoded = numpy_model.state_dict()[f"{name}.weight"]
        assert np.array_equal(decoded, getattr(model, name).weight.detach().numpy())
    test_x = dataset.to_float(dataset.test_images)
    with torch.no_grad():
        torch_predictions = model(torch.from_numpy(test_x)).argmax(1).numpy()
    numpy_predictions = np.concatenate([
        numpy_model.forward(test_x[i:i + 1000], training=False).argmax(1)
        for i in range(0, len(test_x), 1000)])
    agreement = np.mean(torch_predictions == numpy_predictions)
    assert len(test_x) == 10_000 and agreement >= 0.999
    accuracy = np.mean(torch_predictions == dataset.test_labels)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "ul2q_ref", "evaluate", str(path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    reported = float(run.stdout.split("test accuracy: ")[1].split("%")[0])
    numpy_accuracy = np.mean(numpy_predictions == dataset.test_labels)
    assert abs(reported - 100 * numpy_accuracy) < 0.006 and accuracy > 0.9


def test_export_model_refuses_models_without_a_numpy_twin(tmp_path):
    with pytest.raises(ValueError, match="has no NumPy twin"):
        export_model(torch.nn.Linear(3, 2), tmp_path / "x.npz")


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_onnx_stores_integer_codes_and_onnxruntime_agrees(trained, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from onnx import numpy_helper

    model, dataset = trained
    x = torch.from_numpy(dataset.to_float(dataset.test_images[:256]))
    path = tmp_path / "lenet5.onnx"
    replaced = export_onnx(model, path, x[:2])
    assert set(replaced) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    graph = onnx.load(path).graph
    by_name = {init.name: init for init in graph.initializer}
    initializers = {name: numpy_helper.to_array(init) for name, init in by_name.items()}
    for name, codes_name in replaced.items():
        layer = name.split(".")[0]
        bits = 8 if layer == "fc2" else 2
        raw = getattr(model, layer).parametrizations.weight.original.detach().numpy()
        expected = uq.quantize(raw, bits, axis=0).codes
        stored = by_name[codes_name]  # q − 1: the signed k-bit range, INT2 at 2 bits
        assert onnx.TensorProto.DataType.Name(stored.data_type) == ("INT8" if bits == 8
                                                                      else "INT2")
        assert np.array_equal(initializers[codes_name].astype(np.int64) + 1, expected)
    # no float copy of a quantised weight is left in the file
    float_arrays = [a for a in initializers.values() if a.dtype == np.float32]
    assert all(a.size < 1000 for a in float_arrays)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected_logits = model(x).numpy()
    scale = np.abs(expected_logits).max()
    assert np.max(np.abs(logits - expected_logits)) <= 1e-5 * scale
