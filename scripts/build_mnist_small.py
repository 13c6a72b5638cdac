"""Build ``ul2q_ref/data/mnist_small.npz``: a small, embeddable MNIST subset.

The file holds the FIRST 20,000 MNIST training images and labels in their original
order and ALL 10,000 test images and labels, as ``uint8`` arrays::

    train_images (20000, 1, 28, 28)   train_labels (20000,)
    test_images  (10000, 1, 28, 28)   test_labels  (10000,)

Usage::

    python scripts/build_mnist_small.py [--mnist-dir DIR] [--out PATH]

The sha256 of the four gzipped IDX files is checked before anything is built.  The
archive is written with fixed zip timestamps and attributes, so the output bytes are
identical on every run with the same zlib version (the arrays are identical always).

MNIST is by Y. LeCun, C. Cortes and C. J. C. Burges, licensed under Creative Commons
Attribution-Share Alike 3.0; the subset carries the same licence (see
``ul2q_ref/data/README.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ul2q_ref.nn.data import (  # noqa: E402
    MNIST_SMALL_PATH,
    MNIST_SMALL_TEST,
    MNIST_SMALL_TRAIN,
    default_mnist_dir,
    read_idx,
)

#: sha256 of the gzipped IDX files of the original MNIST distribution.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "db8f937d487057fb14a9f0fbe97f0bc8d311ab41b750d41e1ff37c43b9e55e19",
    "train-labels-idx1-ubyte.gz":
        "51fc562b6747b666fbf6e84ce29d43c3cb5f9c388c664d43b33f02095313405a",
    "t10k-images-idx3-ubyte.gz":
        "cfeddb84311ecf044fc6a5b0f6ee8a24d265d4e83e388400186eb114082f4209",
    "t10k-labels-idx1-ubyte.gz":
        "e41c74e484045d39b462a7790a4af51301bd9b0b24f0154798d713ec68c45920",
}

FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]

#: Fixed zip timestamp (the earliest the format allows) for reproducible bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksums(mnist_dir: Path) -> None:
    """Raise ``SystemExit`` unless all four .gz files exist with the expected sha256."""
    for name, expected in MNIST_SHA256.items():
        path = mnist_dir / name
        if not path.is_file():
            raise SystemExit(f"error: {path} not found (the gzipped MNIST files are needed)")
        actual = sha256_of(path)
        if actual != expected:
            raise SystemExit(f"error: sha256 mismatch for {path}:\n"
                             f"  expected {expected}\n  actual   {actual}")
        print(f"sha256 ok  {name}  {actual}")


def build_arrays(mnist_dir: Path) -> dict[str, np.ndarray]:
    """Read the IDX files and cut the subset (NCHW ``uint8`` images, ``uint8`` labels)."""
    train_images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    train_labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")
    test_images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    test_labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    if train_images.shape != (60_000, 28, 28) or train_labels.shape != (60_000,):
        raise SystemExit(f"error: unexpected training set shapes {train_images.shape}, "
                         f"{train_labels.shape}")
    if test_images.shape != (10_000, 28, 28) or test_labels.shape != (10_000,):
        raise SystemExit(f"error: unexpected test set shapes {test_images.shape}, "
                         f"{test_labels.shape}")
    if train_labels[:10].tolist() != FIRST_TRAIN_LABELS:
        raise SystemExit("error: the training set is not in the original order")
    return {
        "train_images": np.ascontiguousarray(train_images[:MNIST_SMALL_TRAIN, None]),
        "train_labels": np.ascontiguousarray(train_labels[:MNIST_SMALL_TRAIN]),
        "test_images": np.ascontiguousarray(test_images[:MNIST_SMALL_TEST, None]),
        "test_labels": np.ascontiguousarray(test_labels[:MNIST_SMALL_TEST]),
    }


def save_npz_reproducible(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays like ``np.savez_compressed``, but with reproducible bytes.

    ``np.savez_compressed`` stamps each zip member with the current time; here every
    member gets the same fixed timestamp and attributes, and members are written in
    sorted order.  The file is written to a temporary name and renamed into place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                             compresslevel=9) as zf:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, whatever the host
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arrays[key], allow_pickle=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist-dir", type=Path, default=None,
                        help="directory with the four MNIST .gz files "
                             "(default: $UL2Q_MNIST_DIR)")
    parser.add_argument("--out", type=Path, default=MNIST_SMALL_PATH,
                        help=f"output .npz (default: {MNIST_SMALL_PATH})")
    args = parser.parse_args(argv)
    try:
        mnist_dir = (args.mnist_dir or default_mnist_dir()).resolve()
    except ValueError as error:  # neither --mnist-dir nor UL2Q_MNIST_DIR
        parser.error(str(error).replace("--data mnist:DIR", "--mnist-dir DIR"))

    verify_checksums(mnist_dir)
    arrays = build_arrays(mnist_dir)
    save_npz_reproducible(args.out, arrays)

    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {sha256_of(args.out)})")
    for key in sorted(arrays):
        array = arrays[key]
        print(f"  {key:13s} {array.dtype} {array.shape}  "
              f"content sha256 {hashlib.sha256(array.tobytes()).hexdigest()}")
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"{split}_labels"], minlength=10)
        print(f"  {split} class counts (0..9): {' '.join(str(int(c)) for c in counts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
