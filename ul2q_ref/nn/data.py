"""Offline datasets for the NumPy trainer: MNIST (IDX files), CIFAR-10 (binary version)
and the small MNIST subset embedded in the package.

Everything here is plain NumPy plus the standard library.  Nothing is downloaded and
no pickle is ever loaded.

Conventions
-----------
* Images are ``uint8`` arrays in NCHW layout: ``(N, 1, 28, 28)`` for MNIST and
  ``(N, 3, 32, 32)`` for CIFAR-10.
* Labels are ``int64`` arrays of shape ``(N,)`` with values in ``0..9`` (they are
  stored as ``uint8`` on disk and widened on load, so they can index arrays and be
  compared with ``argmax`` output without surprises).
* Network input is produced by :func:`to_float` (or :meth:`Dataset.to_float`), which
  scales to ``[0, 1]`` and standardises per channel with fixed, documented constants
  (see :data:`NORMALISATION`).

The public entry point for the trainer is :func:`load_dataset`, which parses the
``--data`` command-line value::

    mnist-small      the embedded subset (first 20,000 training images, all 10,000 test)
    mnist:DIR        the full MNIST IDX files in DIR (gzipped or not)
    cifar10:DIR      the CIFAR-10 *binary* version in DIR

MNIST is by Y. LeCun, C. Cortes and C. J. C. Burges and is distributed under the
Creative Commons Attribution-Share Alike 3.0 licence (see ``ul2q_ref/data/README.md``).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import open_regular, read_npz

__all__ = [
    "CIFAR10_CLASSES",
    "IDX_DTYPES",
    "MNIST_SMALL_PATH",
    "NORMALISATION",
    "Dataset",
    "default_mnist_dir",
    "iterate_minibatches",
    "load_cifar10",
    "load_dataset",
    "load_mnist",
    "load_mnist_small",
    "read_idx",
    "to_float",
]

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

#: Element types of the IDX format (third magic byte) and the big-endian dtype they mean.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: Refuse IDX payloads claiming more than this many bytes (the MNIST training images
#: are 47 MB); pass ``max_bytes=None`` to :func:`read_idx` to lift the limit.
IDX_MAX_BYTES = 1 << 30

#: Per-channel ``(mean, std)`` of the *training* pixels after scaling to ``[0, 1]``.
#: MNIST: the usual statistics of the full 60,000-image training set; they are also
#: used for ``mnist-small`` so that a model behaves identically on either source.
#: CIFAR-10: the statistics of its 50,000 training images.
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

NUM_CLASSES = 10

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST_FILE = "test_batch.bin"
_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte followed by the R, G and B planes

#: Each file of the CIFAR-10 binary version holds 10,000 records; larger files are refused
#: before they are read.
CIFAR_MAX_RECORDS = 10_000

#: The embedded subset and its expected sizes.
MNIST_SMALL_PATH = Path(__file__).resolve().parents[1] / "data" / "mnist_small.npz"
MNIST_SMALL_TRAIN = 20_000
MNIST_SMALL_TEST = 10_000

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def default_mnist_dir() -> Path:
    """Where the full MNIST is expected when no directory is given: ``$UL2Q_MNIST_DIR``.

    The package bakes in no path outside itself: the directory comes from that environment
    variable (or from ``--data mnist:DIR``, which does not call this).

    Raises
    ------
    ValueError
        If ``UL2Q_MNIST_DIR`` is not set (or empty).
    """
    directory = os.environ.get("UL2Q_MNIST_DIR")
    if not directory:
        raise ValueError("no MNIST directory: set the environment variable UL2Q_MNIST_DIR to "
                         "the directory of the MNIST IDX files, or pass --data mnist:DIR")
    return Path(directory)


# --------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image-classification dataset held in memory.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"cifar10"``; selects the normalisation constants.
    train_images, test_images : numpy.ndarray
        ``uint8`` arrays of shape ``(N, C, H, W)``.
    train_labels, test_labels : numpy.ndarray
        ``int64`` arrays of shape ``(N,)`` with values in ``0..9``.
    source : str
        Human-readable description of what was loaded (printed by ``evaluate``).

    Notes
    -----
    The arrays are made read-only so that the container really is immutable;
    :meth:`to_float` returns fresh ``float32`` arrays.
    """

    name: str
    train_images: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_images: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    source: str = ""

    def __post_init__(self) -> None:
        if self.name not in NORMALISATION:
            raise ValueError(f"unknown dataset name {self.name!r}; "
                             f"expected one of {sorted(NORMALISATION)}")
        channels = len(NORMALISATION[self.name][0])
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != channels:
                raise ValueError(f"{split}_images must be uint8 (N, {channels}, H, W), "
                                 f"got {images.dtype} {images.shape}")
            if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
                raise ValueError(f"{split}_labels must be int64 ({images.shape[0]},), "
                                 f"got {labels.dtype} {labels.shape}")
            _check_labels(labels, f"{split}_labels")
            images.flags.writeable = False
            labels.flags.writeable = False
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError("train and test images differ in shape: "
                             f"{self.train_images.shape[1:]} vs {self.test_images.shape[1:]}")

    @property
    def num_classes(self) -> int:
        """Number of classes (10 for both MNIST and CIFAR-10)."""
        return NUM_CLASSES

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image."""
        c, h, w = self.train_images.shape[1:]
        return (c, h, w)

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean used by :meth:`to_float`."""
        return NORMALISATION[self.name][0]

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation used by :meth:`to_float`."""
        return NORMALISATION[self.name][1]

    def to_float(self, images: np.ndarray) -> np.ndarray:
        """Convert ``uint8`` images of this dataset to normalised ``float32`` input.

        Parameters
        ----------
        images : numpy.ndarray
            ``uint8`` array ``(N, C, H, W)``, e.g. ``dataset.train_images[idx]``.

        Returns
        -------
        numpy.ndarray
            ``float32`` array of the same shape; see :func:`to_float`.
        """
        return to_float(images, self.mean, self.std)

    def describe(self) -> str:
        """Multi-line summary: source, split sizes, image shape and class counts."""
        lines = [f"dataset: {self.name} ({self.source})",
                 f"image shape (C, H, W): {self.image_shape}, uint8; "
                 f"input normalisation: x/255, mean {self.mean}, std {self.std}"]
        for split in ("train", "test"):
            labels = getattr(self, f"{split}_labels")
            counts = np.bincount(labels, minlength=NUM_CLASSES)
            lines.append(f"{split}: {labels.shape[0]} images, class counts "
                         + " ".join(str(int(c)) for c in counts))
        return "\n".join(lines)


def _check_labels(labels: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` unless every label is an integer in ``0..9``."""
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
        raise ValueError(f"{what}: labels must be in 0..{NUM_CLASSES - 1}, "
                         f"found {bad.size} out of range (e.g. {int(bad[0])})")


