"""Checks every architecture family's test module runs (tests/test_torch_family_*.py).

Each family module builds a small model (tiny widths, batch 2), says which parameters
μL2Q must quantise at which width (written by hand from the layer types, not from the code),
and takes the six tests every family runs from ``family_tests`` (its own tests beside them).
The oracles: ``ul2q_ref.fake_quantize`` (NumPy) for every ŵ, eager PyTorch for
compile/export/ONNX, the autograd engine for gradients.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import ul2q_ref as uq
from ul2q_ref import torch as bridge
from ul2q_ref.torch.export import export_onnx
from ul2q_ref.torch.modules import parameter_name, quantized_parameters


@contextlib.contextmanager
def exporter_warnings_ignored():
    """The ONNX exporter's own FutureWarning/DeprecationWarning (pytree, TorchScript)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def quantised_values(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Parameter name → ŵ as the model computes it."""
    modules = dict(model.named_modules())
    result = {}
    for name in quantized_parameters(model):
        module_name, _, tensor = name.rpartition(".")
        result[name] = getattr(modules[module_name], tensor).detach().numpy()
    return result


def check_coverage(model: torch.nn.Module, report, expected: dict[str, int | None]) -> None:
    """Every weight-like parameter is in the report with the expected width; each ŵ is
    the NumPy reference's."""
    widths = {entry.name: entry.bits for entry in report.entries}
    assert widths == expected, str(report)
    weight_like = {parameter_name(name)
                   for name, p in model.named_parameters(remove_duplicate=False)
                   if p.dim() >= 2}
    assert weight_like <= set(widths)
    assert all(reason for reason in report.float_tensors().values())
    modules = dict(model.named_modules())
    for name, parametrization in quantized_parameters(model).items():
        module_name, _, tensor = name.rpartition(".")
        raw = modules[module_name].parametrizations[tensor].original.detach().numpy()
        assert parametrization.bits == expected[name]
        got = getattr(modules[module_name], tensor).detach().numpy()
        assert np.array_equal(got, uq.fake_quantize(raw, parametrization.bits,
                                                    axis=parametrization.axis)), name


def check_training_step(model: torch.nn.Module, x: torch.Tensor) -> None:
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model(x).float().square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    optimizer.step()
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


def ul2q_nodes(program: torch.export.ExportedProgram) -> list[torch.fx.Node]:
    """The ``ul2q::fake_quantize`` calls of an exported program."""
    return [n for n in program.graph.nodes if n.op == "call_function"
            and n.target is torch.ops.ul2q.fake_quantize.default]


def _original(name: str) -> str:
    """``layer.weight`` → ``layer.parametrizations.weight.original``."""
    module_name, _, tensor = name.rpartition(".")
    return ".".join(filter(None, (module_name, "parametrizations", tensor, "original")))


def check_export(model: torch.nn.Module, x: torch.Tensor, report) -> None:
    """One ``ul2q`` node per quantised tensor of the report (a layer that reads its weight
    several times — MultiheadAttention's ``in_proj_weight`` three times — still one), each
    on its own full-precision weight; the program computes what eager mode does, bit for
    bit (both in ``no_grad``: the same kernels)."""
    program = torch.export.export(model, (x,))
    nodes = ul2q_nodes(program)
    quantised = [e.name for e in report.entries if e.bits is not None]
    assert len(nodes) == len(quantised)
    every = dict(model.named_parameters(remove_duplicate=False))
    read = Counter(id(every[program.graph_signature.inputs_to_parameters[n.args[0].name]])
                   for n in nodes)
    holders = Counter(id(every[_original(name)]) for name in quantised)
    assert read == holders  # each node on a quantised tensor's own weights
    with torch.no_grad():
        assert torch.equal(program.module()(x), model(x))


def check_compile(model: torch.nn.Module, x: torch.Tensor) -> None:
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def _ort_run(path, x: torch.Tensor) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def _assert_close_to(got: np.ndarray, expected: np.ndarray) -> None:
    """Within float32 rounding of the layers' own arithmetic (other summation orders)."""
    scale = max(float(np.abs(expected).max()), 1.0)
    assert np.max(np.abs(got - expected)) <= 1e-5 * scale


