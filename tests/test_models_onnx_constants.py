"""ONNX files as exporters write them: weights in Constant nodes, behind Identity/Cast/
DequantizeLinear, in bfloat16 and float16, with strings beside them, and in external data.

The PaddleOCR-style model is built the way paddle2onnx writes one (opset 11, no
initializers: every weight a ``Constant`` node), by converting a small model's initializers
to Constant nodes; the test runs inspect, plan, quantize and dequantize on it and compares
every weight read with the array it was built from.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ul2q_ref.cli import main
from ul2q_ref.weights import ModelFileError, read_model, select_weights

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(11)
WEIGHTS = {
    "conv1.w": RNG.normal(0, 0.2, (8, 3, 3, 3)).astype(np.float32),
    "conv1.b": RNG.normal(0, 0.1, 8).astype(np.float32),
    "fc.w": RNG.laplace(0, 0.05, (10, 8)).astype(np.float32),  # Gemm transB=1: (out, in)
    "proj.w": RNG.normal(0, 0.1, (10, 6)).astype(np.float32),  # MatMul x @ B: (in, out)
}


def _graph_with_initializers() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.w"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "proj.w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "paddle_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
        [numpy_helper.from_array(v, k) for k, v in WEIGHTS.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def _to_constant_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every initializer becomes a ``Constant`` node (``value`` attribute), as paddle2onnx
    writes them; the graph is left without initializers."""
    graph = model.graph
    constants = [helper.make_node("Constant", [], [t.name], value=t) for t in graph.initializer]
    del graph.initializer[:]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(constants + nodes)
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def paddle_model(tmp_path):
    path = tmp_path / "det.onnx"
    onnx.save(_to_constant_nodes(_graph_with_initializers()), str(path))
    return path


def test_constant_node_weights_are_read_with_their_roles(paddle_model):
    model = read_model(paddle_model)
    assert len(onnx.load(str(paddle_model)).graph.initializer) == 0
    roles = {t.name: (t.role, t.channel_axis) for t in model.tensors}
    assert roles == {"conv1.w": ("weight", 0), "conv1.b": ("bias", 0), "fc.w": ("weight", 0),
                     "proj.w": ("weight", 1)}
    assert [t.name for t in select_weights(model)] == ["conv1.w", "fc.w", "proj.w"]
    for tensor in model.tensors:
        np.testing.assert_array_equal(tensor.load(), WEIGHTS[tensor.name])


def test_inspect_plan_quantize_dequantize_a_paddle_style_model(paddle_model, tmp_path, capsys):
    report, plan = tmp_path / "r.json", tmp_path / "plan.json"
    quantized, back = tmp_path / "q.npz", tmp_path / "back.npz"
    assert main(["inspect", str(paddle_model), "--bits", "2,4", "--json", str(report),
                 "--quiet"]) == 0
    rows = json.loads(report.read_text())["layers"]
    assert [r["name"] for r in rows] == ["conv1.w", "fc.w", "proj.w"]
    assert rows[0]["std"] == pytest.approx(float(WEIGHTS["conv1.w"].astype(np.float64).std()),
                                           rel=1e-12)
    assert main(["plan", str(paddle_model), "--budget", "3", "-o", str(plan), "--quiet"]) == 0
    assert set(json.loads(plan.read_text())["layers"]) == {"conv1.w", "fc.w", "proj.w"}
    assert main(["quantize", str(paddle_model), "--plan", str(plan), "--axis", "0",
                 "-o", str(quantized)]) == 0
    assert main(["dequantize", str(quantized), "-o", str(back)]) == 0
    capsys.readouterr()
    with np.load(quantized, allow_pickle=False) as stored, \
            np.load(back, allow_pickle=False) as decoded:
        for name in ("conv1.w", "fc.w", "proj.w"):
            codes = stored[f"quantized/{name}/codes"].astype(np.float64)
            alpha = stored[f"quantized/{name}/alpha"]
            beta = stored[f"quantized/{name}/beta"]
            axis = int(stored[f"quantized/{name}/axis"])
            assert axis == (1 if name == "proj.w" else 0)  # MatMul's B is (in, out)
            shape = [1] * codes.ndim
            shape[axis] = -1
            expected = alpha.reshape(shape) * (codes - 0.5) + beta.reshape(shape)
            np.testing.assert_array_equal(decoded[name], expected.astype(np.float32))
        np.testing.assert_array_equal(decoded["conv1.b"], WEIGHTS["conv1.b"])