# --------------------------------------------------------------------------------------
# IDX (MNIST) files
# --------------------------------------------------------------------------------------




def _read_exact(stream, n: int, path: Path, what: str) -> bytes:
    """Read exactly ``n`` header bytes or raise a ``ValueError`` naming ``path``."""
    data = stream.read(n)
    if len(data) != n:
        raise ValueError(f"{path}: truncated IDX header: expected {n} bytes of {what}, "
                         f"got {len(data)}")
    return data


def _read_payload(stream, expected: int, path: Path) -> bytearray:
    """Read the payload in chunks, never holding more than ``expected + 1`` bytes.

    Raises ``ValueError`` if the stream holds fewer or more than ``expected`` bytes.
    """
    buf = bytearray()
    limit = expected + 1  # one extra byte is enough to detect trailing data
    while len(buf) < limit:
        chunk = stream.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    if len(buf) < expected:
        raise ValueError(f"{path}: truncated IDX payload: the header claims {expected} "
                         f"bytes, the file holds only {len(buf)}")
    if len(buf) > expected:
        raise ValueError(f"{path}: oversized IDX file: the header claims {expected} "
                         f"payload bytes but there is trailing data (more than "
                         f"{expected} bytes)")
    return buf


def read_idx(path: str | os.PathLike[str], max_bytes: int | None = IDX_MAX_BYTES
             ) -> np.ndarray:
    """Read an IDX file (the format of the MNIST distribution), gzipped or raw.

    The layout is a 4-byte magic ``00 00 TT DD`` (``TT`` the element type,
    ``DD`` the number of dimensions), ``DD`` big-endian ``uint32`` sizes, then the
    elements in C order.  Gzip is detected by the magic bytes ``1f 8b``, not by the
    file name.

    The claimed payload size is computed from the header and compared with the data
    actually present *before* anything of that size is allocated; gzip streams are
    decompressed in chunks with a cap of ``claimed + 1`` bytes, so a lying header or a
    decompression bomb cannot exhaust memory.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    max_bytes : int or None, optional
        Refuse headers claiming a payload larger than this (default 1 GiB);
        ``None`` disables the check (the exact-size check always applies).

    Returns
    -------
    numpy.ndarray
        Array of the header's shape, in native byte order; ``uint8`` for type
        ``0x08`` (see :data:`IDX_DTYPES` for the others).

    Raises
    ------
    ValueError
        Bad magic, unknown type code, zero dimensions, a shape too big for an array (even
        an empty one), a claimed size above ``max_bytes``, a truncated or oversized payload,
        or a corrupt gzip stream.
        The message names the file.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    handle = open_regular(path)  # refuses a FIFO or directory; errors name the file
    try:
        gz = handle.read(2) == _GZIP_MAGIC  # gzip by its magic bytes, whatever the name
        handle.seek(0)
        with (gzip.GzipFile(fileobj=handle, mode="rb") if gz else handle) as f:
            magic = _read_exact(f, 4, path, "magic number")
            if magic[0] != 0 or magic[1] != 0:
                raise ValueError(f"{path}: not an IDX file: magic {magic.hex(' ')} "
                                 "does not start with 00 00")
            type_code, ndims = magic[2], magic[3]
            if type_code not in IDX_DTYPES:
                known = ", ".join(f"0x{k:02x}" for k in IDX_DTYPES)
                raise ValueError(f"{path}: unknown IDX element type 0x{type_code:02x} "
                                 f"(known: {known})")
            if ndims == 0:
                raise ValueError(f"{path}: IDX header declares 0 dimensions")
            dims = tuple(int(d) for d in np.frombuffer(
                _read_exact(f, 4 * ndims, path, f"{ndims} dimension sizes"), dtype=">u4"))
            dtype = IDX_DTYPES[type_code]
            expected = math.prod(dims) * dtype.itemsize  # Python int: cannot overflow
            # NumPy refuses a shape whose nonzero sizes multiply past its index range, even
            # when a zero size makes the array empty: refuse it here, naming the file
            if math.prod(d for d in dims if d) * dtype.itemsize > np.iinfo(np.intp).max:
                raise ValueError(f"{path}: IDX header declares shape {dims}, too big for an "
                                 "array on this machine")
            if max_bytes is not None and expected > max_bytes:
                raise ValueError(f"{path}: IDX header claims {expected} payload bytes "
                                 f"(shape {dims}), more than the limit of {max_bytes}")
            if not gz:
                actual = os.fstat(handle.fileno()).st_size - (4 + 4 * ndims)
                if actual != expected:
                    kind = "truncated" if actual < expected else "oversized"
                    raise ValueError(f"{path}: {kind} IDX file: the header claims "
                                     f"{expected} payload bytes (shape {dims}), "
                                     f"the file holds {actual}")
            payload = _read_payload(f, expected, path)
    except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: corrupt or unreadable file: {exc}") from None
    finally:
        handle.close()
    array = np.frombuffer(payload, dtype=dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)  # native byte order


def _find_mnist_file(directory: Path, stem: str) -> Path:
    """Locate ``stem`` in ``directory`` with or without ``.gz`` (and the dotted variant)."""
    dotted = stem.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte
    candidates = [stem, stem + ".gz", dotted, dotted + ".gz"]
    for name in candidates:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"MNIST file {stem!r} not found in {directory} "
                            f"(tried {', '.join(candidates)})")


def load_mnist(directory: str | os.PathLike[str]) -> Dataset:
    """Load the full MNIST from its four IDX files.

    Parameters
    ----------
    directory : str or os.PathLike
        Directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally
        with a ``.gz`` suffix.

    Returns
    -------
    Dataset
        ``name="mnist"``, images ``uint8 (N, 1, 28, 28)``, labels ``int64``.

    Raises
    ------
    FileNotFoundError
        If the directory or one of the files is missing.
    ValueError
        If a file is malformed, images are not 28x28 ``uint8``, image and label
        counts disagree, or a label is outside ``0..9``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    paths = {key: _find_mnist_file(directory, stem) for key, stem in _MNIST_FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    splits = {}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        ipath, lpath = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"{ipath}: expected uint8 images of shape (N, 28, 28), "
                             f"got {images.dtype} {images.shape}")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(f"{lpath}: expected a 1-d uint8 label array, "
                             f"got {labels.dtype} {labels.shape}")
        if images.shape[0] == 0:
            raise ValueError(f"{ipath}: holds no images (the header says 0); a {split} set "
                             "needs at least one")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{ipath} holds {images.shape[0]} images but {lpath} "
                             f"holds {labels.shape[0]} labels")
        _check_labels(labels, str(lpath))
        splits[split] = (images[:, None, :, :], labels.astype(np.int64))
    names = ", ".join(p.name for p in paths.values())
    source = (f"MNIST IDX files in {directory} ({names}); "
              f"{splits['train'][0].shape[0]} train / {splits['test'][0].shape[0]} test")
    return Dataset("mnist", *splits["train"], *splits["test"], source=source)


