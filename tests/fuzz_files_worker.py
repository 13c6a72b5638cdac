"""Fuzz worker (run by tests/test_fuzz_files.py in a subprocess of its own).

Hypothesis corrupts valid files of every kind the package reads (truncations, bit flips,
overwritten bytes, edited header numbers); each corrupted file must either load or raise
one clean error (a ValueError or OSError with a one-line message naming the file), never
another exception, never hang (an alarm per example) and never take unbounded memory (the
address space is capped; the peak RSS is printed at the end for the test to check).

Usage: python tests/fuzz_files_worker.py EXAMPLES_PER_KIND
"""

from __future__ import annotations

import gzip
import json
import os
import re
import resource
import signal
import sys
import tempfile
from pathlib import Path

ADDRESS_SPACE = 3 << 30
resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ul2q_ref import io as uio  # noqa: E402
from ul2q_ref.cli._common import CommandError  # noqa: E402
from ul2q_ref.cli.check import validate_vectors_file  # noqa: E402
from ul2q_ref.crosscheck import vectors as cv  # noqa: E402
from ul2q_ref.nn import data as nndata  # noqa: E402
from ul2q_ref.nn import export as nnexport  # noqa: E402
from ul2q_ref.nn import train as nntrain  # noqa: E402

SECONDS_PER_EXAMPLE = 20


class Hang(BaseException):
    """An example took longer than SECONDS_PER_EXAMPLE."""


def _alarm(signum, frame):
    raise Hang()


signal.signal(signal.SIGALRM, _alarm)


# --------------------------------------------------------------------------- valid files


def tiny_dataset() -> nndata.Dataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 1, 28, 28), dtype=np.uint8)
    labels = np.arange(4, dtype=np.int64)
    return nndata.Dataset("mnist", images, labels, images.copy(), labels.copy(), source="tiny")


def make_files(root: Path) -> dict:
    """Write one valid file of each kind; return {kind: (path, loader)}."""
    files = {}
    npy = root / "a.npy"
    np.save(npy, np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32))
    files["npy"] = (npy, uio.read_npy)
    npz = root / "a.npz"
    np.savez(npz, x=np.arange(12, dtype=np.int16).reshape(3, 4), s=np.array("text"))
    files["npz"] = (npz, uio.read_npz)
    compressed = root / "c.npz"
    np.savez_compressed(compressed, x=np.zeros(5000), y=np.arange(7.0))
    files["npz-compressed"] = (compressed, uio.read_npz)
    quantized = root / "q.npz"
    from ul2q_ref import quantize

    uio.save_quantized(quantized, quantize(np.linspace(-1, 1, 24).reshape(4, 6), 3, axis=0))
    files["quantized"] = (quantized, uio.load_quantized)

    images = np.random.default_rng(2).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    idx = root / "images-idx3-ubyte"
    idx.write_bytes(bytes([0, 0, 8, 3]) + np.array([3, 28, 28], ">u4").tobytes()
                    + images.tobytes())
    files["idx"] = (idx, nndata.read_idx)
    idx_gz = root / "images-idx3-ubyte.gz"
    idx_gz.write_bytes(gzip.compress(idx.read_bytes()))
    files["idx-gzip"] = (idx_gz, nndata.read_idx)
    cifar = root / "data_batch_1.bin"
    records = np.random.default_rng(3).integers(0, 256, size=(2, 3073), dtype=np.uint8)
    records[:, 0] = [3, 7]
    cifar.write_bytes(records.tobytes())
    files["cifar"] = (cifar, nndata._read_cifar_batch)

    dataset = tiny_dataset()
    config = nntrain.TrainConfig(scheme="ul2q", bits=2, last_bits=8, epochs=1)
    model, layers = nntrain.build(config, dataset)
    optimizer = nntrain.SGD(model.parameters(), momentum=config.momentum,
                            weight_decay=config.weight_decay)
    checkpoint = root / "checkpoint.npz"
    nntrain.save_checkpoint(checkpoint, config, model, optimizer,
                            [nntrain.EpochMetrics(1, 0.5, 0.5, 1.0, 0.01)])

    def load_checkpoint(path):
        state = nntrain.load_checkpoint(path)
        nntrain.restore(path, config, model, optimizer, state)
        return state

    files["checkpoint"] = (checkpoint, load_checkpoint)
    exported = root / "model.npz"
    uio.save_npz_atomic(exported, nnexport.integer_model(config, model, layers))
    float_model, _ = nntrain.build(config, dataset)

    def load_exported(path):
        read_config, state = nnexport.read_integer_model(path)
        nntrain.restore(path, read_config, float_model, None, {"model": state})
        return state

    files["exported"] = (exported, load_exported)

    suite = root / "suite"
    cases = cv.generate_cases()
    chosen = [case for case in cases if case.id.startswith("ul2q-exact-k2-float32")][:3]
    chosen += [case for case in cases if "large" in case.flags][:1]
    cv.write_suite(suite, chosen)

    def load_vectors(path):
        validate_vectors_file(str(path))
        return cv.load_suite(path.parent)

    files["vectors"] = (suite / "vectors.json", load_vectors)
    return files


# --------------------------------------------------------------------------- corruptions

_NUMBER = re.compile(rb"\d+")


@st.composite
def corruptions(draw, original: bytes) -> bytes:
    """Apply 1 to 3 edits to `original`, biased towards headers and the end of the file."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        size = len(data)
        position = draw(st.one_of(st.integers(0, min(size - 1, 256)),
                                  st.integers(0, size - 1),
                                  st.integers(max(0, size - 256), size - 1)))
        operation = draw(st.sampled_from(["truncate", "flip", "overwrite", "number", "insert"]))
        if operation == "truncate":
            del data[position:]
        elif operation == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8))
            data[position:position + len(patch)] = patch
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:  # a header number replaced: shapes, sizes, counts
            numbers = list(_NUMBER.finditer(bytes(data[:4096])))
            if numbers:
                match = draw(st.sampled_from(numbers))
                value = str(draw(st.one_of(st.integers(0, 10), st.integers(0, 10**15)))).encode()
                data[match.start():match.end()] = value
    return bytes(data)


CLEAN = (ValueError, OSError, CommandError)


def check_one(path: Path, loader, corrupted: bytes, original: bytes) -> str:
    path.write_bytes(corrupted)
    signal.alarm(SECONDS_PER_EXAMPLE)
    try:
        loader(path)
        outcome = "loaded"
    except CLEAN as error:
        message = str(error)
        assert message and "\n" not in message.strip(), repr(message)
        assert path.name in message, f"the message does not name the file: {message}"
        outcome = "error"
    finally:
        signal.alarm(0)
        path.write_bytes(original)
    if corrupted == original:
        assert outcome == "loaded"
    return outcome


def run_kind(path: Path, loader, examples: int) -> dict[str, int]:
    original = path.read_bytes()
    loader(path)  # the valid file loads
    counts = {"loaded": 0, "error": 0}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(corruptions(original))
    def fuzz(corrupted: bytes) -> None:
        counts[check_one(path, loader, corrupted, original)] += 1

    fuzz()
    return counts


def peak_kib() -> int:  # VmHWM: own peak (ru_maxrss counts the parent's)
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    tally: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as directory:
        files = make_files(Path(directory))
        for kind, (path, loader) in files.items():
            tally[kind] = run_kind(path, loader, examples)
    peak = peak_kib()  # KiB
    print(json.dumps({"peak_rss_kib": peak, "outcomes": tally}))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
