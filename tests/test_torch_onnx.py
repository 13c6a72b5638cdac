"""ONNX: the ATen decomposition of ``ul2q::fake_quantize`` and what onnxruntime computes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402
from ul2q_ref.torch.decompose import (  # noqa: E402
    fake_quantize_decomposition,
    float32_pieces,
)
from ul2q_ref.torch.export import export_onnx  # noqa: E402


def test_lambda_survives_the_float32_constants_exactly():
    from ul2q_ref.gaussian import optimal_lambda

    for bits in range(1, 17):
        lam = optimal_lambda(bits)
        pieces = float32_pieces(lam)
        assert all(float(np.float32(p)) == p for p in pieces)
        assert (pieces[0] + pieces[1]) + pieces[2] == lam


@pytest.mark.parametrize("dtype, ulps", [(torch.float16, 1), (torch.float32, 0),
                                         (torch.float64, 6)])
def test_the_decomposition_agrees_with_the_reference(dtype, ulps):
    """Measured on these tensors (not guaranteed: other summation orders): float32 ŵ bit for
    bit; float64 within 6 ulps (α, β differ in the last bits of float64 and float64 ŵ keeps
    them); float16 within 1 ulp (torch's float64 → float16 conversion passes through
    float32, the reference rounds once)."""
    rng = np.random.default_rng(5)
    worst = 0.0
    for shape, axis in [((64, 300), None), ((64, 300), 0), ((7, 5, 3, 3), 0), ((6, 9), 1)]:
        w = torch.from_numpy(rng.normal(0.3, 0.05, shape)).to(dtype)
        for bits in (1, 2, 3, 8, 16):
            got = fake_quantize_decomposition(w, bits, axis).numpy()
            expected = uq.fake_quantize(w.numpy(), bits, axis=axis)
            assert got.dtype == expected.dtype
            distance = np.abs(got.astype(np.float64) - expected.astype(np.float64))
            worst = max(worst, float(np.max(distance / np.spacing(np.abs(expected)))))
    assert worst <= ulps
    constant = torch.full((3, 4), 0.1, dtype=dtype)
    assert torch.equal(fake_quantize_decomposition(constant, 2, 0), constant)
    scalar = torch.tensor(2.5, dtype=dtype)
    assert torch.equal(fake_quantize_decomposition(scalar, 2), scalar)


class Weights(torch.nn.Module):
    """Returns its quantised weights, so onnxruntime's ŵ can be compared bit for bit."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a = torch.nn.Linear(300, 64)
        self.b = torch.nn.Conv2d(8, 16, 3)

    def forward(self, x):
        return self.a.weight * x, self.b.weight * x


@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("optimize", [True, False])
def test_plain_dynamo_export_runs_in_onnxruntime_bit_for_bit(axis, optimize, tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model = Weights().eval()
    bridge.quantize_model(model, 2, axis, classifier_bits=2)
    x = torch.ones(())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        program = torch.onnx.export(model, (x,), dynamo=True, optimize=optimize,
                                    verbose=False)
    path = tmp_path / "w.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = [t.numpy() for t in model(x)]
    for g, e in zip(got, expected, strict=True):
        assert np.array_equal(g, e)  # float32 ŵ: the same bits (optimize folds it at export)


def test_export_onnx_with_identical_layers_and_every_width(tmp_path):
    """Two layers with the same weights (as a fresh nn.TransformerEncoder has) are two
    initializers found by name; 1..16 bits pack into INT2/INT4/INT8/INT16."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    layers = [torch.nn.Linear(6, 6) for _ in range(16)]
    for layer in layers[1:]:
        layer.load_state_dict(layers[0].state_dict())
    model = torch.nn.Sequential(*layers)
    bridge.quantize_model(model, 2, plan={str(i): i + 1 for i in range(16)})
    x = torch.randn(2, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        replaced = export_onnx(model, tmp_path / "m.onnx", x)
    assert len(replaced) == 16
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    types = {init.name: onnx.TensorProto.DataType.Name(init.data_type)
             for init in graph.initializer}
    for index in range(16):
        bits = index + 1
        wanted = "INT2" if bits <= 2 else "INT4" if bits <= 4 else "INT8" if bits <= 8 \
            else "INT16"
        assert types[replaced[f"{index}.weight"]] == wanted
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.max(np.abs(got - expected)) <= 1e-5 * max(np.abs(expected).max(), 1.0)
