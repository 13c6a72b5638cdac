"""Issue 11: nothing silently wrong, nothing lost, no tracebacks.

Each case runs the real command (``python -m ul2q_ref`` in a subprocess) and checks the one
line it prints, its exit status, and that no file was lost or left behind.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref import io as uio
from ul2q_ref.nn import data as nndata
from ul2q_ref.nn.train import RunLock, TrainConfig, write_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--train-limit", "64", "--test-limit", "40", "--batch", "32", "--epochs", "1"]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 120, umask: int | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m ul2q_ref ARGS`` as a user would."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    environment.pop("UL2Q_DEBUG", None)
    environment.update(env or {})

    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([sys.executable, "-m", "ul2q_ref", *args], capture_output=True,
                          text=True, cwd=cwd, env=environment, timeout=timeout,
                          preexec_fn=set_umask)


def run_main(capsys, *args: str) -> subprocess.CompletedProcess:
    """Run the command's entry point in this process (for argument checks, which need no
    process of their own); the result looks like :func:`run_cli`'s."""
    from ul2q_ref.cli import main

    capsys.readouterr()
    try:
        status = main(list(args))
    except SystemExit as stop:  # argparse
        status = stop.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), status, captured.out, captured.err)


def one_line_error(result: subprocess.CompletedProcess, command: str, *fragments: str,
                   status: int = 2) -> str:
    """Assert `result` failed with exactly one stderr line naming `fragments`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in lines if line.startswith(f"ul2q-ref {command}: error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "w.npy"
    np.save(path, np.random.default_rng(0).normal(0, 0.1, size=(6, 5)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished one-epoch run (checkpoint) and its exported integer model."""
    base = tmp_path_factory.mktemp("run")
    result = run_cli("train", "--scheme", "ul2q", "--bits", "2", *TINY, "--out",
                     str(base / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    result = run_cli("export", str(base / "run" / "checkpoint.npz"), "-o", str(base / "m.npz"))
    assert result.returncode == 0, result.stderr
    return base


# --------------------------------------------------------------------------- 1: the boundary


def test_check_names_itself_not_its_command_option(tmp_path):
    vectors = tmp_path / "v"
    assert run_cli("vectors", "--out", str(vectors)).returncode == 0
    result = run_cli("check", str(vectors), "--command", "no-such-program-ul2q")
    one_line_error(result, "check", "command not found: no-such-program-ul2q")


def test_traceback_only_when_asked(tmp_path):
    target = tmp_path / "missing.npy"
    plain = run_cli("quantize", str(target), "--bits", "2", "-o", str(tmp_path / "o.npz"))
    one_line_error(plain, "quantize", str(target), "no such file")
    for debug in (run_cli("--debug", "quantize", str(target), "--bits", "2", "-o",
                          str(tmp_path / "o.npz")),
                  run_cli("quantize", str(target), "--bits", "2", "-o",
                          str(tmp_path / "o.npz"), env={"UL2Q_DEBUG": "1"})):
        assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_directory_or_fifo_where_a_file_belongs(tmp_path):
    directory = tmp_path / "d.npy"
    directory.mkdir()
    one_line_error(run_cli("quantize", str(directory), "--bits", "2", "-o",
                           str(tmp_path / "o.npz")), "quantize", str(directory), "directory")
    fifo = tmp_path / "f.npy"
    os.mkfifo(fifo)
    for command in (["quantize", str(fifo), "--bits", "2", "-o", str(tmp_path / "o.npz")],
                    ["evaluate", str(fifo)], ["export", str(fifo), "-o", str(tmp_path / "m.npz")]):
        # a reader that blocks on the FIFO would hit the timeout (TimeoutExpired fails)
        one_line_error(run_cli(*command, timeout=90), command[0], str(fifo), "FIFO")
    assert listing(tmp_path) == ["d.npy", "f.npy"]


def test_usage_errors_are_one_line(tmp_path):
    result = run_cli("quantize", "--bits", "2")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("ul2q-ref quantize: error: ")


# --------------------------------------------------------------------------- 2: readers


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def test_npy_header_claiming_745_gib_is_refused_before_allocating(tmp_path):
    source = tmp_path / "huge.npy"
    source.write_bytes(npy_header((200_000, 1_000_000)) + b"\0" * 64)
    result = run_cli("quantize", str(source), "--bits", "2", "-o", str(tmp_path / "o.npz"))
    one_line_error(result, "quantize", str(source), "800000000000 bytes", "truncated")


def test_npy_with_extra_data_is_refused(tmp_path):
    source = tmp_path / "padded.npy"
    np.save(source, np.arange(4.0))
    with open(source, "ab") as handle:
        handle.write(b"\0" * 8)
    with pytest.raises(uio.FileFormatError, match="extra data"):
        uio.read_npy(source)


def test_npz_bomb_is_refused_by_size_and_ratio(tmp_path):
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("format.npy", "w", force_zip64=True) as member:
        member.write(npy_header((1 << 24,), "<f4"))
        chunk = b"\0" * (1 << 22)
        for _ in range(16):
            member.write(chunk)
    assert bomb.stat().st_size < 200_000
    result = run_cli("evaluate", str(bomb))
    one_line_error(result, "evaluate", str(bomb), "zip bomb")
    with pytest.raises(uio.FileFormatError, match="more than the limit"):
        uio.read_npz(bomb, max_member_bytes=1 << 20)


def write_cifar(directory: Path, per_file: int = 2) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in (*nndata._CIFAR_TRAIN_FILES, nndata._CIFAR_TEST_FILE):
        records = rng.integers(0, 256, size=(per_file, 3073), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, size=per_file)
        (directory / name).write_bytes(records.tobytes())


def test_sparse_30_gb_cifar_batch_is_refused_by_its_size(tmp_path):
    write_cifar(tmp_path)
    huge = tmp_path / "data_batch_1.bin"
    with open(huge, "r+b") as handle:
        handle.truncate(3073 * 10_000_000)  # sparse: ~30 GB claimed, nothing on disk
    with pytest.raises(ValueError, match=r"data_batch_1.bin: .*more than the 10000"):
        nndata.load_cifar10(tmp_path)
    result = run_cli("train", "--data", f"cifar10:{tmp_path}", "--model", "cifarnet", *TINY,
                     "--out", str(tmp_path / "run"))
    one_line_error(result, "train", "data_batch_1.bin", "more than the 10000")


def idx_bytes(count: int) -> bytes:
    return struct.pack(">BBBBIII", 0, 0, 8, 3, count, 28, 28) + bytes(784 * count)


def test_idx_with_zero_images_is_an_error_naming_the_file(tmp_path):
    for name, count in (("train-images-idx3-ubyte", 0), ("t10k-images-idx3-ubyte", 3)):
        (tmp_path / name).write_bytes(idx_bytes(count))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 0))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 3)
                                                      + bytes(3))
    result = run_cli("train", "--data", f"mnist:{tmp_path}", *TINY, "--out",
                     str(tmp_path / "run"))
    one_line_error(result, "train", "train-images-idx3-ubyte", "holds no images")


