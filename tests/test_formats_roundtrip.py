"""Every writer of quantised files × every reader: what is written is what is read.

Writers: ``ul2q-ref quantize w.npy`` (float16/32/64, per tensor and per channel),
:func:`ul2q_ref.io.save_quantized` of every profile (exact, paper, caffe; caffe has no
per-channel mode), and ``ul2q-ref quantize MODEL`` (a model holding float16, float32 and
float64 weights, per tensor and per channel). Readers: :func:`ul2q_ref.io.load_quantized`
(single tensors), :func:`ul2q_ref.weights.read_model` (what inspect and dequantize use),
``ul2q-ref inspect``, and ``ul2q-ref dequantize`` to ``.npz`` and to ``.safetensors`` (read
back with the safetensors package, a second implementation).

The oracle is independent of the readers: the file's arrays through ``numpy.load`` and the
code book's formula ŵ = α(q − ½) + β evaluated here in float64 and rounded once to the
stored dtype. The caffe profile decodes with Caffe's float32 arithmetic instead, so its
oracle is the result object that was written (its own decoder), plus the formula to within
float32 rounding. Then the files that must be refused: tampered code books and members,
each with one line naming the file and the member, and the modes the umask gives.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref.cli import main
from ul2q_ref.io import FileFormatError, load_quantized, quantized_arrays, save_quantized
from ul2q_ref.weights import ModelFileError, read_model

DTYPES = ("float16", "float32", "float64")
AXES = (None, 0)
PROFILES = ("exact", "paper", "caffe")
BITS = 3


def _weights(dtype: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.1, 0.5, (6, 5)).astype(dtype)


def _formula(arrays, dtype) -> np.ndarray:
    """ŵ = α(q − ½) + β from the raw arrays, in float64, rounded once to `dtype`."""
    codes = arrays["codes"].astype(np.float64)
    alpha, beta = arrays["alpha"].astype(np.float64), arrays["beta"].astype(np.float64)
    if "axis" in arrays:
        shape = [1] * codes.ndim
        shape[int(arrays["axis"])] = -1
        alpha, beta = alpha.reshape(shape), beta.reshape(shape)
    return (alpha * (codes - float(arrays["zero_point"])) + beta).astype(dtype)


# --------------------------------------------------------------------------- writers

def _write_cli_tensor(folder: Path, dtype: str, axis: int | None, profile: str):
    source = folder / "w.npy"
    np.save(source, _weights(dtype))
    target = folder / "q.npz"
    arguments = ["quantize", str(source), "--bits", str(BITS), "-o", str(target)]
    assert main(arguments + ([] if axis is None else ["--axis", str(axis)])) == 0
    return target, None


def _write_library_tensor(folder: Path, dtype: str, axis: int | None, profile: str):
    result = uq.quantize(_weights(dtype), BITS, axis=axis, profile=profile)
    target = folder / "q.npz"
    save_quantized(target, result)
    return target, result


TENSOR_WRITERS = [("cli", dtype, axis, "exact") for dtype in DTYPES for axis in AXES] + [
    ("library", dtype, axis, profile) for profile in PROFILES for dtype in DTYPES
    for axis in AXES if not (profile == "caffe" and axis is not None)]
TENSOR_READERS = ("load_quantized", "read_model", "inspect", "dequantize.npz",
                  "dequantize.safetensors")


def _read(reader: str, path: Path, folder: Path, name: str) -> np.ndarray | dict:
    if reader == "load_quantized":
        return load_quantized(path).dequantize()
    if reader == "read_model":
        return {t.name: t.load() for t in read_model(path).tensors}[name]
    if reader == "inspect":
        report = folder / "r.json"
        assert main(["inspect", str(path), "--bits", "2", "--json", str(report), "--quiet",
                     "--force"]) == 0
        return {row["name"]: row for row in json.loads(report.read_text())["layers"]}[name]
    suffix = reader.split(".")[1]
    out = folder / f"back.{suffix}"
    assert main(["dequantize", str(path), "-o", str(out), "--force"]) == 0
    if suffix == "npz":
        with np.load(out, allow_pickle=False) as back:
            return back[name]
    from safetensors.numpy import load_file

    return load_file(str(out))[name]


def _check(got, expected: np.ndarray) -> None:
    if isinstance(got, dict):  # an inspect row: the statistics of the decoded tensor
        values = expected.astype(np.float64)
        assert got["n"] == values.size and got["dtype"] == str(expected.dtype)
        assert got["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-15)
        assert got["std"] == pytest.approx(values.std(), rel=1e-12)
        return
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("reader", TENSOR_READERS)
@pytest.mark.parametrize(("writer", "dtype", "axis", "profile"), TENSOR_WRITERS)
def test_a_quantised_tensor_reads_back_as_written(tmp_path, capsys, writer, dtype, axis,
                                                  profile, reader):
    write = _write_cli_tensor if writer == "cli" else _write_library_tensor
    path, result = write(tmp_path, dtype, axis, profile)
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    assert str(arrays["format"]) == "ul2q-ref/quantized-v2"
    assert str(arrays["dtype"]) == np.dtype(dtype).str
    if profile == "caffe":
        expected = result.dequantize()
        np.testing.assert_allclose(expected, _formula(arrays, dtype), rtol=2e-3 if
                                   dtype == "float16" else 1e-6, atol=1e-6)
    else:
        expected = _formula(arrays, dtype)
        if result is not None:
            np.testing.assert_array_equal(result.dequantize(), expected)
    got = _read(reader, path, tmp_path, "q")
    _check(got, expected)
    capsys.readouterr()


MODEL_READERS = ("read_model", "inspect", "dequantize.npz", "dequantize.safetensors")


@pytest.fixture
def mixed_model(tmp_path):
    """A safetensors model with a float16, a float32 and a float64 weight, and a bias."""
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a.weight": _weights("float16", 1), "b.weight": _weights("float32", 2),
               "c.weight": _weights("float64", 3), "c.bias": np.arange(6, dtype=np.int32)},
              str(path))
    return path


@pytest.mark.parametrize("reader", MODEL_READERS)
@pytest.mark.parametrize("axis", AXES)
def test_a_quantised_model_reads_back_as_written(tmp_path, capsys, mixed_model, axis, reader):
    path = tmp_path / "qm.npz"
    arguments = ["quantize", str(mixed_model), "--bits", str(BITS), "-o", str(path)]
    assert main(arguments + ([] if axis is None else ["--axis", "0"])) == 0
    with np.load(path, allow_pickle=False) as stored:
        assert str(stored["format"]) == "ul2q-ref/quantized-model-v1"
        groups = {name: {key.rsplit("/", 1)[1]: stored[key] for key in stored.files
                         if key.startswith(f"quantized/{name}/")}
                  for name in ("a.weight", "b.weight", "c.weight")}
        bias = stored["float/c.bias"]
    np.testing.assert_array_equal(bias, np.arange(6, dtype=np.int32))
    for name, dtype in (("a.weight", "float16"), ("b.weight", "float32"),
                        ("c.weight", "float64")):
        assert ("axis" in groups[name]) == (axis is not None)
        expected = _formula(groups[name], dtype)
        _check(_read(reader, path, tmp_path, name), expected)
    if reader.startswith("dequantize"):
        got = _read(reader, path, tmp_path, "c.bias")
        np.testing.assert_array_equal(got, np.arange(6, dtype=np.int32))
    capsys.readouterr()


# --------------------------------------------------------------------------- refused files

def _tamper(path: Path, **changes) -> None:
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def _caffe_model(folder: Path) -> Path:
    """A quantised model whose one tensor is a caffe-profile result (as a tamperer would
    write it: the model writer itself uses the exact profile)."""
    result = uq.quantize(_weights("float32"), BITS, profile="caffe")
    arrays = {"format": np.array("ul2q-ref/quantized-model-v1"), "source": np.array("x")}
    arrays.update({f"quantized/conv.weight/{k}": v for k, v in quantized_arrays(result).items()})
    path = folder / "qm.npz"
    np.savez(path, **arrays)
    return path


def _one_line_error(arguments, capsys) -> str:
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" not in err
    return err


def test_a_caffe_alpha_of_nan_is_refused_naming_file_and_member(tmp_path, capsys):
    path = _caffe_model(tmp_path)
    _tamper(path, **{"quantized/conv.weight/alpha": np.array(np.nan)})
    err = _one_line_error(["dequantize", str(path), "-o", str(tmp_path / "o.npz")], capsys)
    assert str(path) in err and "quantized/conv.weight" in err and "NaN" in err
    with pytest.raises(ModelFileError, match="alpha is NaN where std is not"):
        read_model(path).tensors[0].load()


def test_a_caffe_nan_channel_that_is_consistent_still_round_trips(tmp_path):
    """NaN α with NaN σ and zero codes is the caffe profile's own mark (negative float32
    variance): save_quantized/load_quantized keep it; a model file refuses its NaN ŵ."""
    result = uq.quantize(_weights("float32"), BITS, profile="caffe")
    arrays = quantized_arrays(result)
    arrays.update(alpha=np.array(np.nan), std=np.array(np.nan),
                  codes=np.zeros_like(arrays["codes"]))
    np.savez(tmp_path / "q.npz", **arrays)
    assert np.isnan(load_quantized(tmp_path / "q.npz").dequantize()).all()
    with pytest.raises(ModelFileError, match="non-finite"):
        read_model(tmp_path / "q.npz").tensors[0].load()


@pytest.mark.parametrize(("member", "value", "message"), [
    ("float/note", np.array("some text"), "member 'float/note' holds <U9 values"),
    ("quantized/conv.weight/dtype", np.array("<i4"), "dtype must name float16"),
    ("quantized/conv.weight/codes", np.full((6, 5), 9, np.int8), "code 9 is outside"),
    ("quantized/conv.weight/beta", np.array(np.inf), "beta must be finite"),
    ("quantized/conv.weight/alpha", np.zeros(10000), "too large for a code-book field"),
    ("quantized/conv.weight/scheme", np.array("mystery"), "unknown scheme"),
])
def test_tampered_members_are_one_line_naming_file_and_member(tmp_path, capsys, member,
                                                              value, message):
    source = tmp_path / "w.npz"
    np.savez(source, **{"conv.weight": _weights("float32")})
    path = tmp_path / "qm.npz"
    assert main(["quantize", str(source), "--bits", str(BITS), "-o", str(path)]) == 0
    capsys.readouterr()
    _tamper(path, **{member: value})
    err = _one_line_error(["dequantize", str(path), "-o", str(tmp_path / "o.safetensors")],
                          capsys)
    assert str(path) in err and member.rsplit("/", 1)[0] in err and message in err
    assert not (tmp_path / "o.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qm.npz", "w.npz"]


def test_a_tampered_single_tensor_is_refused_by_load_quantized(tmp_path):
    path = tmp_path / "q.npz"
    save_quantized(path, uq.quantize(_weights("float16"), BITS))
    _tamper(path, dtype=np.array("<c8"))
    with pytest.raises(FileFormatError, match=f"{path}: dtype must be float16, float32"):
        load_quantized(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(tmp_path, capsys, mixed_model, suffix, umask):
    quantized, back = tmp_path / "q.npz", tmp_path / f"back{suffix}"
    report, plan = tmp_path / "r.json", tmp_path / "p.json"
    previous = os.umask(umask)
    try:
        assert main(["quantize", str(mixed_model), "--bits", "2", "-o", str(quantized)]) == 0
        assert main(["dequantize", str(quantized), "-o", str(back)]) == 0
        assert main(["inspect", str(mixed_model), "--bits", "2", "--json", str(report),
                     "--quiet"]) == 0
        assert main(["plan", str(mixed_model), "--budget", "2", "-o", str(plan),
                     "--quiet"]) == 0
    finally:
        os.umask(previous)
    capsys.readouterr()
    for path in (quantized, back, report, plan):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


def test_tensors_larger_than_a_chunk_decode_bit_for_bit(tmp_path, capsys):
    """Tensors of more than 256k values are decoded a few rows at a time: still equal to
    the formula, per tensor and per channel, along axis 0 and 1."""
    rng = np.random.default_rng(7)
    source = tmp_path / "big.npz"
    np.savez(source, **{"a.weight": rng.normal(0, 1, (301, 1003)).astype(np.float32),
                        "b.weight": rng.laplace(0, 1, (700, 450))})
    for axis in (None, 0):
        path = tmp_path / f"q{axis}.npz"
        arguments = ["quantize", str(source), "--bits", "5", "-o", str(path)]
        assert main(arguments + ([] if axis is None else ["--axis", "0"])) == 0
        back = tmp_path / f"back{axis}.npz"
        assert main(["dequantize", str(path), "-o", str(back)]) == 0
        with np.load(path, allow_pickle=False) as stored, np.load(back) as decoded:
            for name, dtype in (("a.weight", "float32"), ("b.weight", "float64")):
                group = {key.rsplit("/", 1)[1]: stored[key] for key in stored.files
                         if key.startswith(f"quantized/{name}/")}
                np.testing.assert_array_equal(decoded[name], _formula(group, dtype))
    capsys.readouterr()


@pytest.mark.parametrize("scheme", ["binary", "ternary", "fixed_point", "clip", "ul2q"])
def test_an_integer_model_of_every_scheme_reads_back(tmp_path, scheme):
    """The integer-model layout (written by ``ul2q-ref export`` through
    ``io.quantized_arrays``, as here) decodes with each scheme's zero point."""
    from ul2q_ref.nn.export import EXPORT_FORMAT

    weights = _weights("float32", 9)
    from ul2q_ref.api import quantize_with

    result = quantize_with(scheme, weights, {"binary": 1, "ternary": 2}.get(scheme, 4))
    arrays = {"format": np.array(EXPORT_FORMAT), "config": np.array("{}"),
              "float/fc.bias": np.zeros(6, np.float32)}
    arrays.update({f"quantized/fc.weight/{k}": v for k, v in quantized_arrays(result).items()})
    np.savez(tmp_path / "int.npz", **arrays)
    model = read_model(tmp_path / "int.npz")
    assert model.format == "ul2q-ref integer model"
    decoded = {t.name: t.load() for t in model.tensors}
    group = {k.rsplit("/", 1)[1]: v for k, v in arrays.items() if k.startswith("quantized/")}
    np.testing.assert_array_equal(decoded["fc.weight"], _formula(group, "float32"))
    np.testing.assert_array_equal(decoded["fc.bias"], np.zeros(6, np.float32))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_a_zero_dimensional_tensor_survives_quantize_and_dequantize(tmp_path, suffix):
    """A PyTorch state_dict's ``num_batches_tracked`` is a 0-d int64 tensor: quantize keeps
    it and dequantize writes it back 0-d (read with the safetensors package / NumPy)."""
    from safetensors.numpy import load_file, save_file

    source = tmp_path / "m.safetensors"
    save_file({"conv.weight": _weights("float32"),
               "bn.num_batches_tracked": np.array(7, dtype=np.int64)}, str(source))
    quantized = tmp_path / "q.npz"
    assert main(["quantize", str(source), "--bits", "2", "-o", str(quantized)]) == 0
    target = tmp_path / f"float{suffix}"
    assert main(["dequantize", str(quantized), "-o", str(target)]) == 0
    if suffix == ".npz":
        with np.load(target) as arrays:
            back = {name: arrays[name] for name in arrays.files}
    else:
        back = load_file(str(target))
    assert back["bn.num_batches_tracked"].shape == ()
    assert back["bn.num_batches_tracked"].dtype == np.int64
    assert int(back["bn.num_batches_tracked"]) == 7
    assert back["conv.weight"].shape == (6, 5)
