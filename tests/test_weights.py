"""Real models (issue 13): readers, the normality statistics and losses, the exact planner.

Every reader is tested against files written by the format's own library (safetensors,
torch.save, onnx.helper); statistics against scipy.stats; losses against a direct evaluation
with the reference quantiser; the planner against brute force.
"""

from __future__ import annotations

import itertools
import zipfile

import numpy as np
import pytest
from scipy import stats

import ul2q_ref as uq
from ul2q_ref.io import quantized_arrays
from ul2q_ref.weights import (
    ModelFileError,
    Tensor,
    capacity_bits,
    inspect_tensors,
    plan_bits,
    read_model,
    select_weights,
    solve,
    tensor_report,
)
from ul2q_ref.weights.inspect import SortedValues

RNG = np.random.default_rng(13)


def _state() -> dict[str, np.ndarray]:
    """A small CNN's tensors, PyTorch names: conv, BatchNorm, PReLU and linear layers."""
    rng = np.random.default_rng(1)
    return {
        "conv1.weight": rng.normal(0, 0.2, (8, 3, 3, 3)).astype(np.float32),
        "conv1.bias": rng.normal(0, 0.1, 8).astype(np.float32),
        "bn1.weight": rng.normal(1, 0.1, 8).astype(np.float32),
        "bn1.bias": rng.normal(0, 0.1, 8).astype(np.float32),
        "bn1.running_mean": rng.normal(0, 0.1, 8).astype(np.float32),
        "bn1.running_var": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "prelu1.weight": np.full(8, 0.25, np.float32),
        "fc.weight": rng.laplace(0, 0.05, (10, 72)).astype(np.float32),
        "fc.bias": np.zeros(10, np.float32),
    }


DEFAULT_WEIGHTS = ["conv1.weight", "fc.weight"]


def _check_tensors(model, state, ordered=True):
    names = [t.name for t in model.tensors]
    assert names == list(state) if ordered else sorted(names) == sorted(state)
    for tensor in model.tensors:
        np.testing.assert_array_equal(tensor.array, state[tensor.name])
        assert tensor.array.dtype == state[tensor.name].dtype
    assert sorted(t.name for t in select_weights(model)) == DEFAULT_WEIGHTS


# --- readers -------------------------------------------------------------------------------

def test_safetensors_written_by_the_safetensors_package(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "m.safetensors"
    safetensors_numpy.save_file(_state(), str(path))
    model = read_model(path)
    assert model.format == "safetensors"
    _check_tensors(model, _state(), ordered=False)  # the package stores its own order
    roles = {t.name: t.role for t in model.tensors}
    assert roles["bn1.running_var"] == "norm" and roles["fc.bias"] == "bias"


def test_torch_state_dict_and_nested_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    state = _state()
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    tensors["bn1.num_batches_tracked"] = torch.tensor(7)
    torch.save(tensors, tmp_path / "sd.pt")
    model = read_model(tmp_path / "sd.pt")
    assert model.format == "PyTorch state dict"
    assert [t.name for t in select_weights(model)] == DEFAULT_WEIGHTS
    np.testing.assert_array_equal(model.tensors[0].array, state["conv1.weight"])
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}, "state_dict": tensors},
               tmp_path / "ckpt.pth")
    nested = read_model(tmp_path / "ckpt.pth")
    assert [t.name for t in nested.tensors] == [t.name for t in model.tensors]
    half = {"w.weight": torch.from_numpy(state["fc.weight"]).to(torch.bfloat16)}
    torch.save(half, tmp_path / "bf16.pt")
    (tensor,) = read_model(tmp_path / "bf16.pt").tensors
    assert tensor.array.dtype == np.float32
    np.testing.assert_array_equal(tensor.array, half["w.weight"].float().numpy())


