"""Tests for ``ul2q_ref.nn.data``: IDX/CIFAR parsers, the embedded MNIST subset, helpers."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ul2q_ref.nn import data
from ul2q_ref.nn.data import (
    Dataset,
    iterate_minibatches,
    load_cifar10,
    load_dataset,
    load_mnist,
    load_mnist_small,
    read_idx,
    to_float,
)

REPO = Path(__file__).resolve().parents[2]
FIRST_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_SMALL_COUNTS = [1994, 2281, 1929, 2076, 1945, 1775, 1971, 2093, 1922, 2014]
TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
              np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, type_code: int | None = None,
              dims: tuple[int, ...] | None = None) -> bytes:
    """Serialise ``array`` as IDX; ``type_code``/``dims`` override the header."""
    big = array.astype(array.dtype.newbyteorder(">"))
    code = TYPE_CODES[big.dtype] if type_code is None else type_code
    dims = array.shape if dims is None else dims
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + big.tobytes()


def write(path: Path, payload: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path


def write_mnist(directory: Path, n_train: int = 12, n_test: int = 7, gz: bool = True,
                train_labels: np.ndarray | None = None, seed: int = 0) -> dict:
    """Write a tiny synthetic MNIST (4 IDX files) and return the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (rng.integers(0, 10, n_train, dtype=np.uint8)
                         if train_labels is None else train_labels),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, stem in data._MNIST_FILES.items():
        write(directory / (stem + (".gz" if gz else "")), idx_bytes(arrays[key]), gz)
    return arrays


def write_cifar(directory: Path, per_file: int = 3, seed: int = 0) -> list[np.ndarray]:
    """Write tiny synthetic CIFAR-10 binary batches and return the record arrays."""
    rng = np.random.default_rng(seed)
    records = []
    for name in (*data._CIFAR_TRAIN_FILES, data._CIFAR_TEST_FILE):
        rec = rng.integers(0, 256, (per_file, 3073), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, per_file)
        (directory / name).write_bytes(rec.tobytes())
        records.append(rec)
    return records