# --------------------------------------------------------------------------------------
# CIFAR-10 (binary version)
# --------------------------------------------------------------------------------------


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes."""
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 file {path} not found")
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0 or size % _CIFAR_RECORD:
            raise ValueError(f"{path}: size {size} bytes is not a positive multiple of the "
                             f"{_CIFAR_RECORD}-byte CIFAR-10 record (1 label + 3072 pixels)")
        if size > CIFAR_MAX_RECORDS * _CIFAR_RECORD:
            raise ValueError(f"{path}: {size} bytes hold {size // _CIFAR_RECORD} records, more "
                             f"than the {CIFAR_MAX_RECORDS} of a CIFAR-10 batch file")
        content = handle.read(size + 1)
    if len(content) != size:
        raise ValueError(f"{path}: read {len(content)} bytes, expected {size} (the file "
                         "changed while it was read)")
    records = np.frombuffer(content, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    _check_labels(labels, str(path))
    # Pixels are stored as the 1024 red, then green, then blue values, each plane
    # row-major: that is already C x H x W.
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def load_cifar10(directory: str | os.PathLike[str]) -> Dataset:
    """Load the *binary* version of CIFAR-10.

    Parameters
    ----------
    directory : str or os.PathLike
        Directory holding ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
        ``test_batch.bin`` (or its parent, if that contains ``cifar-10-batches-bin``).

    Returns
    -------
    Dataset
        ``name="cifar10"``, images ``uint8 (N, 3, 32, 32)``, labels ``int64``
        (50,000 / 10,000 for the real data set).

    Raises
    ------
    FileNotFoundError
        If a batch file is missing.  If the directory holds the Python version
        (pickled ``data_batch_1`` etc.) the message says so: pickles are never loaded.
    ValueError
        If a file's size is not a positive multiple of 3073 bytes or a label is
        outside ``0..9``.
    """
    directory = Path(directory)
    if not (directory / _CIFAR_TRAIN_FILES[0]).exists() and \
            (directory / "cifar-10-batches-bin").is_dir():
        directory = directory / "cifar-10-batches-bin"
    if not directory.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory {directory} does not exist")
    names = (*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE)
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        hint = ""
        if (directory / "data_batch_1").exists() or \
                (directory / "cifar-10-batches-py").exists():
            hint = (" This looks like the Python (pickle) version of CIFAR-10, which is "
                    "never loaded; use the binary version (cifar-10-binary.tar.gz).")
        raise FileNotFoundError(f"CIFAR-10 binary files missing in {directory}: "
                                f"{', '.join(missing)}.{hint}")
    train = [_read_cifar_batch(directory / n) for n in _CIFAR_TRAIN_FILES]
    test_images, test_labels = _read_cifar_batch(directory / _CIFAR_TEST_FILE)
    train_images = np.concatenate([t[0] for t in train])
    train_labels = np.concatenate([t[1] for t in train])
    source = (f"CIFAR-10 binary files in {directory} ({', '.join(names)}); "
              f"{train_images.shape[0]} train / {test_images.shape[0]} test")
    return Dataset("cifar10", train_images, train_labels, test_images, test_labels,
                   source=source)


# --------------------------------------------------------------------------------------
# The embedded MNIST subset
# --------------------------------------------------------------------------------------


def load_mnist_small(path: str | os.PathLike[str] | None = None) -> Dataset:
    """Load the MNIST subset embedded in the package.

    It holds the first 20,000 training images of MNIST in their original order and
    the full 10,000-image test set (built by ``scripts/build_mnist_small.py``; see
    ``ul2q_ref/data/README.md`` for provenance and the CC BY-SA 3.0 licence).

    Parameters
    ----------
    path : str or os.PathLike, optional
        Alternative ``.npz`` file with the same layout (default: the embedded one).

    Returns
    -------
    Dataset
        ``name="mnist"``, images ``uint8 (N, 1, 28, 28)``, labels ``int64``.

    Raises
    ------
    ValueError
        If the file lacks a key or an array has the wrong dtype or shape.
    """
    path = MNIST_SMALL_PATH if path is None else Path(path)
    expected_n = {"train": MNIST_SMALL_TRAIN, "test": MNIST_SMALL_TEST}
    npz = read_npz(path)
    keys = set(npz)
    wanted = {f"{s}_{k}" for s in expected_n for k in ("images", "labels")}
    if keys != wanted:
        raise ValueError(f"{path}: expected arrays {sorted(wanted)}, found {sorted(keys)}")
    arrays = {key: npz[key] for key in wanted}
    splits = {}
    for split, n in expected_n.items():
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.shape != (n, 1, 28, 28):
            raise ValueError(f"{path}: {split}_images must be uint8 {(n, 1, 28, 28)}, "
                             f"got {images.dtype} {images.shape}")
        if labels.dtype != np.uint8 or labels.shape != (n,):
            raise ValueError(f"{path}: {split}_labels must be uint8 ({n},), "
                             f"got {labels.dtype} {labels.shape}")
        splits[split] = (images, labels.astype(np.int64))
    source = (f"mnist-small: {path.name}, first {MNIST_SMALL_TRAIN} MNIST training images "
              f"(original order) + all {MNIST_SMALL_TEST} test images; "
              "MNIST by Y. LeCun, C. Cortes, C. J. C. Burges, CC BY-SA 3.0")
    return Dataset("mnist", *splits["train"], *splits["test"], source=source)


# --------------------------------------------------------------------------------------
# --data parsing, normalisation, mini-batches
# --------------------------------------------------------------------------------------

_DATA_FORMS = "mnist-small, mnist:DIR, cifar10:DIR"


def load_dataset(spec: str) -> Dataset:
    """Load the dataset named by a ``--data`` command-line value.

    Parameters
    ----------
    spec : str
        ``"mnist-small"`` (embedded subset), ``"mnist:DIR"`` (full MNIST IDX files in
        DIR) or ``"cifar10:DIR"`` (CIFAR-10 binary version in DIR).  Only the first
        ``:`` separates the kind from the directory.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        For any other form; the message names ``--data`` and lists the accepted forms.
    """
    if spec == "mnist-small":
        return load_mnist_small()
    kind, sep, directory = spec.partition(":")
    loaders = {"mnist": load_mnist, "cifar10": load_cifar10}
    if not sep or kind not in loaders or not directory:
        raise ValueError(f"--data: unrecognised value {spec!r}; accepted forms are "
                         f"{_DATA_FORMS}")
    return loaders[kind](Path(directory).expanduser())


def to_float(images: np.ndarray, mean: float | Sequence[float],
             std: float | Sequence[float], scale: float = 1.0 / 255.0) -> np.ndarray:
    """Turn ``uint8`` NCHW images into normalised ``float32`` network input.

    Computes ``(images * scale - mean[c]) / std[c]`` for each channel ``c``.

    The trainer uses ``scale=1/255`` with the training-set statistics of
    :data:`NORMALISATION` (MNIST: mean 0.1307, std 0.3081), via
    :meth:`Dataset.to_float`.  Standardising gives zero-mean, unit-variance inputs,
    which lets plain SGD train the small networks quickly.  The original μL2Q Caffe
    LeNet instead only scales by 1/256; that is ``to_float(x, 0.0, 1.0, scale=1/256)``.

    Parameters
    ----------
    images : numpy.ndarray
        ``uint8`` array of shape ``(N, C, H, W)``.
    mean, std : float or sequence of float
        One value for all channels, or one per channel (length ``C``).
    scale : float, optional
        Factor applied to the raw pixel values first (default ``1/255``).

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(N, C, H, W)``.
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} "
                         f"{images.shape}")
    channels = images.shape[1]
    mean_a = np.broadcast_to(np.asarray(mean, dtype=np.float32), (channels,))
    std_a = np.broadcast_to(np.asarray(std, dtype=np.float32), (channels,))
    if np.any(std_a <= 0):
        raise ValueError(f"std must be positive, got {std}")
    out = images.astype(np.float32) * np.float32(scale)
    out -= mean_a.reshape(1, channels, 1, 1)
    out /= std_a.reshape(1, channels, 1, 1)
    return out