class _NotATensor:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_torch_files_with_python_objects_are_refused_not_unpickled(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.save({"conv.weight": torch.zeros(2, 2), "evil": _NotATensor()}, tmp_path / "x.pt")
    with pytest.raises(ModelFileError, match="never unpickled") as caught:
        read_model(tmp_path / "x.pt")
    assert "\n" not in str(caught.value) and "x.pt" in str(caught.value)
    assert "unpickled!" not in capsys.readouterr().out


def _onnx_model(path):
    """Conv → BatchNorm → Flatten → Gemm(transB=1) → MatMul → Add, built with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    state = _state()
    rng = np.random.default_rng(2)
    matmul = rng.normal(0, 0.1, (10, 5)).astype(np.float32)  # x @ B: (in, out)
    add = rng.normal(0, 0.1, 5).astype(np.float32)
    initializers = {
        "conv1.weight": state["conv1.weight"], "conv1.bias": state["conv1.bias"],
        "bn.scale": state["bn1.weight"], "bn.B": state["bn1.bias"],
        "bn.mean": state["bn1.running_mean"], "bn.var": state["bn1.running_var"],
        "fc.weight": state["fc.weight"], "fc.bias": state["fc.bias"],
        "proj": matmul, "proj_bias": add,
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c"], pads=[0, 0, 0, 0]),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.B", "bn.mean", "bn.var"],
                         ["b"]),
        helper.make_node("Flatten", ["b"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "proj"], ["m"]),
        helper.make_node("Add", ["m", "proj_bias"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return initializers


def test_onnx_roles_come_from_the_consuming_nodes(tmp_path):
    initializers = _onnx_model(tmp_path / "m.onnx")
    model = read_model(tmp_path / "m.onnx")
    roles = {t.name: (t.role, t.channel_axis) for t in model.tensors}
    assert roles["conv1.weight"] == ("weight", 0) and roles["conv1.bias"][0] == "bias"
    assert {roles[k][0] for k in ("bn.scale", "bn.B", "bn.mean", "bn.var")} == {"norm"}
    assert roles["fc.weight"] == ("weight", 0) and roles["fc.bias"][0] == "bias"
    assert roles["proj"] == ("weight", 1) and roles["proj_bias"][0] == "bias"
    assert [t.name for t in select_weights(model)] == ["conv1.weight", "fc.weight", "proj"]
    for tensor in model.tensors:
        np.testing.assert_array_equal(tensor.array, initializers[tensor.name])


def test_onnx_model_runs_in_onnxruntime_so_it_is_a_real_model(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    _onnx_model(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.ones((1, 3, 5, 5), np.float32)})
    assert out.shape == (1, 5)


def test_npz_arrays_checkpoints_and_integer_models(tmp_path):
    state = _state()
    np.savez(tmp_path / "plain.npz", **state)
    _check_tensors(read_model(tmp_path / "plain.npz"), state)
    np.savez(tmp_path / "ckpt.npz", format=np.array("ul2q-ref/checkpoint-v1"),
             config=np.array("{}"), **{f"model/{k}": v for k, v in state.items()},
             **{"optimizer/fc.weight": np.ones(3)})
    model = read_model(tmp_path / "ckpt.npz")
    assert model.format == "ul2q-ref checkpoint"
    _check_tensors(model, state)
    q = uq.quantize(state["conv1.weight"], 3)
    arrays = {f"quantized/conv1.weight/{k}": v for k, v in quantized_arrays(q).items()}
    arrays.update({f"float/{k}": v for k, v in state.items() if k != "conv1.weight"})
    np.savez(tmp_path / "int.npz", format=np.array("ul2q-ref/integer-model-v1"),
             config=np.array("{}"), **arrays)
    model = read_model(tmp_path / "int.npz")
    decoded = {t.name: t.array for t in model.tensors}
    np.testing.assert_array_equal(decoded["conv1.weight"], q.dequantize())
    np.testing.assert_array_equal(decoded["fc.weight"], state["fc.weight"])


def test_include_and_exclude_patterns(tmp_path):
    np.savez(tmp_path / "m.npz", **_state())
    model = read_model(tmp_path / "m.npz")
    assert [t.name for t in select_weights(model, exclude=["fc*"])] == ["conv1.weight"]
    chosen = select_weights(model, include=["*.bias", "conv1"], exclude=["bn1.*"])
    assert [t.name for t in chosen] == ["conv1.weight", "conv1.bias", "fc.bias"]
    with pytest.raises(ModelFileError, match="no weight tensors selected"):
        select_weights(model, include=["nothing*"])


def _npz_claiming_a_huge_member(path):
    """An .npz whose member's header claims 999,999,999 float64 values (8 GB) in 32 bytes."""
    np.save(path.with_suffix(".npy"), np.zeros(4))
    text = path.with_suffix(".npy").read_bytes().replace(b"(4,), ", b"(999999999,), ")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", text)


@pytest.mark.parametrize("kind", ["safetensors", "onnx", "pt", "npz", "npz-huge", "npy-huge",
                                  "safetensors-offsets", "empty-pt"])
def test_corrupt_files_give_one_line_errors_naming_the_file(tmp_path, kind):
    if kind == "safetensors":
        safetensors_numpy = pytest.importorskip("safetensors.numpy")
        path = tmp_path / "m.safetensors"
        safetensors_numpy.save_file(_state(), str(path))
        path.write_bytes(path.read_bytes()[:-100])
    elif kind == "safetensors-offsets":
        path = tmp_path / "m.safetensors"
        header = b'{"w": {"dtype": "F32", "shape": [1000000], "data_offsets": [0, 4000000]}}'
        path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    elif kind == "onnx":
        pytest.importorskip("onnx")
        path = tmp_path / "m.onnx"
        path.write_bytes(b"\x08\x07garbage that is not a protobuf \xff\xff\xff")
    elif kind in ("pt", "empty-pt"):
        torch = pytest.importorskip("torch")
        path = tmp_path / "m.pt"
        torch.save({k: torch.from_numpy(v) for k, v in _state().items()}, path)
        path.write_bytes(path.read_bytes()[: 300 if kind == "pt" else 0])
    elif kind == "npz":
        path = tmp_path / "m.npz"
        np.savez(path, **_state())
        path.write_bytes(path.read_bytes()[:700])
    elif kind == "npz-huge":
        path = tmp_path / "m.npz"
        _npz_claiming_a_huge_member(path)
    else:
        path = tmp_path / "m.npy"
        np.save(path, np.zeros(4))
        path.write_bytes(path.read_bytes().replace(b"(4,), ", b"(999999999999,), "))
    with pytest.raises(ModelFileError) as caught:
        read_model(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message


def test_missing_package_names_what_to_install(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module

    def no_onnx(name, *args):
        if name.startswith("onnx"):
            raise ImportError(name)
        return real(name, *args)

    path = tmp_path / "m.onnx"
    path.write_bytes(b"")
    monkeypatch.setattr(importlib, "import_module", no_onnx)
    hint = r"needs the 'onnx' package .*ul2q-ref\[models\]"
    with pytest.raises(ModelFileError, match=hint):
        read_model(path)


def test_safetensors_need_no_package(tmp_path, monkeypatch):
    """safetensors files are read by the project's own bounded header reader."""
    import sys

    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors fails
    path = tmp_path / "m.safetensors"
    header = b'{"w.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header
                     + np.array([1.5, -2.0], "<f4").tobytes())
    (tensor,) = read_model(path).tensors
    np.testing.assert_array_equal(tensor.load(), [[1.5, -2.0]])


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="unknown model format .h5"):
        read_model(tmp_path / "m.h5")
    with pytest.raises(ModelFileError, match="no such file"):
        read_model(tmp_path / "none.pt")


# --- statistics and losses -----------------------------------------------------------------

@pytest.mark.parametrize("draw", ["normal", "uniform", "laplace", "skewed"])
def test_statistics_against_scipy(draw):
    rng = np.random.default_rng(5)
    values = {"normal": lambda: rng.normal(0.1, 0.3, (16, 9, 5)),
              "uniform": lambda: rng.uniform(-1, 1, (16, 9, 5)),
              "laplace": lambda: rng.laplace(0, 0.1, (16, 9, 5)),
              "skewed": lambda: rng.gamma(2.0, 1.0, (16, 9, 5))}[draw]().astype(np.float32)
    report = tensor_report(values, bits=(2,), best_step=False)
    flat = values.astype(np.float64).ravel()
    assert report["n"] == flat.size
    assert report["mean"] == pytest.approx(np.mean(flat), rel=1e-12, abs=1e-15)
    assert report["std"] == pytest.approx(np.std(flat), rel=1e-12)
    assert report["skewness"] == pytest.approx(stats.skew(flat), rel=1e-9, abs=1e-12)
    assert report["excess_kurtosis"] == pytest.approx(stats.kurtosis(flat), rel=1e-9, abs=1e-12)
    phi = (flat - flat.mean()) / flat.std()
    assert report["ks_distance"] == pytest.approx(stats.kstest(phi, "norm").statistic, rel=1e-9)


def _direct_loss(values, bits, axis=None):
    """mean((w − ŵ)²) with the NumPy reference quantiser, and the variance it is scaled by."""
    w = values.astype(np.float64)
    restored = uq.quantize(w, bits, axis=axis, backend="reference").dequantize(np.float64)
    if axis is None:
        return np.mean((w - restored) ** 2) / np.var(w)
    channel_var = np.var(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1), axis=1)
    return np.mean((w - restored) ** 2) / np.mean(channel_var)