@pytest.mark.parametrize("content", [b"", b"\0\0\x08", b"\x01\0\x08\x01", b"\0\0\x07\x01",
                                     gzip.compress(b"\0\0\x08\x01\0\0\0\x09" + bytes(3)),
                                     b"\x1f\x8bnot gzip at all"])
def test_every_idx_error_names_the_file(tmp_path, content):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        nndata.read_idx(path)
    assert str(path) in str(error.value)


# --------------------------------------------------------------------------- 3: model files


def tamper(path: Path, target: Path, **changes) -> Path:
    arrays = dict(np.load(path, allow_pickle=False))
    arrays.update(changes)
    np.savez(target, **arrays)
    return target


def test_tampered_quantized_files_are_one_line_errors(tmp_path, weights_file):
    good = tmp_path / "q.npz"
    assert run_cli("quantize", str(weights_file), "--bits", "2", "-o", str(good)).returncode == 0
    cases = {
        "nan-alpha": ({"alpha": np.array(np.nan)}, "alpha must be finite"),
        "negative-alpha": ({"alpha": np.array(-1.0)}, "alpha must be finite and >= 0"),
        "inf-beta": ({"beta": np.array(np.inf)}, "beta must be finite"),
        "codes": ({"codes": np.full((6, 5), 3, dtype=np.int8)}, "code 3 is outside -1..2"),
        "bits": ({"bits": np.array(17)}, "bits must be 1..16"),
        "scheme": ({"scheme": np.array("magic")}, "unknown scheme 'magic'"),
        "axis": ({"axis": np.array(5), "alpha": np.ones(6), "beta": np.ones(6)},
                 "axis 5 is out of range"),
        "format": ({"format": np.array("ul2q-ref/quantized-v9")}, "format"),
        "float-codes": ({"codes": np.zeros((6, 5))}, "codes must be signed integers"),
    }
    for name, (changes, message) in cases.items():
        bad = tamper(good, tmp_path / f"{name}.npz", **changes)
        with pytest.raises(uio.FileFormatError, match=message) as error:
            uio.load_quantized(bad)
        assert str(bad) in str(error.value)


