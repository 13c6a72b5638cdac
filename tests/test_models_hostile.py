"""Hostile model files, plans and options: one line naming the file (and the tensor), in
bounded time and memory, never an internal error; and memory that does not grow with the
number of tensors (the commands read one tensor at a time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ul2q_ref._json import JSONLimitError, loads_bounded, nesting_depth
from ul2q_ref.cli import main
from ul2q_ref.weights import ModelFileError, read_model, read_plan
from ul2q_ref.weights.plan import MAX_CAPACITY, capacity_bits, solve

ROOT = Path(__file__).resolve().parents[1]


def _error(arguments, capsys) -> str:
    """Run the CLI, expect exit 2 and one line on stderr (not an internal error)."""
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err[:500]
    assert "internal error" not in err and "Traceback" not in err
    return err


def _model(folder: Path, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "m.npz"
    np.savez(path, **{"conv1.weight": rng.normal(0, 0.1, (4, 3, 3, 3)),
                      "conv2.weight": rng.normal(0, 0.1, (8, 4, 3, 3)),
                      "fc.weight": rng.normal(0, 0.1, (10, 8))}, **extra)
    return path


# --------------------------------------------------------------------------- JSON

def test_nesting_depth_ignores_brackets_inside_strings():
    assert nesting_depth(b'{"a": [[1], {"b": "[[[[{{{"}]}') == 3
    assert nesting_depth(b'"\\"[["') == 0  # an escaped quote does not end the string
    assert nesting_depth(b"") == 0


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 100_000 + "]" * 100_000,
                                  '{"a":' * 100_000])
def test_deep_json_is_refused_before_parsing(text):
    with pytest.raises(JSONLimitError, match="nested 100000 deep, more than the limit of 64"):
        loads_bounded(text, "doc.json")


def test_long_json_and_huge_numbers_are_one_line_errors():
    with pytest.raises(JSONLimitError, match="longer than the limit of 10"):
        loads_bounded(b"[" + b"1," * 10 + b"1]", "doc.json", max_bytes=10)
    with pytest.raises(JSONLimitError, match="doc.json: not valid JSON"):
        loads_bounded("1" * 5000, "doc.json")  # Python refuses 5,000-digit integers


def _deep_plan(folder: Path) -> Path:
    path = folder / "deep.json"
    path.write_text('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return path


def test_a_deep_plan_is_one_line_everywhere_plans_are_read(tmp_path, capsys):
    plan = _deep_plan(tmp_path)
    with pytest.raises(ValueError, match="nested 100001 deep"):
        read_plan(plan)
    model = _model(tmp_path)
    err = _error(["quantize", str(model), "--plan", str(plan), "-o", str(tmp_path / "q.npz")],
                 capsys)
    assert str(plan) in err and "nested 100001 deep" in err
    err = _error(["train", "--scheme", "ul2q", "--bits-plan", str(plan), "--out",
                  str(tmp_path / "run"), "--quiet"], capsys)
    assert str(plan) in err and "nested 100001 deep" in err


def test_a_deep_safetensors_header_is_one_line(tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    header = b"[" * 100_000
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    err = _error(["inspect", str(path)], capsys)
    assert str(path) in err and "nested 100000 deep" in err


def test_a_plan_naming_300000_unknown_layers_gives_a_short_line(tmp_path, capsys):
    model = _model(tmp_path)
    layers = {"conv1": 2, "conv2": 2, "fc": 2, **{f"ghost{i}": 2 for i in range(300_000)}}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"layers": layers}))
    err = _error(["quantize", str(model), "--plan", str(plan), "-o", str(tmp_path / "q.npz")],
                 capsys)
    assert "ghost0" in err and "300000 in all" in err and len(err) < 500


def test_a_plan_missing_many_layers_names_a_few_and_the_count(tmp_path, capsys):
    arrays = {f"l{i}.weight": np.full((2, 2), float(i)) + np.eye(2) for i in range(50)}
    np.savez(tmp_path / "wide.npz", **arrays)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"layers": {"l0": 2}}))
    err = _error(["quantize", str(tmp_path / "wide.npz"), "--plan", str(plan), "-o",
                  str(tmp_path / "q.npz")], capsys)
    assert "l1, l2" in err and "and 41 more" in err and "(49 selected layer(s) in all)" in err


# --------------------------------------------------------------------------- budgets

@pytest.mark.parametrize("budget", ["1e308", "1e40", "1e999999999", "-1e999999999"])
def test_absurd_budgets_are_one_line_errors(tmp_path, capsys, budget):
    err = _error(["plan", str(_model(tmp_path)), f"--budget={budget}", "--quiet"], capsys)
    assert "--budget" in err


def test_a_budget_whose_bits_reach_2_to_the_63_is_refused():
    assert capacity_bits(2**60, "7") == 7 * 2**60  # below 2^63: exact
    with pytest.raises(ValueError, match="beyond the 2\\^63"):
        capacity_bits(2**60, "8")
    with pytest.raises(ValueError, match="beyond the 2\\^63"):
        capacity_bits(10, size=2**61)


def test_solve_never_overflows_with_the_largest_capacity():
    """A capacity near 2^63 is clamped to the dearest plan, so int64 sums cannot wrap."""
    options = [[(1, 5.0), (4, 1.0)], [(2, 3.0), (6, 0.5)]]
    assert solve(options, MAX_CAPACITY).choices == (1, 1)
    with pytest.raises(ValueError, match="beyond the 2\\^63"):
        solve([[(2**62, 1.0)], [(2**62, 1.0)]], MAX_CAPACITY)


def test_plan_checks_pins_and_budget_before_measuring_any_layer(tmp_path, capsys,
                                                                  monkeypatch):
    import ul2q_ref.cli._models as models

    def refuse(*args, **options):
        raise AssertionError("a layer was measured before the options were checked")

    monkeypatch.setattr(models, "inspect_tensors", refuse)
    model = str(_model(tmp_path))
    err = _error(["plan", model, "--budget", "2", "--pin", "nope=2", "--quiet"], capsys)
    assert "--pin names unknown layers: nope" in err
    err = _error(["plan", model, "--budget", "1e30", "--quiet"], capsys)
    assert "beyond the 2^63" in err
    err = _error(["plan", model, "--budget", "1e308", "--quiet"], capsys)
    assert "--budget 1e308 is out of range" in err
    err = _error(["plan", model, "--budget", "two", "--quiet"], capsys)
    assert "--budget must be a number" in err


# --------------------------------------------------------------------------- tensors

def test_a_nan_weight_is_named_by_file_and_tensor_in_every_command(tmp_path, capsys):
    rng = np.random.default_rng(1)
    conv2 = rng.normal(0, 0.1, (8, 4, 3, 3))
    conv2[3, 1, 2, 0] = np.nan
    path = tmp_path / "m.npz"
    np.savez(path, **{"conv1.weight": rng.normal(0, 0.1, (4, 3, 3, 3)),
                      "conv2.weight": conv2})
    for arguments in (["quantize", str(path), "--bits", "2", "-o", str(tmp_path / "q.npz")],
                      ["inspect", str(path), "--quiet"],
                      ["plan", str(path), "--budget", "2", "--quiet"]):
        err = _error(arguments, capsys)
        assert str(path) in err and "conv2.weight" in err and "non-finite" in err, err
    assert not (tmp_path / "q.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


torch = pytest.importorskip("torch")


@pytest.mark.parametrize(("make", "message"), [
    (lambda: torch.empty(3, 3, device="meta"), "is a meta tensor"),
    (lambda: torch.eye(3).to_sparse(), "has the sparse_coo layout"),
    (lambda: torch.quantize_per_tensor(torch.randn(3, 3), 0.1, 0, torch.qint8),
     "is a quantised PyTorch tensor (qint8)"),
    (lambda: torch.zeros(1).expand(2**28), "expands 4 bytes of storage to 1073741824 bytes"),
])
def test_unreadable_torch_tensors_are_named(tmp_path, capsys, make, message):
    path = tmp_path / "sd.pt"
    with pytest.warns() if "quantised" in message else _no_warning():
        torch.save({"conv.weight": torch.randn(2, 2), "odd.weight": make()}, path)
    assert path.stat().st_size < 4096
    err = _error(["inspect", str(path), "--quiet"], capsys)
    assert f"{path}: tensor odd.weight: {message}" in err


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_zip_inflating_pytorch_file_is_refused_before_torch_reads_it(tmp_path, capsys):
    plain, bomb = tmp_path / "plain.pt", tmp_path / "bomb.pt"
    torch.save({"w.weight": torch.zeros(1024, 2048)}, plain)  # 8 MiB of zeros
    with zipfile.ZipFile(plain) as source, \
            zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    assert bomb.stat().st_size < 64 << 10
    err = _error(["inspect", str(bomb), "--quiet"], capsys)
    assert str(bomb) in err and "likely zip bomb" in err


def test_a_zip_inflating_npz_member_is_refused(tmp_path, capsys):
    path = tmp_path / "m.npz"
    np.savez_compressed(path, **{"w.weight": np.zeros((2048, 1024))})  # 16 MiB, ~16 KiB
    err = _error(["inspect", str(path), "--quiet"], capsys)
    assert str(path) in err and "w.weight.npy" in err and "likely zip bomb" in err


def test_a_safetensors_header_that_lies_about_a_size_is_named(tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    header = json.dumps({"w.weight": {"dtype": "F32", "shape": [1000, 1000],
                                      "data_offsets": [0, 16]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    err = _error(["inspect", str(path), "--quiet"], capsys)
    assert f"{path}: tensor w.weight: F32 [1000, 1000] needs 4000000 bytes" in err


# --------------------------------------------------------------------------- atomic writes

def test_a_failed_json_write_keeps_the_old_file(tmp_path, capsys, monkeypatch):
    import ul2q_ref._atomic as atomic

    model = _model(tmp_path)
    old = tmp_path / "r.json"
    old.write_text('{"old": true}')

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    err = _error(["inspect", str(model), "--bits", "2", "--json", str(old), "--force",
                  "--quiet"], capsys)
    assert str(old) in err and "No space left" in err
    assert old.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "r.json"]


# --------------------------------------------------------------------------- memory

PEAK = """
import os, sys
def peak_kib():  # VmHWM: own peak (ru_maxrss counts the parent's)
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
from ul2q_ref.cli import main
status = main(sys.argv[1:])
import resource
print(peak_kib())
sys.exit(status)
"""


def _peak_kib(arguments: list[str]) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK, *arguments], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip().splitlines()[-1])


def _square_model(path: Path, tensors: int) -> None:
    """`tensors` float32 weights of 1024 × 1024 (4 MiB each) in a safetensors file."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(2)
    save_file({f"l{i}.weight": rng.normal(0, 1, (1024, 1024)).astype(np.float32)
               for i in range(tensors)}, str(path))