def test_losses_against_a_direct_evaluation_with_the_reference_quantiser():
    values = RNG.laplace(0, 0.05, (12, 4, 3, 3)).astype(np.float32)
    values[3] *= 4.0  # one channel much wider: per channel differs from per tensor
    report = tensor_report(values, bits=range(1, 9), channel_axis=0)
    for entry in report["loss"]:
        k = entry["bits"]
        assert entry["predicted"] == uq.expected_loss(uq.optimal_lambda(k), k)
        assert entry["actual"] == pytest.approx(_direct_loss(values, k), rel=1e-9)
        assert entry["actual_per_channel"] == pytest.approx(_direct_loss(values, k, 0), rel=1e-9)
        assert entry["ratio"] == pytest.approx(entry["actual"] / entry["predicted"])


@pytest.mark.parametrize(("shape", "axis"), [((7, 9), 1), ((5, 4, 3), 1), ((6, 10), 0),
                                             ((3, 2, 4), 2)])
def test_per_channel_losses_along_any_axis_with_a_constant_channel(shape, axis):
    """The sorted-channel evaluation (a view along the axis) and the chunked fallback (when
    the channels are not a view) both equal the reference quantiser's per-channel loss."""
    values = RNG.normal(0.3, 0.1, shape)
    index = [slice(None)] * len(shape)
    index[axis] = 1
    values[tuple(index)] = 0.7  # a constant channel: σ_c = 0, no error
    report = tensor_report(values, bits=range(1, 9), channel_axis=axis, best_step=False)
    for entry in report["loss"]:
        expected = _direct_loss(values, entry["bits"], axis)
        assert entry["actual_per_channel"] == pytest.approx(expected, rel=1e-9)