def iterate_minibatches(n: int, batch_size: int, rng: np.random.Generator | None = None,
                        shuffle: bool = True, drop_last: bool = False
                        ) -> Iterator[np.ndarray]:
    """Yield index arrays covering ``range(n)`` in mini-batches.

    Parameters
    ----------
    n : int
        Number of examples.
    batch_size : int
        Examples per batch (the last batch may be smaller unless ``drop_last``).
    rng : numpy.random.Generator, optional
        Source of the shuffling permutation; required when ``shuffle`` is true.  The
        same generator state always gives the same batches.
    shuffle : bool, optional
        Visit the examples in a random permutation (default) or in order.
    drop_last : bool, optional
        Skip a final batch smaller than ``batch_size``.

    Yields
    ------
    numpy.ndarray
        ``int64`` indices of one batch, e.g. for ``dataset.train_images[idx]``.
    """
    if n < 0 or batch_size < 1:
        raise ValueError(f"need n >= 0 and batch_size >= 1, got n={n}, "
                         f"batch_size={batch_size}")
    if shuffle:
        if rng is None:
            raise ValueError("shuffle=True needs an rng (numpy.random.Generator)")
        order = rng.permutation(n).astype(np.int64)
    else:
        order = np.arange(n, dtype=np.int64)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]
