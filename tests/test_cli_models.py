"""The model commands: inspect, plan, quantize MODEL, dequantize and train --bits-plan."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref.cli import main


def _model() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    return {
        "conv1.weight": rng.normal(0, 0.2, (6, 1, 5, 5)).astype(np.float32),
        "conv1.bias": rng.normal(0, 0.1, 6).astype(np.float32),
        "conv2.weight": rng.laplace(0, 0.05, (16, 6, 5, 5)).astype(np.float32),
        "bn.running_mean": np.zeros(16, np.float32),
        "fc1.weight": rng.uniform(-0.1, 0.1, (32, 64)).astype(np.float32),
        "fc2.weight": rng.normal(0, 0.1, (10, 32)).astype(np.float32),
        "fc2.bias": np.zeros(10, np.float32),
    }


WEIGHTS = ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]


@pytest.fixture
def safetensors_model(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "m.safetensors"
    safetensors_numpy.save_file(_model(), str(path))
    return path


@pytest.fixture(params=["npz", "safetensors", "pt", "onnx"])
def any_model(request, tmp_path):
    """The same tensors in each of the four formats (weights by name or by ONNX node)."""
    state = _model()
    path = tmp_path / f"m.{request.param}"
    if request.param == "npz":
        np.savez(path, **state)
    elif request.param == "safetensors":
        pytest.importorskip("safetensors.numpy").save_file(state, str(path))
    elif request.param == "pt":
        torch = pytest.importorskip("torch")
        torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}}, path)
    else:
        onnx = pytest.importorskip("onnx")
        from onnx import helper, numpy_helper

        nodes = [helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["a"]),
                 helper.make_node("Conv", ["a", "conv2.weight"], ["b"]),
                 helper.make_node("BatchNormalization", ["b", "s", "o", "bn.running_mean", "v"],
                                  ["c"]),
                 helper.make_node("Flatten", ["c"], ["d"]),
                 helper.make_node("Gemm", ["d", "fc1.weight"], ["e"], transB=1),
                 helper.make_node("Gemm", ["e", "fc2.weight", "fc2.bias"], ["y"], transB=1)]
        extra = {"s": np.ones(16, np.float32), "o": np.zeros(16, np.float32),
                 "v": np.ones(16, np.float32)}
        graph = helper.make_graph(nodes, "m", [], [],
                                  [numpy_helper.from_array(v, k)
                                   for k, v in {**state, **extra}.items()])
        onnx.save(helper.make_model(graph), str(path))
    return path


def test_inspect_every_format_writes_the_documented_json(any_model, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["inspect", str(any_model), "--bits", "1-3", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    for name in WEIGHTS:
        assert name in printed
    document = json.loads(out.read_text())
    assert document["format"] == "ul2q-ref/inspect-v1" and document["bits"] == [1, 2, 3]
    layers = {row["name"]: row for row in document["layers"]}
    assert sorted(layers) == sorted(WEIGHTS)
    row = layers["conv2.weight"]
    weights = _model()["conv2.weight"].astype(np.float64)
    assert row["shape"] == [16, 6, 5, 5] and row["n"] == weights.size
    assert row["std"] == pytest.approx(weights.std(), rel=1e-12)
    for entry in row["loss"]:
        k = entry["bits"]
        restored = uq.quantize(weights, k, backend="reference").dequantize(np.float64)
        assert entry["actual"] == pytest.approx(np.mean((weights - restored) ** 2)
                                                / weights.var(), rel=1e-9)
        assert {"predicted", "actual_per_channel", "best_lambda", "best_saving"} <= set(entry)


def test_inspect_figures(safetensors_model, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "figures"
    assert main(["inspect", str(safetensors_model), "--bits", "2", "--figures", str(folder),
                 "--include", "fc*.weight", "--quiet"]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["fc1.weight.png", "fc2.weight.png", "summary.png"]
    for path in folder.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_quantize_dequantize_round_trip(safetensors_model, tmp_path, capsys):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    plan = tmp_path / "plan.json"
    assert main(["plan", str(safetensors_model), "--budget", "2.5", "--pin", "fc2=8",
                 "-o", str(plan), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "uniform widths" in printed
    document = json.loads(plan.read_text())
    layers = document["layers"]
    assert sorted(layers) == ["conv1", "conv2", "fc1", "fc2"] and layers["fc2"] == 8
    state = _model()
    sizes = {name[: -len(".weight")]: state[name].size for name in WEIGHTS}
    assert sum(sizes[n] * k for n, k in layers.items()) <= 2.5 * sum(sizes.values())
    assert document["bits_total"] == sum(sizes[n] * k for n, k in layers.items())

    quantized = tmp_path / "q.npz"
    assert main(["quantize", str(safetensors_model), "--plan", str(plan), "-o",
                 str(quantized)]) == 0
    printed = capsys.readouterr().out
    with np.load(quantized, allow_pickle=False) as data:
        assert str(data["format"]) == "ul2q-ref/quantized-model-v1"
        for name in WEIGHTS:
            assert int(data[f"quantized/{name}/bits"]) == layers[name[:-7]]
        np.testing.assert_array_equal(data["float/conv1.bias"], state["conv1.bias"])
    for name in WEIGHTS:
        expected = uq.quantize(state[name], layers[name[:-7]])
        error = state[name].astype(np.float64) - expected.dequantize(np.float64)
        assert f"{np.mean(error ** 2):.6e}" in printed

    restored = tmp_path / "restored.safetensors"
    assert main(["dequantize", str(quantized), "-o", str(restored)]) == 0
    back = safetensors_numpy.load_file(str(restored))
    assert sorted(back) == sorted(state)
    for name in WEIGHTS:
        expected = uq.quantize(state[name], layers[name[:-7]]).dequantize()
        np.testing.assert_array_equal(back[name], expected)
        assert back[name].dtype == np.float32
    np.testing.assert_array_equal(back["fc2.bias"], state["fc2.bias"])
    assert main(["dequantize", str(quantized), "-o", str(tmp_path / "r.npz")]) == 0
    with np.load(tmp_path / "r.npz") as data:
        np.testing.assert_array_equal(data["fc1.weight"], back["fc1.weight"])


def test_quantize_model_per_channel_with_one_width(any_model, tmp_path, capsys):
    out = tmp_path / "q.npz"
    assert main(["quantize", str(any_model), "--bits", "3", "--axis", "0", "-o", str(out)]) == 0
    state = _model()
    with np.load(out, allow_pickle=False) as data:
        for name in WEIGHTS:
            expected = uq.quantize(state[name], 3, axis=0)
            np.testing.assert_array_equal(data[f"quantized/{name}/codes"], expected.codes)
            np.testing.assert_array_equal(data[f"quantized/{name}/alpha"], expected.alpha)


def test_plan_is_the_exact_optimum_of_its_error_model(safetensors_model, tmp_path):
    import itertools

    plan = tmp_path / "plan.json"
    assert main(["plan", str(safetensors_model), "--size", "1300", "--bits", "1-4",
                 "--gaussian", "-o", str(plan), "--quiet"]) == 0
    layers = json.loads(plan.read_text())["layers"]
    state = _model()
    names = [n[:-7] for n in WEIGHTS]
    n = [state[w].size for w in WEIGHTS]
    var = [state[w].astype(np.float64).var() for w in WEIGHTS]
    loss = {k: uq.expected_loss(uq.optimal_lambda(k), k) for k in range(1, 5)}
    best = min(sum(n[i] * var[i] * loss[k] for i, k in enumerate(c))
               for c in itertools.product(range(1, 5), repeat=4)
               if sum(n[i] * k for i, k in enumerate(c)) <= 8 * 1300)
    got = sum(n[i] * var[i] * loss[layers[name]] for i, name in enumerate(names))
    assert got == pytest.approx(best, rel=1e-12)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ul2q_ref", *args], capture_output=True,
                          text=True)


def test_a_bad_file_is_one_line_on_stderr_of_the_real_command(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    result = _run("inspect", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"ul2q-ref inspect: error: {path}: not a readable .npz archive "
                             "(File is not a zip file)\n")


@pytest.mark.parametrize("command", ["inspect", "plan", "quantize", "dequantize"])
@pytest.mark.parametrize(("suffix", "content", "message"), [
    (".npz", b"not a zip", "not a readable .npz archive"),
    (".npz", b"PK\x03\x04 truncated zip", "not a readable .npz archive"),
    (".safetensors", b"\xff" * 8 + b"{}", "not a safetensors file"),
    (".onnx", b"\x08\x07\xff\xff\xff\xff", "not a readable ONNX model"),
])
def test_bad_files_are_one_line_errors(tmp_path, capsys, command, suffix, content, message):
    if suffix == ".onnx":
        pytest.importorskip("onnx")
    if command == "dequantize" and suffix != ".npz":
        message = "expected a quantised .npz file"
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    extra = {"inspect": [], "plan": ["--budget", "2"], "quantize": ["--bits", "2", "-o",
             str(tmp_path / "o.npz")], "dequantize": ["-o", str(tmp_path / "o.npz")]}[command]
    assert main([command, str(path), *extra, *(["--quiet"] if command in ("inspect", "plan")
                                                else [])]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ul2q-ref {command}: error:")
    assert message in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "o.npz").exists()


def test_usage_errors(safetensors_model, tmp_path, capsys):
    out = str(tmp_path / "o.npz")
    assert main(["quantize", str(safetensors_model), "-o", out]) == 2
    assert "exactly one of --bits" in capsys.readouterr().err
    assert main(["plan", str(safetensors_model), "--budget", "0.5", "--quiet"]) == 2
    assert "below the" in capsys.readouterr().err
    assert main(["plan", str(safetensors_model), "--budget", "2", "--pin", "nope=2",
                 "--quiet"]) == 2
    assert "unknown layers" in capsys.readouterr().err
    bad_plan = tmp_path / "p.json"
    bad_plan.write_text('{"layers": {"conv1": 0}}')
    assert main(["quantize", str(safetensors_model), "--plan", str(bad_plan), "-o", out]) == 2
    assert "bits must be an integer 1 to 16" in capsys.readouterr().err
    bad_plan.write_text('{"layers": {"conv1": 2}}')
    assert main(["quantize", str(safetensors_model), "--plan", str(bad_plan), "-o", out]) == 2
    assert "names no width for layer conv2" in capsys.readouterr().err
    np.save(tmp_path / "w.npy", np.ones((2, 2)))
    assert main(["quantize", str(tmp_path / "w.npy"), "--bits", "2", "--include", "x",
                 "-o", out]) == 2
    assert "--include and --exclude select tensors of a model file" in capsys.readouterr().err
    np.savez(tmp_path / "plain.npz", w=np.ones((2, 2)))
    assert main(["dequantize", str(tmp_path / "plain.npz"), "-o", out]) == 2
    assert "holds no quantised tensors" in capsys.readouterr().err


def test_train_bits_plan_maps_the_plan_onto_layer_widths(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"layers": {"conv1.weight": 4, "conv2": 2, "fc1": 2,
                                           "fc2": 8}}))
    run = tmp_path / "run"
    assert main(["train", "--scheme", "ul2q", "--bits-plan", str(plan), "--epochs", "1",
                 "--train-limit", "64", "--test-limit", "64", "--out", str(run),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "conv1 ul2q/4" in printed and "conv2 ul2q/2" in printed and "fc2 ul2q/8" in printed
    # the trainer's own checkpoint is a model file too: plan it and read the plan back
    replan = tmp_path / "replan.json"
    assert main(["plan", str(run / "checkpoint.npz"), "--budget", "3", "--bits", "2-4",
                 "-o", str(replan), "--quiet"]) == 0
    layers = json.loads(replan.read_text())["layers"]
    assert sorted(layers) == ["conv1", "conv2", "fc1", "fc2"]
    assert set(layers.values()) <= {2, 3, 4}
    assert main(["train", "--bits-plan", str(plan), "--out", str(tmp_path / "r2"),
                 "--quiet"]) == 2
    assert "--bits-plan needs a scheme with bit widths" in capsys.readouterr().err


def test_evaluate_names_a_quantised_model_file_for_what_it_is(tmp_path):
    """A file of `quantize MODEL` has codes but no architecture: evaluate says which commands
    read it instead of calling it "not a training checkpoint"."""
    model = tmp_path / "m.npz"
    np.savez(model, **{"conv1.weight": np.random.default_rng(0).normal(size=(4, 1, 3, 3))})
    quantized = tmp_path / "q.npz"
    assert _run("quantize", str(model), "--bits", "2", "-o", str(quantized)).returncode == 0
    result = _run("evaluate", str(quantized))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"ul2q-ref evaluate: error: {quantized}: a quantised model file of "
                             "'ul2q-ref quantize' (codes, no architecture), which 'dequantize' "
                             "and 'inspect' read; evaluate reads a training checkpoint or an "
                             "integer model of 'ul2q-ref export'\n")