def test_quantized_round_trip_keeps_the_caffe_profile(tmp_path):
    w = np.random.default_rng(3).normal(0.2, 1.5, size=(40,)).astype(np.float32)
    made = uq.quantize(w, 3, profile="caffe")
    path = tmp_path / "caffe.npz"
    uio.save_quantized(path, made)
    loaded = uio.load_quantized(path)
    assert getattr(loaded, "profile", None) == "caffe"
    np.testing.assert_array_equal(loaded.dequantize(), made.dequantize())
    # a v1 file (0.1.0: no profile field) still loads, as the exact profile
    exact = uq.quantize(w, 3)
    arrays = uio.quantized_arrays(exact)
    del arrays["profile"]
    arrays["format"] = np.array("ul2q-ref/quantized-v1")
    np.savez(tmp_path / "v1.npz", **arrays)
    old = uio.load_quantized(tmp_path / "v1.npz")
    assert type(old) is uq.Quantized
    np.testing.assert_array_equal(old.dequantize(), exact.dequantize())


def test_tampered_exported_model_is_refused_not_evaluated(tmp_path, run_dir):
    model = run_dir / "m.npz"
    arrays = dict(np.load(model, allow_pickle=False))
    key = next(k for k in arrays if k.startswith("quantized/") and k.endswith("/alpha"))
    for name, value in (("nan", np.array(np.nan)), ("negative", np.array(-2.0))):
        bad = tmp_path / f"{name}.npz"
        np.savez(bad, **{**arrays, key: value})
        one_line_error(run_cli("evaluate", str(bad)), "evaluate", str(bad), "alpha")
    codes_key = key.replace("/alpha", "/codes")
    bad = tmp_path / "codes.npz"
    np.savez(bad, **{**arrays, codes_key: np.full_like(arrays[codes_key], 100)})
    one_line_error(run_cli("evaluate", str(bad)), "evaluate", str(bad), "code 100 is outside")
    assert "accuracy" not in run_cli("evaluate", str(bad)).stdout