def test_a_tensor_of_several_chunks_against_direct_evaluations():
    """More than 256k values: the statistics, KS distance, block prefix sums and per-channel
    losses run over several chunks and still equal the direct (SciPy, reference) values."""
    values = RNG.laplace(0.01, 0.05, (301, 1003))  # 301,903 values: 2 chunks, odd blocks
    report = tensor_report(values, bits=(1, 3, 8), channel_axis=0, best_step=False)
    flat = values.ravel()
    assert report["skewness"] == pytest.approx(stats.skew(flat), rel=1e-9)
    assert report["excess_kurtosis"] == pytest.approx(stats.kurtosis(flat), rel=1e-9)
    phi = (flat - flat.mean()) / flat.std()
    assert report["ks_distance"] == pytest.approx(stats.kstest(phi, "norm").statistic, rel=1e-9)
    for entry in report["loss"]:
        assert entry["actual"] == pytest.approx(_direct_loss(values, entry["bits"]), rel=1e-9)
        assert entry["actual_per_channel"] == pytest.approx(
            _direct_loss(values, entry["bits"], 0), rel=1e-9)


def test_inspect_leaves_given_arrays_alone():
    """Only a tensor read from a file is used as scratch space; a given array is not."""
    values = RNG.normal(0, 1, (5, 7))
    before = values.copy()
    inspect_tensors([Tensor("w.weight", values, "weight")], bits=(2,))
    np.testing.assert_array_equal(values, before)