# ------------------------------------------------------------------------------------------
# read_idx
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write(tmp_path / "a.idx", idx_bytes(array), compress)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(sorted(TYPE_CODES, key=str)),
       shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       compress=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_read_idx_all_types(tmp_path_factory, dtype, shape, compress, seed) -> None:
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = write(tmp_path_factory.mktemp("idx") / "x", idx_bytes(array), compress)
    out = read_idx(path)
    assert out.shape == tuple(shape)
    assert out.dtype == dtype.newbyteorder("=") and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.uint8)
    gz_named_raw = write(tmp_path / "raw.gz", idx_bytes(array))
    raw_named_gz = write(tmp_path / "plain-ubyte", idx_bytes(array), compress=True)
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(("payload", "message"), [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x00", "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown IDX element type 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00", "truncated IDX header"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated IDX header"),
])
def test_read_idx_rejects_bad_headers(tmp_path: Path, compress: bool, payload: bytes,
                                      message: str) -> None:
    path = write(tmp_path / "bad", payload, compress)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_truncated_payload(tmp_path: Path, compress: bool) -> None:
    good = idx_bytes(np.zeros((4, 5), dtype=np.uint8))
    path = write(tmp_path / "short", good[:-3], compress)
    with pytest.raises(ValueError, match=r"truncated .*20.* 17") as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_trailing_bytes(tmp_path: Path, compress: bool) -> None:
    good = idx_bytes(np.zeros((4, 5), dtype=np.uint8))
    path = write(tmp_path / "long", good + b"\x00", compress)
    with pytest.raises(ValueError, match="oversized") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_wrong_element_size(tmp_path: Path) -> None:
    # Header says int32 but the payload has one byte per element: 4x too short.
    payload = idx_bytes(np.zeros(8, dtype=np.uint8), type_code=0x0C)
    with pytest.raises(ValueError, match=r"claims 32 payload bytes.*holds 8"):
        read_idx(write(tmp_path / "x", payload))


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_huge_claim_fails_fast_without_allocating(tmp_path: Path,
                                                           compress: bool) -> None:
    # The header claims 10^6 x 10^6 uint8 = 10^12 bytes; the file holds 16 bytes.
    payload = idx_bytes(np.zeros(16, dtype=np.uint8), dims=(10**6, 10**6))
    path = write(tmp_path / "huge", payload, compress)
    with pytest.raises(ValueError, match="more than the limit"):
        read_idx(path)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=r"truncated .*1000000000000"):
            read_idx(path, max_bytes=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 8 * 2**20


def test_read_idx_gzip_bomb_is_capped(tmp_path: Path) -> None:
    # 64 MiB of zeros compresses to ~64 KiB; the header claims only 10 bytes.
    header = bytes([0, 0, 8, 1]) + struct.pack(">I", 10)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    blob = compressor.compress(header)
    zeros = bytes(2**20)
    for _ in range(64):
        blob += compressor.compress(zeros)
    blob += compressor.flush()
    path = tmp_path / "bomb"
    path.write_bytes(blob)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="oversized"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    blob = gzip.compress(idx_bytes(np.zeros(1000, dtype=np.uint8)))
    path = write(tmp_path / "corrupt", blob[:10] + b"\xff" * 20 + blob[30:])
    with pytest.raises(ValueError, match="corrupt"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ------------------------------------------------------------------------------------------
# load_mnist (synthetic)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_synthetic(tmp_path: Path, gz: bool) -> None:
    arrays = write_mnist(tmp_path, gz=gz)
    ds = load_mnist(tmp_path)
    assert ds.name == "mnist" and str(tmp_path) in ds.source
    assert ds.train_images.shape == (12, 1, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (7, 1, 28, 28)
    assert ds.train_labels.dtype == np.int64 and ds.test_labels.dtype == np.int64
    np.testing.assert_array_equal(ds.train_images[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(ds.test_labels, arrays["test_labels"])
    assert "train: 12 images" in ds.describe()


def test_load_mnist_label_out_of_range(tmp_path: Path) -> None:
    labels = np.zeros(12, dtype=np.uint8)
    labels[5] = 10
    write_mnist(tmp_path, train_labels=labels)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    write_mnist(tmp_path, train_labels=np.zeros(11, dtype=np.uint8))
    with pytest.raises(ValueError, match="12 images but .* 11 labels"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_image_size(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte.gz",
          idx_bytes(np.zeros((7, 28, 27), dtype=np.uint8)), compress=True)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        load_mnist(tmp_path)


def test_load_mnist_missing_file(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "absent")


# ------------------------------------------------------------------------------------------
# CIFAR-10 (synthetic)
# ------------------------------------------------------------------------------------------


def test_load_cifar10_synthetic(tmp_path: Path) -> None:
    records = write_cifar(tmp_path)
    ds = load_cifar10(tmp_path)
    assert ds.name == "cifar10"
    assert ds.train_images.shape == (15, 3, 32, 32) and ds.test_images.shape == (3, 3, 32, 32)
    assert ds.train_labels.dtype == np.int64
    np.testing.assert_array_equal(ds.train_labels[3:6], records[1][:, 0])
    # Record layout: label, then 1024 red, 1024 green, 1024 blue values (row-major).
    first = records[0][0]
    np.testing.assert_array_equal(ds.train_images[0, 1].ravel(), first[1 + 1024:1 + 2048])
    np.testing.assert_array_equal(ds.test_images[2, 2, 31], records[5][2, -32:])
    # The parent directory of cifar-10-batches-bin is accepted too.
    nested = tmp_path / "parent" / "cifar-10-batches-bin"
    nested.mkdir(parents=True)
    write_cifar(nested)
    assert load_cifar10(tmp_path / "parent").train_images.shape[0] == 15


@pytest.mark.parametrize("size", [0, 3072, 3073 * 2 + 1])
def test_load_cifar10_wrong_size(tmp_path: Path, size: int) -> None:
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3.bin").write_bytes(bytes(size))
    with pytest.raises(ValueError, match="data_batch_3.bin: size .* multiple of the 3073"):
        load_cifar10(tmp_path)


def test_load_cifar10_bad_label(tmp_path: Path) -> None:
    records = write_cifar(tmp_path)
    records[5][1, 0] = 10
    (tmp_path / "test_batch.bin").write_bytes(records[5].tobytes())
    with pytest.raises(ValueError, match=r"test_batch.bin.*0\.\.9"):
        load_cifar10(tmp_path)


def test_load_cifar10_missing_and_python_version(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    (tmp_path / "data_batch_5.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_5.bin"):
        load_cifar10(tmp_path)
    pickles = tmp_path / "py"
    pickles.mkdir()
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (pickles / name).write_bytes(b"\x80\x04not-to-be-loaded")
    with pytest.raises(FileNotFoundError, match="pickle.*binary version"):
        load_cifar10(pickles)


# ------------------------------------------------------------------------------------------
# load_dataset, Dataset, to_float, iterate_minibatches
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["", "mnist", "mnist:", "cifar10", "cifar:/x", "MNIST-small",
                                  "imagenet:/data", "mnist_small"])
def test_load_dataset_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="--data") as info:
        load_dataset(spec)
    for form in ("mnist-small", "mnist:DIR", "cifar10:DIR"):
        assert form in str(info.value)


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "c").mkdir()
    write_mnist(tmp_path / "m")
    write_cifar(tmp_path / "c")
    assert load_dataset(f"mnist:{tmp_path / 'm'}").image_shape == (1, 28, 28)
    assert load_dataset(f"cifar10:{tmp_path / 'c'}").image_shape == (3, 32, 32)
    with pytest.raises(FileNotFoundError):
        load_dataset(f"mnist:{tmp_path / 'absent'}")


def test_dataset_validates_and_is_read_only() -> None:
    images = np.zeros((2, 1, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9], dtype=np.int64)
    ds = Dataset("mnist", images, labels, images.copy(), labels.copy(), source="test")
    assert ds.num_classes == 10 and ds.mean == (0.1307,) and ds.std == (0.3081,)
    with pytest.raises(ValueError, match="read-only"):
        ds.train_images[0, 0, 0, 0] = 1
    with pytest.raises(ValueError, match="int64"):
        Dataset("mnist", images, labels.astype(np.uint8), images, labels)
    with pytest.raises(ValueError, match="uint8"):
        Dataset("mnist", images.astype(np.float32), labels, images, labels)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        Dataset("mnist", images, np.array([0, 10]), images, labels)
    with pytest.raises(ValueError, match="unknown dataset name"):
        Dataset("svhn", images, labels, images, labels)


def test_to_float() -> None:
    images = np.array([0, 255, 51], dtype=np.uint8).reshape(1, 1, 1, 3)
    out = to_float(images, 0.1307, 0.3081)
    assert out.dtype == np.float32 and out.shape == images.shape
    np.testing.assert_allclose(out.ravel(), (np.array([0, 1, 0.2]) - 0.1307) / 0.3081,
                               rtol=1e-6)
    caffe = to_float(images, 0.0, 1.0, scale=1 / 256)
    np.testing.assert_allclose(caffe.ravel(), [0, 255 / 256, 51 / 256], rtol=1e-6)
    rgb = np.full((2, 3, 2, 2), 255, dtype=np.uint8)
    out = to_float(rgb, (0.5, 0.0, 1.0), (0.5, 1.0, 2.0))
    np.testing.assert_allclose(out[:, :, 0, 0], [[1.0, 1.0, 0.0]] * 2, atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        to_float(rgb.astype(np.float32), 0.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        to_float(rgb, 0.0, 0.0)


def test_iterate_minibatches() -> None:
    batches = list(iterate_minibatches(10, 4, np.random.default_rng(1)))
    assert [b.size for b in batches] == [4, 4, 2]
    assert all(b.dtype == np.int64 for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    again = list(iterate_minibatches(10, 4, np.random.default_rng(1)))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    ordered = list(iterate_minibatches(10, 4, shuffle=False))
    assert np.concatenate(ordered).tolist() == list(range(10))
    assert [b.size for b in iterate_minibatches(10, 4, shuffle=False, drop_last=True)] == [4, 4]
    assert list(iterate_minibatches(0, 4, np.random.default_rng(0))) == []
    with pytest.raises(ValueError, match="rng"):
        list(iterate_minibatches(10, 4))
    with pytest.raises(ValueError, match="batch_size"):
        list(iterate_minibatches(10, 0, shuffle=False))


# ------------------------------------------------------------------------------------------
# the embedded subset
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_small() -> Dataset:
    return load_mnist_small()


def test_mnist_small_contents(mnist_small: Dataset) -> None:
    ds = mnist_small
    assert ds.name == "mnist" and "mnist-small" in ds.source
    assert ds.train_images.shape == (20_000, 1, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (10_000, 1, 28, 28) and ds.test_images.dtype == np.uint8
    assert ds.train_labels.shape == (20_000,) and ds.train_labels.dtype == np.int64
    assert ds.test_labels.shape == (10_000,) and ds.test_labels.dtype == np.int64
    assert ds.train_labels[:10].tolist() == FIRST_LABELS
    assert np.bincount(ds.test_labels, minlength=10).tolist() == TEST_COUNTS
    assert np.bincount(ds.train_labels, minlength=10).tolist() == TRAIN_SMALL_COUNTS
    assert load_dataset("mnist-small").train_labels[:10].tolist() == FIRST_LABELS


def test_mnist_small_file_is_plain_npz() -> None:
    with np.load(data.MNIST_SMALL_PATH, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["test_images", "test_labels",
                                     "train_images", "train_labels"]
        digest = hashlib.sha256(npz["train_labels"].tobytes()).hexdigest()
    assert digest == "144ad3b0173ca5c3576c18ce96a30122a116dac67293af6b88c4f037dea66eb3"


def test_load_mnist_small_validates(tmp_path: Path) -> None:
    good = {"train_images": np.zeros((20_000, 1, 28, 28), np.uint8),
            "train_labels": np.zeros(20_000, np.uint8),
            "test_images": np.zeros((10_000, 1, 28, 28), np.uint8),
            "test_labels": np.zeros(10_000, np.uint8)}
    np.savez(tmp_path / "ok.npz", **good)
    assert load_mnist_small(tmp_path / "ok.npz").test_images.shape[0] == 10_000
    np.savez(tmp_path / "missing.npz", **{k: v for k, v in good.items() if k != "test_labels"})
    with pytest.raises(ValueError, match="expected arrays"):
        load_mnist_small(tmp_path / "missing.npz")
    np.savez(tmp_path / "dtype.npz", **{**good, "train_labels": good["train_labels"] + 0.0})
    with pytest.raises(ValueError, match="train_labels must be uint8"):
        load_mnist_small(tmp_path / "dtype.npz")
    np.savez(tmp_path / "shape.npz", **{**good, "test_images": good["test_images"][:, 0]})
    with pytest.raises(ValueError, match="test_images must be uint8"):
        load_mnist_small(tmp_path / "shape.npz")
    objects = np.empty(20_000, dtype=object)
    np.savez(tmp_path / "pickle.npz", **{**good, "train_labels": objects})
    with pytest.raises(ValueError, match="allow_pickle"):
        load_mnist_small(tmp_path / "pickle.npz")


# ------------------------------------------------------------------------------------------
# the shared full MNIST (skipped when absent)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_mnist_dir() -> Path:
    try:
        directory = data.default_mnist_dir()
    except ValueError as error:  # UL2Q_MNIST_DIR not set
        pytest.skip(str(error))
    if not (directory / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"full MNIST not available at {directory}")
    return directory


def test_full_mnist_and_subset_match(shared_mnist_dir: Path, mnist_small: Dataset) -> None:
    full = load_mnist(shared_mnist_dir)
    assert full.train_images.shape == (60_000, 1, 28, 28)
    assert full.test_images.shape == (10_000, 1, 28, 28)
    assert full.train_labels[:10].tolist() == FIRST_LABELS
    np.testing.assert_array_equal(mnist_small.train_images, full.train_images[:20_000])
    np.testing.assert_array_equal(mnist_small.train_labels, full.train_labels[:20_000])
    np.testing.assert_array_equal(mnist_small.test_images, full.test_images)
    np.testing.assert_array_equal(mnist_small.test_labels, full.test_labels)


def _build_script():
    spec = importlib.util.spec_from_file_location(
        "build_mnist_small", REPO / "scripts" / "build_mnist_small.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_script_reproduces_subset(shared_mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rebuilt.npz"
    assert _build_script().main(["--mnist-dir", str(shared_mnist_dir), "--out", str(out)]) == 0
    rebuilt = load_mnist_small(out)
    embedded = load_mnist_small()
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(rebuilt, key), getattr(embedded, key))
    if zlib.ZLIB_RUNTIME_VERSION == "1.2.13":  # the zlib the committed file was built with
        assert out.read_bytes() == data.MNIST_SMALL_PATH.read_bytes()


def test_build_script_checks_sha256(tmp_path: Path) -> None:
    for name in _build_script().MNIST_SHA256:
        (tmp_path / name).write_bytes(b"not mnist")
    with pytest.raises(SystemExit, match="sha256 mismatch"):
        _build_script().main(["--mnist-dir", str(tmp_path), "--out", str(tmp_path / "o.npz")])
    assert not (tmp_path / "o.npz").exists()