def test_truncated_or_bit_flipped_checkpoint_is_one_line(tmp_path, run_dir):
    content = (run_dir / "run" / "checkpoint.npz").read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(content[: len(content) // 2])
    one_line_error(run_cli("evaluate", str(truncated)), "evaluate", str(truncated))
    one_line_error(run_cli("export", str(truncated), "-o", str(tmp_path / "m.npz")), "export",
                   str(truncated))
    flipped = bytearray(content)
    flipped[len(flipped) // 3] ^= 0x10
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    one_line_error(run_cli("evaluate", str(tmp_path / "flip.npz")), "evaluate", "flip.npz")
    resume = tmp_path / "resume"
    resume.mkdir()
    (resume / "checkpoint.npz").write_bytes(content[:-100])
    one_line_error(run_cli("train", "--resume", "--out", str(resume)), "train",
                   "checkpoint.npz")
    assert listing(tmp_path).count("m.npz") == 0


def test_evaluate_and_export_given_an_npy(tmp_path, weights_file):
    one_line_error(run_cli("evaluate", str(weights_file)), "evaluate", str(weights_file),
                   ".npy array, not an .npz")
    one_line_error(run_cli("export", str(weights_file), "-o", str(tmp_path / "m.npz")),
                   "export", str(weights_file), ".npy array")
    assert listing(tmp_path) == []


def test_missing_data_is_blamed_not_the_model(run_dir):
    result = run_cli("evaluate", str(run_dir / "m.npz"), "--data", "mnist:/missing-ul2q")
    line = one_line_error(result, "evaluate", "--data mnist:/missing-ul2q", "does not exist")
    assert "m.npz" not in line


def test_checkpoint_given_to_evaluate_still_works(run_dir):
    for path in (run_dir / "run" / "checkpoint.npz", run_dir / "m.npz"):
        result = run_cli("evaluate", str(path))
        assert result.returncode == 0 and "test accuracy" in result.stdout, result.stderr


# --------------------------------------------------------------------------- 4: writers


def test_outputs_respect_the_umask(tmp_path, weights_file, run_dir):
    out = tmp_path / "q.npz"
    assert run_cli("quantize", str(weights_file), "--bits", "2", "-o", str(out),
                   umask=0o022).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert run_cli("export", str(run_dir / "run" / "checkpoint.npz"), "-o",
                   str(tmp_path / "m.npz"), umask=0o027).returncode == 0
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o640
    assert stat.S_IMODE((run_dir / "run" / "checkpoint.npz").stat().st_mode) == \
        0o666 & ~uio.current_umask()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "q.npz"
    target.write_bytes(b"old")
    for error in (OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()):
        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(np.lib.format, "write_array", fail)
        with pytest.raises(type(error)) as raised:
            uio.save_npz_atomic(target, {"a": np.zeros(3)})
        if isinstance(error, OSError):
            assert str(target) in str(raised.value) and "No space" in str(raised.value)
        assert target.read_bytes() == b"old"
        assert listing(tmp_path) == ["q.npz"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB tmpfs (needs root; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_is_one_line_and_keeps_the_previous_file(tiny_disk, tmp_path):
    big = tmp_path / "big.npy"
    np.save(big, np.random.default_rng(0).normal(size=1_000_000).astype(np.float32))
    target = tiny_disk / "q.npz"
    target.write_bytes(b"previous")
    result = run_cli("quantize", str(big), "--bits", "16", "-o", str(target), "--force")
    one_line_error(result, "quantize", str(target), "No space left on device")
    assert target.read_bytes() == b"previous"
    assert listing(tiny_disk) == ["q.npz"]


def test_sigterm_while_training_leaves_no_temporary_and_a_valid_checkpoint(tmp_path):
    out = tmp_path / "run"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ul2q_ref", "train", "--train-limit", "256", "--test-limit",
         "40", "--batch", "16", "--epochs", "50", "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    deadline = time.monotonic() + 90
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert not [name for name in listing(out) if name.endswith(".tmp")]
    uio.read_npz(out / "checkpoint.npz")  # complete, readable


def test_two_trainers_cannot_share_an_out_directory(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):
        result = run_cli("train", *TINY, "--out", str(out))
    one_line_error(result, "train", "another trainer is running", str(out))
    assert "checkpoint.npz" not in listing(out)


def test_concurrent_metrics_writers_never_show_a_torn_file(tmp_path):
    from ul2q_ref.nn.train import EpochMetrics, TrainResult

    target = tmp_path / "metrics.json"
    result = TrainResult(TrainConfig(), None, [EpochMetrics(1, 0.5, 0.9, 1.0, 0.01)] * 200, {})
    write_metrics(target, result)
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        for _ in range(40):
            write_metrics(target, result)

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads(target.read_text())
            except ValueError as error:
                errors.append(str(error))

    threads = [threading.Thread(target=writer) for _ in range(2)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert listing(tmp_path) == ["metrics.json"]


def test_output_paths_are_checked_before_training(tmp_path):
    result = run_cli("train", *TINY, "--out", str(tmp_path / "run"), "--metrics-out",
                     str(tmp_path / "no-such-dir" / "m.json"))
    one_line_error(result, "train", "--metrics-out", "does not exist")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 6: training


def test_a_diverging_run_stops_naming_the_iteration(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--scheme", "ul2q", "--bits", "2", "--lr", "1e10", *TINY,
                     "--out", str(out))
    line = one_line_error(result, "train", "iteration", "lower learning rate")
    assert "nan" in line or "inf" in line
    assert "final test accuracy" not in result.stdout
    assert not [name for name in listing(out) if name.endswith(".tmp")]


def test_divergence_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from ul2q_ref.nn import train as train_module

    out = tmp_path / "run"
    config = TrainConfig(epochs=1, train_limit=64, test_limit=40, batch=32)
    train_module.train(config, out_dir=out, progress=False)
    before = (out / "checkpoint.npz").read_bytes()
    real = train_module.softmax_cross_entropy

    def poisoned(logits, labels):
        loss, grad = real(logits, labels)
        return float("nan"), grad

    monkeypatch.setattr(train_module, "softmax_cross_entropy", poisoned)
    with pytest.raises(train_module.TrainingDiverged, match=r"iteration 3 \(epoch 2\).*"
                       r"last good checkpoint .*epoch 1\) is kept"):
        train_module.train(TrainConfig(epochs=2), out_dir=out, resume=True, progress=False)
    assert (out / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "0", "lr must be positive"), ("--lr", "-1", "lr must be positive"),
    ("--lr", "inf", "lr must be a finite number"), ("--lr", "nan", "lr must be a finite"),
    ("--momentum", "1", "momentum must be in [0, 1)"),
    ("--momentum", "-0.1", "momentum must be in [0, 1)"),
    ("--power", "nan", "power must be a finite number"),
])
def test_nonsensical_hyperparameters_are_rejected_up_front(tmp_path, capsys, option, value,
                                                          message):
    result = run_main(capsys, "train", option, value, *TINY, "--out", str(tmp_path / "run"))
    one_line_error(result, "train", message)
    assert not (tmp_path / "run").exists() and result.stdout == ""


@pytest.mark.parametrize("arguments, message", [
    (["--scheme", "ternary", "--bits", "4"], "--scheme ternary has a fixed width of 2 bits"),
    (["--scheme", "binary", "--bits", "1"], "--scheme binary has a fixed width of 1 bit"),
    (["--scheme", "float", "--bits", "2"], "--bits has no effect with --scheme float"),
    (["--scheme", "float", "--last-bits", "8"], "--last-bits has no effect"),
    (["--scheme", "clip", "--bits", "1"], "clip needs at least 2 bits"),
    (["--bits", "0"], "argument --bits: bit widths must be 1 to 16, got 0"),
    (["--scheme", "ul2q", "--bits", "17"], "argument --bits"),
])
def test_options_a_scheme_ignores_are_errors(tmp_path, capsys, arguments, message):
    result = run_main(capsys, "train", *arguments, *TINY, "--out", str(tmp_path / "run"))
    one_line_error(result, "train", message)
    assert not (tmp_path / "run").exists() and result.stdout == ""


def test_resume_refuses_options_that_would_change_the_run(tmp_path, run_dir):
    before = (run_dir / "run" / "checkpoint.npz").read_bytes()
    result = run_cli("train", "--resume", "--scheme", "binary", "--out", str(run_dir / "run"))
    one_line_error(result, "train", "--scheme binary (saved: ul2q)")
    assert (run_dir / "run" / "checkpoint.npz").read_bytes() == before


# --------------------------------------------------------------------------- 9: logs


def test_progress_in_a_log_is_a_few_lines(tmp_path):
    import io as stdio

    from ul2q_ref.progress import progress

    log = stdio.StringIO()
    report = progress(10_000, "epoch 1/1", unit="batch", stream=log)
    for _ in range(10_000):
        report.advance(1, loss="0.1")
    report.close()
    assert log.getvalue().count("\n") == 1 and "\r" not in log.getvalue()
    assert "epoch 1/1: 10000/10000 batch (100%)" in log.getvalue()


def test_training_log_stays_short(tmp_path):
    result = run_cli("train", "--train-limit", "640", "--test-limit", "40", "--batch", "8",
                     "--epochs", "2", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    assert len(result.stderr.splitlines()) <= 1 + 2 * 2  # header, one bar line + JSON per epoch


def test_quantize_refuses_an_npy_name_for_its_npz(tmp_path, weights_file):
    result = run_cli("quantize", str(weights_file), "--bits", "2", "-o", str(tmp_path / "o.npy"))
    one_line_error(result, "quantize", "o.npy", "name it o.npz")
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- 7: the checker


@pytest.fixture(scope="module")
def vectors(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("vectors") / "v"
    assert run_cli("vectors", "--out", str(directory)).returncode == 0
    return directory


FAKE = r'''
import json, sys
sys.path.insert(0, {root!r})
from ul2q_ref.crosscheck.reference_impl import solve
mode = sys.argv[1]
request = json.loads(sys.stdin.readline())
result = solve(request)
out = sys.stdout
if mode == "binary":
    sys.stdout.buffer.write(b"\xff\xfe\x00{{}}\n"); sys.exit()
if mode == "scalar":
    print("42"); sys.exit()
if mode == "list":
    print("[1,2]"); sys.exit()
if mode == "deep":
    print("[" * 100000 + "]" * 100000); sys.exit()
if mode == "digits":
    print('{{"id": "x", "n": ' + "7" * 5000 + '}}'); sys.exit()
if mode == "huge-code":
    result["encode"]["codes"][0] = 10 ** 30
if mode == "unicode-hex":
    text = result["encode"]["output"]["hex"][0]
    result["encode"]["output"]["hex"][0] = "\u0663" * len(text)
if mode == "stderr":
    sys.stderr.write("x" * (8 << 20)); sys.stderr.flush()
if mode == "orphan":
    import subprocess
    subprocess.Popen(["sleep", "31.4159"])
    import time; time.sleep(60)
print(json.dumps(result))
'''


@pytest.mark.parametrize("mode, message", [
    ("binary", "stdout is not UTF-8"), ("scalar", "not a JSON object"),
    ("list", "not a JSON object"), ("deep", "nested too deeply"),
    ("digits", "4300 digits"), ("huge-code", "far outside any code range"),
    ("unicode-hex", "not an ASCII hexadecimal"),
])
def test_malformed_outputs_fail_the_case(tmp_path, vectors, mode, message):
    script = tmp_path / "fake.py"
    script.write_text(FAKE.format(root=str(ROOT)))
    result = run_cli("check", str(vectors), "--command", f"{sys.executable} {script} {mode}",
                     "--select", "ul2q-exact-k2-float32-random", "--quiet")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert message in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("0 passed")


def test_a_correct_command_passes(tmp_path, vectors):
    script = tmp_path / "fake.py"
    script.write_text(FAKE.format(root=str(ROOT)))
    result = run_cli("check", str(vectors), "--command", f"{sys.executable} {script} ok",
                     "--select", "ul2q-exact-k2-float*-random", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr


def test_timeout_kills_the_whole_process_group(tmp_path, vectors):
    script = tmp_path / "fake.py"
    script.write_text(FAKE.format(root=str(ROOT)))
    result = run_cli("check", str(vectors), "--command", f"{sys.executable} {script} orphan",
                     "--select", "ul2q-exact-k2-*", "--timeout", "2", "--deadline", "3")
    assert result.returncode == 1
    assert "timed out after 2 s" in result.stdout
    assert "not run: the overall deadline of 3 s passed" in result.stdout
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", "sleep 31.4159"], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_captured_output_is_capped(tmp_path):
    from ul2q_ref.crosscheck.check import run_bounded

    with open(os.devnull, "rb") as nothing, \
            run_bounded([sys.executable, "-c",
                         "import sys\nwhile True: sys.stderr.write('x' * 65536)"],
                        nothing, timeout=30, max_output=1 << 20) as finished:
        assert finished.problem == f"wrote more than {1 << 20} bytes of output"


@pytest.mark.parametrize("arguments, message", [
    (["--command", ""], "argument --command: is empty"),
    (["--command", "   "], "argument --command: is empty"),
    (["--command", "x", "--timeout", "inf"], "argument --timeout"),
    (["--command", "x", "--timeout", "nan"], "argument --timeout"),
    (["--command", "x", "--deadline", "-1"], "argument --deadline"),
    (["--command", "'unbalanced"], "cannot split"),
])
def test_bad_checker_options_are_one_line_usage_errors(vectors, capsys, arguments, message):
    result = run_main(capsys, "check", str(vectors), *arguments)
    one_line_error(result, "check", message)


@pytest.mark.parametrize("path, value, message", [
    (("cases", 0, "shape"), [-1], "$.cases[0].shape[0]: -1 is less than the minimum of 1"),
    (("cases", 0, "bits"), 0, "$.cases[0].bits: 0 is less than the minimum of 1"),
    (("cases", 0, "scheme"), "magic", "$.cases[0].scheme: 'magic' is not one of"),
    (("cases", 0, "encode", "codes"), "nope", "$.cases[0].encode.codes"),
    (("schema_version",), 3, "$.schema_version: 3 is not one of [1, 2]"),
])
def test_tampered_vectors_are_rejected_by_the_schema(tmp_path, capsys, vectors, path, value,
                                                    message):
    import shutil

    copy = tmp_path / "v"
    shutil.copytree(vectors, copy)
    document = json.loads((copy / "vectors.json").read_text())
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (copy / "vectors.json").write_text(json.dumps(document))
    result = run_main(capsys, "check", str(copy), "--self")
    one_line_error(result, "check", "does not follow vectors.schema.json", message)