def test_threads_give_the_same_report_as_one():
    values = RNG.laplace(0, 0.05, (40, 3, 3, 3))
    one = tensor_report(values, bits=range(1, 9), channel_axis=0, jobs=1)
    assert tensor_report(values, bits=range(1, 9), channel_axis=0, jobs=3) == one


def _empirical(phi, lam, bits):
    codes = uq.encode(phi, lam, 0.0, bits, backend="reference").astype(np.float64)
    return np.mean((phi - lam * (codes - 0.5)) ** 2)


def test_sorted_prefix_loss_equals_the_direct_loss_at_any_step():
    phi = RNG.standard_t(4, 5000)
    ordered = SortedValues(phi)
    for bits in (1, 2, 3, 5, 8):
        for lam in RNG.uniform(0.01, 3.0, 10):
            assert ordered.loss(lam, bits) == pytest.approx(_empirical(phi, lam, bits), rel=1e-10)


def test_best_step_beats_every_step_on_a_fine_grid():
    phi = RNG.laplace(0, 1, 3000)
    phi = (phi - phi.mean()) / phi.std()
    ordered = SortedValues(phi)
    for bits in (1, 2, 4):
        lam, loss = ordered.best_step(bits)
        star = uq.optimal_lambda(bits)
        grid = star * np.exp(np.linspace(np.log(1 / 8), np.log(8), 1201))
        direct = min(_empirical(phi, g, bits) for g in grid)
        assert loss <= direct * (1 + 1e-12)
        assert loss == pytest.approx(_empirical(phi, lam, bits), rel=1e-10)


def test_best_step_of_normal_data_is_near_the_gaussian_optimum():
    rows = tensor_report(RNG.normal(0, 1, 400_000), bits=(1, 2, 3), channel_axis=None)
    for entry in rows["loss"]:
        assert entry["best_lambda_ratio"] == pytest.approx(1.0, abs=0.02)
        assert 0.0 <= entry["best_saving"] < 0.003
        assert entry["ratio"] == pytest.approx(1.0, abs=0.01)


def test_constant_tensor_has_no_statistics_and_zero_error():
    report = tensor_report(np.full((3, 4), 0.5), bits=(2,))
    assert report["std"] == 0.0 and report["skewness"] is None
    assert report["loss"][0]["mse"] == 0.0


def test_non_finite_weights_name_the_tensor():
    tensor = Tensor("conv.weight", np.array([[1.0, np.nan], [0.0, 2.0]]), "weight")
    with pytest.raises(ValueError, match="tensor conv.weight: .*non-finite"):
        inspect_tensors([tensor], bits=(2,))


# --- the planner ---------------------------------------------------------------------------

def _brute_force(options, capacity):
    best = None
    for choice in itertools.product(*(range(len(o)) for o in options)):
        cost = sum(options[i][c][0] for i, c in enumerate(choice))
        if cost <= capacity:
            error = sum(options[i][c][1] for i, c in enumerate(choice))
            if best is None or error < best:
                best = error
    return best


@pytest.mark.parametrize("seed", range(60))
def test_solve_finds_the_brute_force_optimum_and_respects_the_budget(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(1, 6))
    widths = sorted(rng.choice(np.arange(1, 9), size=int(rng.integers(1, 5)), replace=False))
    options = []
    for _ in range(layers):
        n = int(rng.integers(1, 60))
        if seed % 2:  # losses decreasing in k, as real ones are, but not convex
            errors = np.sort(rng.exponential(1.0, len(widths)))[::-1] * n
        else:  # arbitrary: the solver must not assume anything
            errors = rng.exponential(1.0, len(widths)) * n
        options.append([(n * int(k), float(e)) for k, e in zip(widths, errors, strict=True)])
    least = sum(min(c for c, _ in o) for o in options)
    most = sum(max(c for c, _ in o) for o in options)
    capacity = int(rng.integers(least, most + 1))
    solution = solve(options, capacity)
    cost = sum(options[i][c][0] for i, c in enumerate(solution.choices))
    error = sum(options[i][c][1] for i, c in enumerate(solution.choices))
    assert cost == solution.cost <= capacity
    assert error == pytest.approx(solution.error, rel=1e-12)
    assert solution.error == pytest.approx(_brute_force(options, capacity), rel=1e-12)
    with pytest.raises(ValueError, match="cheapest"):
        solve(options, least - 1)