def check_onnx_dynamo(model: torch.nn.Module, x: torch.Tensor, tmp_path) -> None:
    """Plain ``torch.onnx.export(dynamo=True)``: the registered decomposition."""
    pytest.importorskip("onnxscript")
    with exporter_warnings_ignored():
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    path = tmp_path / "dynamo.onnx"
    program.save(str(path))
    with torch.no_grad():
        expected = model(x).numpy()
    _assert_close_to(_ort_run(path, x), expected)


def check_export_onnx(model: torch.nn.Module, x: torch.Tensor, tmp_path) -> None:
    """Integer codes in the file; onnxruntime's output close to PyTorch's; codes exact."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx import numpy_helper

    path = tmp_path / "codes.onnx"
    with exporter_warnings_ignored():
        replaced = export_onnx(model, path, x)
    graph = onnx.load(str(path)).graph
    initializers = {init.name: init for init in graph.initializer}
    groups = {id(p) for p in model.parameters()}
    assert len(replaced) == len(groups & {
        id(dict(model.named_modules())[n.rpartition(".")[0]]
           .parametrizations[n.rpartition(".")[2]].original)
        for n in quantized_parameters(model)})
    values = quantised_values(model)
    parametrizations = quantized_parameters(model)
    for weight, codes_name in replaced.items():
        init = initializers[codes_name]
        bits = parametrizations[weight].bits
        wanted = {1: "INT2", 2: "INT2", 3: "INT4", 4: "INT4"}.get(bits, "INT8" if bits <= 8
                                                                  else "INT16")
        assert onnx.TensorProto.DataType.Name(init.data_type) == wanted
        shifted = numpy_helper.to_array(init).astype(np.int64)
        alpha = numpy_helper.to_array(initializers[codes_name[:-5] + "alpha"])
        beta = numpy_helper.to_array(initializers[codes_name[:-5] + "beta"])
        decoded = (alpha * (shifted.astype(np.float64) + 0.5) + beta).astype(np.float32)
        assert np.array_equal(decoded, values[weight]), weight  # ŵ bit for bit
    float_sizes = [numpy_helper.to_array(i).size for i in graph.initializer
                   if i.data_type == onnx.TensorProto.FLOAT]
    biggest = max(v.size for v in values.values())
    assert all(size < biggest for size in float_sizes)  # no float copy of the largest ŵ
    with torch.no_grad():
        expected = model(x).numpy()
    _assert_close_to(_ort_run(path, x), expected)
    bigger = torch.cat([x, x[:1]])  # the batch axis is dynamic
    with torch.no_grad():
        _assert_close_to(_ort_run(path, bigger), model(bigger).numpy())


def check_state_dict_round_trip(build, bits: int, options: dict, model, x) -> None:
    fresh = build()
    bridge.quantize_model(fresh, bits, **options)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def check_remove_deepcopy_and_second_call(model: torch.nn.Module, x: torch.Tensor,
                                          parameters_before: int, bits: int) -> None:
    with pytest.raises(ValueError, match="already quantised"):
        bridge.quantize_model(model, bits)
    with torch.no_grad():
        expected = model(x)
    values = quantised_values(model)
    twin = copy.deepcopy(model)
    bridge.remove_quantization(twin)  # baked: ŵ as plain float weights
    assert not quantized_parameters(twin) and quantized_parameters(model)
    assert len(list(twin.parameters())) == parameters_before  # ties kept
    twin_parameters = dict(twin.named_parameters(remove_duplicate=False))
    for name, value in values.items():
        assert np.array_equal(twin_parameters[name].detach().numpy(), value), name
    with torch.no_grad():
        # the same weights bit for bit; the layers' float32 arithmetic may take another path
        torch.testing.assert_close(twin(x), expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(model(x), expected)  # the original untouched
    restored = copy.deepcopy(model)
    bridge.remove_quantization(restored, bake=False)
    assert len(list(restored.parameters())) == parameters_before
    bridge.quantize_model(restored, bits)  # allowed again once removed


def check_meta_and_low_precision(build, bits: int, options: dict, x: torch.Tensor) -> None:
    with torch.device("meta"):
        meta = build()
        bridge.quantize_model(meta, bits, **options)
        out = meta(x.to("meta"))
    assert out.device.type == "meta"
    for dtype in (torch.float16, torch.bfloat16):
        model = build().to(dtype)
        bridge.quantize_model(model, bits, **options)
        inputs = x.to(dtype) if x.is_floating_point() else x
        with torch.no_grad():
            assert model(inputs).dtype == dtype
        modules = dict(model.named_modules())
        for name in quantized_parameters(model):
            module_name, _, tensor = name.rpartition(".")
            assert getattr(modules[module_name], tensor).dtype == dtype, name


def check_convert(build, model: torch.nn.Module, x: torch.Tensor, tmp_path) -> None:
    """convert → the project's model file → load_converted: ŵ decoded in torch from the
    integer codes equals the fake-quantised ŵ bit for bit, and so do the outputs."""
    from ul2q_ref.torch.convert import convert, load_converted
    from ul2q_ref.weights import read_model

    path = tmp_path / "converted.npz"
    codes = convert(model, path)
    values = quantised_values(model)
    for name, quantized in codes.items():
        assert np.array_equal(quantized.dequantize(np.float32), values[name]), name
    assert {t.name: t.array.shape for t in read_model(path).tensors if t.name in codes} == {
        name: values[name].shape for name in codes}
    fresh = load_converted(build(), path)
    assert not quantized_parameters(fresh)
    loaded = dict(fresh.named_parameters(remove_duplicate=False))
    for name in codes:
        assert np.array_equal(loaded[name].detach().numpy(), values[name]), name
    fresh.train(model.training)
    with torch.no_grad():
        _assert_close_to(fresh(x).numpy(), model(x).numpy())


@dataclass(frozen=True)
class Family:
    """What differs between two architecture families' tests.

    build: a fresh float model (seeded); bits: the k of ``quantize_model``; options: its
    keyword arguments; inputs: a batch of 2; expected: parameter name → k (None: float);
    coverage_also: the family's own assertions on (model, report) after the coverage check.
    """

    build: Callable[[], torch.nn.Module]
    bits: int
    inputs: torch.Tensor
    expected: dict[str, int | None]
    options: dict = field(default_factory=dict)
    coverage_also: Callable[[torch.nn.Module, object], None] | None = None


def family_tests(family: Family) -> tuple[Callable, ...]:
    """The fixture ``quantised`` and the six tests every family runs, in this order:
    test_coverage, test_training_step, test_export_and_onnx,
    test_state_convert_remove_copy_and_second_call, test_meta_and_low_precision,
    test_compile_fullgraph (slow). A family module unpacks them into its own names."""
    build, bits, options, x = family.build, family.bits, family.options, family.inputs

    @pytest.fixture
    def quantised():
        model = build()
        parameters = len(list(model.parameters()))
        report = bridge.quantize_model(model, bits, **options)
        return model, report, parameters

    def test_coverage(quantised):
        model, report, _ = quantised
        check_coverage(model, report, family.expected)
        if family.coverage_also is not None:
            family.coverage_also(model, report)

    def test_training_step(quantised):
        model, _, _ = quantised
        check_training_step(model.train(), x)

    def test_export_and_onnx(quantised, tmp_path):
        model, report, _ = quantised
        check_export(model, x, report)
        model.eval()  # a family built in train mode: the ONNX exporter warns about it
        check_onnx_dynamo(model, x, tmp_path)
        check_export_onnx(model, x, tmp_path)

    def test_state_convert_remove_copy_and_second_call(quantised, tmp_path):
        model, _, parameters = quantised
        check_state_dict_round_trip(build, bits, options, model, x)
        check_convert(build, model, x, tmp_path)
        check_remove_deepcopy_and_second_call(model, x, parameters, bits)

    def test_meta_and_low_precision():
        check_meta_and_low_precision(build, bits, options, x)

    @pytest.mark.slow
    @pytest.mark.filterwarnings("ignore::DeprecationWarning")
    def test_compile_fullgraph(quantised):
        model, _, _ = quantised
        check_compile(model, x)

    return (quantised, test_coverage, test_training_step, test_export_and_onnx,
            test_state_convert_remove_copy_and_second_call, test_meta_and_low_precision,
            test_compile_fullgraph)