@pytest.mark.slow
def test_memory_does_not_grow_with_the_number_of_tensors(tmp_path):
    """The peak of plan, quantize and dequantize on 12 tensors is that of 2 tensors (one
    tensor at a time), not 6 times it: holding the model would add ≥ 40 MiB of float32
    weights (and ≥ 80 MiB as float64)."""
    small, large = tmp_path / "small.safetensors", tmp_path / "large.safetensors"
    _square_model(small, 2)
    _square_model(large, 12)
    for name, model in (("small", small), ("large", large)):
        quantized = tmp_path / f"{name}.npz"
        peaks = [
            _peak_kib(["plan", str(model), "--budget", "2", "--bits", "2", "--quiet",
                       "--jobs", "1"]),
            _peak_kib(["quantize", str(model), "--bits", "2", "-o", str(quantized)]),
            _peak_kib(["dequantize", str(quantized), "-o", str(tmp_path / f"{name}.back.npz")]),
        ]
        if name == "small":
            small_peaks = peaks
    growth = [(big - little) / 1024 for big, little in zip(peaks, small_peaks, strict=True)]
    assert max(growth) < 16, growth  # MiB; ten more 4 MiB tensors held would be ≥ 40


def test_the_lazy_reader_does_not_read_data_when_indexing(tmp_path, monkeypatch):
    """read_model reads headers only; each load reads one tensor."""
    import ul2q_ref.weights.readers as readers

    path = tmp_path / "m.safetensors"
    _square_model(path, 3)
    reads = []
    real = readers._fill
    monkeypatch.setattr(readers, "_fill",
                        lambda handle, view, *rest: reads.append(len(view))
                        or real(handle, view, *rest))
    model = read_model(path)
    assert reads == []
    model.tensors[1].load()
    assert sum(reads) == 1024 * 1024 * 4


def test_model_file_errors_are_model_file_errors(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array(["a", "b"]))
    with pytest.raises(ModelFileError, match=f"{path}: holds <U1 values"):
        read_model(path)


def test_a_huge_format_string_is_not_read(tmp_path, capsys):
    path = tmp_path / "m.npz"
    np.savez(path, format=np.array("x" * 5000), w=np.zeros((2, 2)))
    err = _error(["inspect", str(path), "--quiet"], capsys)
    assert f"{path}: member 'format' is a string of 20000 bytes" in err