def _greedy(options, capacity):
    """Marginal-gain allocation: repeatedly take the cheapest-per-gain one-step upgrade."""
    choice = [0] * len(options)
    cost = sum(o[0][0] for o in options)
    while True:
        steps = [((o[c][1] - o[c + 1][1]) / (o[c + 1][0] - o[c][0]), i)
                 for i, (o, c) in enumerate(zip(options, choice, strict=True))
                 if c + 1 < len(o) and cost + o[c + 1][0] - o[c][0] <= capacity]
        if not steps:
            return sum(o[c][1] for o, c in zip(options, choice, strict=True))
        _, i = max(steps)
        cost += options[i][choice[i] + 1][0] - options[i][choice[i]][0]
        choice[i] += 1


def test_greedy_marginal_gains_miss_the_optimum_the_solver_finds():
    # two layers of 10 weights at 1, 2 or 3 bits, 40 bits in all; layer b's loss is not
    # convex in k (1 → 2 bits gains little, 2 → 3 a lot), so greedy upgrades a first
    options = [[(10, 10.0), (20, 6.0), (30, 5.5)], [(10, 10.0), (20, 9.0), (30, 1.0)]]
    assert _greedy(options, 40) == 15.0
    solution = solve(options, 40)
    assert solution.choices == (0, 2) and solution.error == 11.0 == _brute_force(options, 40)


def test_capacity_is_the_exact_floor_of_budget_times_weights():
    assert capacity_bits(10, "2.5") == 25
    assert capacity_bits(30, "0.1") == 3  # 0.1 as a float would be 3.0000000000000004
    assert capacity_bits(7, "2.5") == 17
    assert capacity_bits(123, size=10) == 80
    with pytest.raises(ValueError, match="--budget"):
        capacity_bits(10, "two")


def test_plan_bits_honours_pins_and_compares_with_uniform_widths():
    rng = np.random.default_rng(3)
    tensors = [Tensor(f"l{i}.weight", rng.laplace(0, 1, (n, 3)), "weight")
               for i, n in enumerate((40, 20, 10))]
    rows = inspect_tensors(tensors, bits=range(1, 5), best_step=False, per_channel=False)
    total = sum(r["n"] for r in rows)
    result = plan_bits(rows, capacity_bits(total, "2.5"), range(1, 5), pins={"l2": 4})
    assert result["layers"]["l2"] == 4
    assert result["bits_total"] <= 2.5 * total
    assert set(result["layers"]) == {"l0", "l1", "l2"}
    options = []
    for row in rows:
        widths = [4] if row["layer"] == "l2" else range(1, 5)
        options.append([(row["n"] * k, row["n"] * row["loss"][k - 1]["mse"]) for k in widths])
    assert result["error"] == pytest.approx(_brute_force(options, int(2.5 * total)), rel=1e-12)
    uniform2 = next(u for u in result["uniform"] if u["bits"] == 2)
    assert result["error"] <= uniform2["error"]
    with pytest.raises(ValueError, match="unknown layers"):
        plan_bits(rows, 200, range(1, 5), pins={"nope": 2})


def test_safetensors_bfloat16_written_by_torch_reads_as_float32(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    weight = torch.randn(4, 3, dtype=torch.float32).to(torch.bfloat16)
    safetensors_torch.save_file({"fc.weight": weight}, str(tmp_path / "bf.safetensors"))
    (tensor,) = read_model(tmp_path / "bf.safetensors").tensors
    assert tensor.array.dtype == np.float32
    np.testing.assert_array_equal(tensor.array, weight.float().numpy())