def _single_node_model(path, nodes, initializers=(), opset=13):
    graph = helper.make_graph(nodes, "g", [], [], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))


def test_value_floats_and_value_ints_constants(tmp_path):
    path = tmp_path / "m.onnx"
    _single_node_model(path, [
        helper.make_node("Constant", [], ["scale"], value_floats=[0.5, 1.5]),
        helper.make_node("Constant", [], ["one"], value_float=2.0),
        helper.make_node("Constant", [], ["shape"], value_ints=[1, -1]),
        helper.make_node("Constant", [], ["axis"], value_int=3),
        helper.make_node("Constant", [], ["label"], value_string="text"),
        helper.make_node("Constant", [], ["labels"], value_strings=["a", "b"]),
    ])
    tensors = {t.name: t.load() for t in read_model(path).tensors}
    assert set(tensors) == {"scale", "one", "shape", "axis"}  # strings skipped
    np.testing.assert_array_equal(tensors["scale"], np.array([0.5, 1.5], np.float32))
    assert tensors["one"].dtype == np.float32 and tensors["one"] == 2.0
    np.testing.assert_array_equal(tensors["shape"], np.array([1, -1], np.int64))
    assert tensors["axis"] == 3


def _bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 values that bfloat16 holds exactly, and their 16-bit patterns."""
    bits = (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return bits


def test_bfloat16_float16_weights_behind_cast_identity_and_dequantize(tmp_path):
    rng = np.random.default_rng(5)
    bf16_bits = _bfloat16(rng.normal(0, 0.1, (4, 6)))
    bf16_values = (bf16_bits.astype(np.uint32) << 16).view(np.float32)
    bf16 = helper.make_tensor("w_bf16", TensorProto.BFLOAT16, [4, 6],
                              bf16_bits.tobytes(), raw=True)
    half = rng.normal(0, 0.1, (6, 5)).astype(np.float16)
    int8 = rng.integers(-127, 128, (5, 5)).astype(np.int8)
    text = helper.make_tensor("names", TensorProto.STRING, [2], [b"a", b"b"])
    nodes = [
        helper.make_node("MatMul", ["x", "w_bf16"], ["a"]),  # bf16 weight used directly
        helper.make_node("Cast", ["w_half"], ["w_half32"], to=TensorProto.FLOAT),
        helper.make_node("Identity", ["w_half32"], ["w_half_id"]),
        helper.make_node("MatMul", ["a", "w_half_id"], ["b"]),
        helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w_dq"]),
        helper.make_node("Gemm", ["b", "w_dq"], ["y"], transB=1),
    ]
    inits = [bf16, numpy_helper.from_array(half, "w_half"), numpy_helper.from_array(int8, "w_q"),
             numpy_helper.from_array(np.float32(0.01), "s"),
             numpy_helper.from_array(np.int8(0), "z"), text]
    path = tmp_path / "m.onnx"
    _single_node_model(path, nodes, inits)
    model = read_model(path)
    by_name = {t.name: t for t in model.tensors}
    assert "names" not in by_name  # a string tensor is skipped, never pickled
    assert (by_name["w_bf16"].role, by_name["w_bf16"].dtype) == ("weight", np.float32)
    np.testing.assert_array_equal(by_name["w_bf16"].load(), bf16_values)
    assert by_name["w_half"].role == "weight" and by_name["w_half"].channel_axis == 1
    np.testing.assert_array_equal(by_name["w_half"].load(), half)
    assert by_name["w_q"].role == "weight" and by_name["w_q"].channel_axis == 0
    assert [t.name for t in select_weights(model)] == ["w_bf16", "w_half"]  # int8: not float
    out = tmp_path / "q.npz"
    assert main(["quantize", str(path), "--bits", "3", "-o", str(out)]) == 0
    with np.load(out, allow_pickle=False) as stored:
        assert str(stored["quantized/w_half/dtype"]) == "<f2"
        assert "float/names" not in stored.files and "float/w_q" in stored.files


def _external_model(tmp_path, data: bytes, fields: dict[str, str]):
    """A model whose one MatMul weight (4 × 4 float32, 64 bytes) lives in external data."""
    (tmp_path / "w.bin").write_bytes(data)
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": "w.bin", **fields}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = tmp_path / "m.onnx"
    _single_node_model(path, [helper.make_node("MatMul", ["x", "w"], ["y"])], [tensor])
    return path


def test_external_data_is_read_after_its_size_is_checked(tmp_path):
    values = np.arange(16, dtype=np.float32).reshape(4, 4)
    path = _external_model(tmp_path, b"\0" * 8 + values.tobytes(), {"offset": "8",
                                                                    "length": "64"})
    (tensor,) = read_model(path).tensors
    np.testing.assert_array_equal(tensor.load(), values)
    np.testing.assert_array_equal(tensor.load(np.float64), values.astype(np.float64))


@pytest.mark.parametrize(("data", "fields", "message"), [
    (b"\0" * 64, {"length": "1073741824"}, "declares 1073741824 bytes, its shape"),
    (b"\0" * 32, {}, "holds 32 bytes, the tensor needs 64"),
    (b"\0" * 64, {"offset": "16"}, "needs 64 at offset 16"),
    (b"\0" * 64, {"location": "../w.bin"}, "not a file inside the model's directory"),
    (b"\0" * 64, {"location": "/etc/passwd"}, "not a file inside the model's directory"),
    (b"\0" * 64, {"location": "missing.bin"}, "missing.bin"),
    (b"\0" * 64, {"offset": "x"}, "not an integer"),
])
def test_bad_external_data_is_refused_before_reading(tmp_path, data, fields, message):
    path = _external_model(tmp_path, data, fields)
    with pytest.raises(ModelFileError, match=message) as raised:
        read_model(path)
    assert str(path) in str(raised.value) and "tensor w" in str(raised.value)


def test_a_huge_external_file_without_length_is_not_read(tmp_path, monkeypatch):
    """512 MiB of external data for a 64-byte tensor: refused from its size, never read."""
    path = _external_model(tmp_path, b"", {})
    with open(tmp_path / "w.bin", "wb") as handle:  # sparse: no disk used
        handle.truncate(512 << 20)
    (tensor,) = read_model(path).tensors  # offset 0, 64 bytes: within the file, reads 64
    assert tensor.load().shape == (4, 4)
    import ul2q_ref.weights.readers as readers

    reads = []
    real = readers._fill

    def counting(handle, view, file, name):
        reads.append(len(view))
        return real(handle, view, file, name)

    monkeypatch.setattr(readers, "_fill", counting)
    tensor.load()
    assert sum(reads) == 64


def test_onnx_is_pinned_to_a_release_without_the_external_data_traversal_flaws():
    """onnx < 1.16 followed external-data paths out of the model's directory (the CVEs of
    2024); both extras that bring onnx pin 1.16 or later, and the one installed is."""
    import re
    from pathlib import Path

    setup = (Path(__file__).resolve().parents[1] / "setup.py").read_text(encoding="utf-8")
    pins = re.findall(r'"onnx>=([0-9.]+)"', setup)
    assert len(pins) == 2, pins  # [test] and [models]
    assert all(tuple(int(p) for p in pin.split(".")[:2]) >= (1, 16) for pin in pins)
    installed = tuple(int(p) for p in onnx.__version__.split(".")[:2])
    assert installed >= (1, 16)
