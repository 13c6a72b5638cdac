"""The ``ul2q-ref`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref.cli import main
from ul2q_ref.io import load_quantized


def test_lambdas_table_prints_the_exact_optimum_to_twelve_digits(capsys):
    assert main(["lambdas"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 17
    for line in lines[1:]:
        fields = line.split()
        bits, lam = int(fields[0]), float(fields[1])
        assert lam == pytest.approx(uq.optimal_lambda(bits), rel=1e-12)
        assert float(fields[2]) == pytest.approx(uq.expected_loss(lam, bits), rel=1e-12)
        assert (fields[3] == "-") == (bits > 8)


def test_lambdas_json_and_bit_selection(capsys):
    assert main(["lambdas", "--bits", "1-3,8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["bits"] for row in rows] == [1, 2, 3, 8]
    assert rows[0]["lam"] == uq.optimal_lambda(1)
    assert rows[3]["paper_lam"] == 0.0304


@pytest.mark.parametrize("bad", ["0", "17", "3-1", "x", "1-"])
def test_lambdas_rejects_bad_bit_lists(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["lambdas", "--bits", bad])
    assert exit_info.value.code == 2
    assert "--bits" in capsys.readouterr().err


def test_quantize_writes_codes_and_reports_the_error(tmp_path, capsys):
    weights = np.random.default_rng(0).normal(0.01, 0.05, size=(8, 3, 3, 3)).astype(np.float32)
    source, target = tmp_path / "w.npy", tmp_path / "q.npz"
    np.save(source, weights)
    assert main(["quantize", str(source), "--bits", "2", "--axis", "0", "-o", str(target)]) == 0
    out = capsys.readouterr().out
    expected = uq.quantize(weights, 2, axis=0)
    loaded = load_quantized(target)
    np.testing.assert_array_equal(loaded.codes, expected.codes)
    np.testing.assert_array_equal(loaded.alpha, expected.alpha)
    np.testing.assert_array_equal(loaded.beta, expected.beta)
    assert (loaded.bits, loaded.axis, loaded.lam, loaded.dtype) == (2, 0, expected.lam,
                                                                     np.float32)
    mse = np.mean((weights.astype(float) - expected.dequantize(np.float64)) ** 2)
    assert f"MSE  = {mse:.6e}" in out
    assert f"SQNR = {10 * np.log10(np.mean(weights.astype(float) ** 2) / mse):.2f} dB" in out
    with np.load(target, allow_pickle=False) as data:  # plain arrays, readable without us
        assert set(data.files) >= {"codes", "alpha", "beta", "bits"}


def test_quantize_refuses_to_overwrite_without_force(tmp_path, capsys):
    source, target = tmp_path / "w.npy", tmp_path / "q.npz"
    np.save(source, np.arange(10.0))
    target.write_bytes(b"keep me")
    assert main(["quantize", str(source), "--bits", "3", "-o", str(target)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"
    assert main(["quantize", str(source), "--bits", "3", "-o", str(target), "--force"]) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"hello", "not a .npy file"),
        ("object", "holds Python objects"),
        ("nan", "w contains 1 non-finite value"),
        ("empty", "w is empty"),
        ("complex", "complex dtype"),
        ("truncated", "not a readable .npy file"),
    ],
)
def test_quantize_bad_files_give_one_line_errors(tmp_path, capsys, content, message):
    source = tmp_path / "in.npy"
    if content == "object":
        np.save(source, np.array([1, "a"], dtype=object), allow_pickle=True)
    elif content == "nan":
        np.save(source, np.array([1.0, np.nan]))
    elif content == "empty":
        np.save(source, np.zeros(0))
    elif content == "complex":
        np.save(source, np.array([1j]))
    elif content == "truncated":
        np.save(source, np.arange(100.0))
        source.write_bytes(source.read_bytes()[:90])
    elif content is not None:
        source.write_bytes(content)
    assert main(["quantize", str(source), "--bits", "2", "-o", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("ul2q-ref quantize: error:")
    assert not (tmp_path / "o.npz").exists()


def test_module_entry_point_and_help():
    result = subprocess.run([sys.executable, "-m", "ul2q_ref", "--help"], capture_output=True,
                            text=True, check=True)
    assert "lambdas" in result.stdout and "quantize" in result.stdout
    result = subprocess.run([sys.executable, "-m", "ul2q_ref", "lambdas", "--bits", "1"],
                            capture_output=True, text=True, check=True)
    assert "1.59576912160573" in result.stdout
