"""Files: checked readers of ``.npy``/``.npz``, atomic writers, and saved quantised tensors.

Readers
    :func:`read_npy`, :func:`read_npz` and :func:`read_npy_bytes` never unpickle, refuse
    anything that is not a regular file (a FIFO would block forever, a directory is a
    mistake), and compare the sizes a header claims with the bytes actually present *before*
    allocating: a ``.npy`` header's shape × itemsize must equal the file's payload; an
    ``.npz`` member's uncompressed size is capped (:data:`MAX_MEMBER_BYTES`) and so is its
    compression ratio (:data:`MAX_RATIO`), so a lying header or a decompression bomb is a
    one-line :class:`FileFormatError` naming the file, not a MemoryError.

Writers
    :func:`save_npz_atomic` and :func:`write_text_atomic` write to a uniquely named temporary
    file beside the target and rename it into place: a failure (disk full, interrupt,
    SIGTERM) keeps the previous file and removes the temporary one. Files get the
    permissions the umask allows (0644 under umask 022), like any other file the user
    creates.

Quantised tensors
    :func:`save_quantized` writes the arrays ``codes``, ``alpha``, ``beta`` and the 0-d arrays
    ``zero_point``, ``bits``, ``scheme``, ``dtype``, ``format``, ``profile`` and, for μL2Q,
    ``lam`` (and ``std`` for a result made under a non-exact profile); ``axis`` is present
    only for per-channel results. The format is ``ul2q-ref/quantized-v2``; v2 added
    ``profile`` and ``std`` so that a ``caffe`` result reloads and decodes as it was made.
    Files of v1 (no profile: the exact one) still load. :func:`load_quantized` validates
    everything (:func:`check_quantized_parts`). Everything loads with
    ``numpy.load(path, allow_pickle=False)`` too, so any NumPy program can read a file.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .codebook import Quantized, check_quantized_parts

FORMAT = "ul2q-ref/quantized-v2"
"""The format of files written by :func:`save_quantized`."""

READABLE_FORMATS = ("ul2q-ref/quantized-v1", FORMAT)
"""Every format :func:`load_quantized` reads (v1: written by ul2q-ref 0.1.0, no profile)."""

MAX_MEMBER_BYTES = 1 << 30
"""The largest uncompressed ``.npz`` member :func:`read_npz` reads by default (1 GiB)."""

MAX_RATIO = 100
"""The largest compression ratio of an ``.npz`` member above 1 MiB (a decompression bomb)."""

class FileFormatError(ValueError):
    """A file that cannot be read as what it should be; the message names the file."""


# --------------------------------------------------------------------------- reading


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open `path` for reading, refusing anything but a regular file, without blocking.

    Raises FileNotFoundError (naming the file) when it is missing and FileFormatError
    for a directory, FIFO, device or unreadable file.

    ``O_NONBLOCK`` makes opening a FIFO return at once (instead of waiting for a writer), so
    that it can be refused; it has no effect on a regular file.
    """
    name = os.fspath(path)
    try:
        descriptor = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such file", name) from None
    except IsADirectoryError:
        raise FileFormatError(f"{name}: is a directory, expected a file") from None
    except OSError as error:
        raise FileFormatError(f"{name}: cannot open ({error.strerror})") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else (
            "a FIFO" if stat.S_ISFIFO(info.st_mode) else "not a regular file")
        raise FileFormatError(f"{name}: is {kind}, expected a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def _npy_header(handle: IO[bytes], source: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Read a ``.npy`` magic and header from `handle`; return (shape, fortran order, dtype)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(handle)
        else:
            shape, fortran, dtype = fmt._read_array_header(handle, version)  # 3.0: utf-8
    except Exception as error:  # noqa: BLE001 - the header parser raises many types
        # (ValueError, SyntaxError, tokenize.TokenError, BadZipFile, EOFError, ...)
        raise FileFormatError(
            f"{source}: not a readable .npy file ({_first_line(error)})") from None
    if dtype.hasobject:
        raise FileFormatError(f"{source}: holds Python objects (a pickled array), which are "
                              "never loaded; save a numeric array")
    if any(int(n) < 0 for n in shape):
        raise FileFormatError(f"{source}: .npy header has a negative dimension {shape}")
    return tuple(int(n) for n in shape), bool(fortran), dtype


def _payload_size(shape: tuple[int, ...], dtype: np.dtype) -> int:
    count = 1
    for n in shape:
        count *= n  # Python ints: cannot overflow
    return count * dtype.itemsize


def _array_from(data: bytes | bytearray, shape: tuple[int, ...], fortran: bool,
                dtype: np.dtype) -> np.ndarray:
    array = np.frombuffer(bytearray(data), dtype=dtype) if data else np.empty(0, dtype)
    return array.reshape(shape, order="F" if fortran else "C")


def _read_exactly(handle: IO[bytes], size: int, source: str) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise FileFormatError(f"{source}: truncated: expected {size} bytes of data, "
                              f"got {len(data)}")
    return data


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ``.npy`` file after checking that its header matches its size.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist (the message names it).
    FileFormatError
        Directory, FIFO, not a ``.npy``, object dtype, or a header whose
        shape × itemsize differs from the bytes in the file (truncated, padded, or a header
        claiming far more than the file holds). The message names the file.
    """
    source = os.fspath(path)
    with open_regular(path) as handle:
        head = handle.read(6)
        if head[:4] == b"PK\x03\x04":
            raise FileFormatError(f"{source}: is an .npz archive; pass a single-array .npy "
                                  "file")
        if head != b"\x93NUMPY":
            raise FileFormatError(f"{source}: not a .npy file (it does not start with the "
                                  "NumPy header)")
        handle.seek(0)
        shape, fortran, dtype = _npy_header(handle, source)
        expected = _payload_size(shape, dtype)
        actual = os.fstat(handle.fileno()).st_size - handle.tell()
        if actual != expected:
            raise FileFormatError(
                f"{source}: the header claims {dtype} {shape} ({expected} bytes) but the file "
                f"holds {actual} bytes of data "
                f"({'truncated' if actual < expected else 'extra data'})"
            )
        return _array_from(_read_exactly(handle, expected, source), shape, fortran, dtype)


def read_npy_bytes(content: bytes, source: str) -> np.ndarray:
    """Read a ``.npy`` held in memory (`content`), with the checks of :func:`read_npy`."""
    import io

    handle = io.BytesIO(content)
    shape, fortran, dtype = _npy_header(handle, source)
    expected = _payload_size(shape, dtype)
    actual = len(content) - handle.tell()
    if actual != expected:
        raise FileFormatError(f"{source}: the header claims {expected} bytes of data, the "
                              f"file holds {actual}")
    return _array_from(content[handle.tell():], shape, fortran, dtype)


def read_npz(path: str | os.PathLike[str], *, max_member_bytes: int = MAX_MEMBER_BYTES,
             max_ratio: float = MAX_RATIO) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` archive, checking sizes before reading any.

    Each member's uncompressed size must be at most `max_member_bytes` and, above 1 MiB, at
    most `max_ratio` times its compressed size; each member's ``.npy`` header must match its
    size exactly. CRC errors, truncation and bad headers are :class:`FileFormatError`.
    """
    source = os.fspath(path)
    with open_regular(path) as handle:
        if handle.read(6) == b"\x93NUMPY":
            raise FileFormatError(f"{source}: is a single .npy array, not an .npz archive")
        handle.seek(0)
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise FileFormatError(
                f"{source}: not a readable .npz archive ({_first_line(error)})") from None
        with archive:
            members = archive.infolist()
            for info in members:
                _check_member(info, source, max_member_bytes, max_ratio)
            arrays: dict[str, np.ndarray] = {}
            for info in members:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                arrays[name] = _read_member(archive, info, f"{source}: member {name!r}")
    return arrays


def _check_member(info: zipfile.ZipInfo, source: str, max_bytes: int, max_ratio: float) -> None:
    if info.file_size > max_bytes:
        raise FileFormatError(f"{source}: member {info.filename!r} claims {info.file_size} "
                              f"bytes, more than the limit of {max_bytes}")
    if info.file_size > (1 << 20) and info.file_size > max_ratio * max(info.compress_size, 1):
        raise FileFormatError(
            f"{source}: member {info.filename!r} expands {info.compress_size} bytes to "
            f"{info.file_size} (ratio above {max_ratio:g}); refusing a likely zip bomb"
        )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> np.ndarray:
    try:
        with archive.open(info) as member:
            shape, fortran, dtype = _npy_header(member, source)
            expected = _payload_size(shape, dtype)
            header_size = member.tell()
            if info.file_size - header_size != expected:
                raise FileFormatError(
                    f"{source}: the header claims {expected} bytes of data, the member holds "
                    f"{info.file_size - header_size}")
            data = _read_exactly(member, expected, source)
            member.read(1)  # reach the end, where zipfile checks the CRC
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as error:  # zlib.error is an Exception subclass handled below
        raise FileFormatError(f"{source}: unreadable ({_first_line(error)})") from None
    except Exception as error:  # zlib.error, lzma/bz2 errors: corrupt compressed data
        raise FileFormatError(f"{source}: corrupt data ({_first_line(error)})") from None
    return _array_from(data, shape, fortran, dtype)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


# --------------------------------------------------------------------------- writing


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.",
                                                 suffix=".tmp")
    except OSError as error:
        raise OSError(error.errno, f"cannot write: {error.strerror}", str(target)) from None
    try:
        os.fchmod(descriptor, 0o666 & ~current_umask())
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno or errno.EIO, f"cannot write: {error.strerror or error}",
                      str(target)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` to `path` as an uncompressed ``.npz``, atomically.

    The data goes to a uniquely named temporary file in the same directory, which then
    replaces `path` in one step (``os.replace``): a crash leaves either the old file or the
    new one, never a truncated file, and a failed write removes the temporary file. `path` is
    used exactly as given (no ``.npz`` is appended). Raises OSError naming `path`.
    """
    _write_atomic(path, lambda handle: np.savez(handle, **arrays))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically, like :func:`save_npz_atomic`."""
    _write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


# --------------------------------------------------------------------------- quantised tensors

def quantized_arrays(quantized: Quantized) -> dict[str, np.ndarray]:
    """The arrays that describe `quantized`, as stored by :func:`save_quantized`."""
    profile = getattr(quantized, "profile", "exact")
    check_quantized_parts(quantized.codes, quantized.alpha, quantized.beta,
                          quantized.zero_point, quantized.bits, quantized.axis,
                          quantized.scheme, allow_nan_alpha=profile == "caffe",
                          source="cannot save this result")
    arrays = {
        "format": np.array(FORMAT),
        "codes": quantized.codes,
        "alpha": np.asarray(quantized.alpha, dtype=np.float64),
        "beta": np.asarray(quantized.beta, dtype=np.float64),
        "zero_point": np.array(quantized.zero_point, dtype=np.float64),
        "bits": np.array(quantized.bits, dtype=np.int64),
        "scheme": np.array(quantized.scheme),
        "dtype": np.array(quantized.dtype.str),
        "profile": np.array(profile),
    }
    if quantized.lam is not None:
        arrays["lam"] = np.array(quantized.lam, dtype=np.float64)
    if quantized.axis is not None:
        arrays["axis"] = np.array(quantized.axis, dtype=np.int64)
    if getattr(quantized, "std", None) is not None:
        arrays["std"] = np.asarray(quantized.std, dtype=np.float64)
    return arrays


def _scalar(arrays: Any, key: str, kind: str, source: str) -> Any:
    value = np.asarray(arrays[key])
    if value.shape != () or value.dtype.kind not in kind:
        raise ValueError(f"{source}: {key} must be a single "
                         f"{'string' if kind == 'U' else 'number'}, got {value.dtype} "
                         f"{value.shape}")
    return value.item()


def quantized_from_arrays(arrays: Any, source: str = "the arrays") -> Quantized:
    """Rebuild a :class:`Quantized` from the mapping written by :func:`quantized_arrays`.

    Checks the format, every field's type and shape, and the consistency rules of
    :func:`check_quantized_parts`; raises ValueError naming `source` and the field.
    """
    missing = [key for key in ("codes", "alpha", "beta", "zero_point", "bits", "scheme")
               if key not in arrays]
    if missing:
        raise ValueError(f"{source} is not a quantised tensor: missing {', '.join(missing)}")
    fmt = _scalar(arrays, "format", "U", source) if "format" in arrays else READABLE_FORMATS[0]
    if fmt not in READABLE_FORMATS:
        raise ValueError(f"{source}: format {fmt!r} is not supported (this version reads "
                         f"{', '.join(READABLE_FORMATS)})")
    scheme = _scalar(arrays, "scheme", "U", source)
    bits = _scalar(arrays, "bits", "iu", source)
    zero_point = float(_scalar(arrays, "zero_point", "fiu", source))
    axis = int(_scalar(arrays, "axis", "iu", source)) if "axis" in arrays else None
    profile = _scalar(arrays, "profile", "U", source) if "profile" in arrays else "exact"
    if profile not in ("exact", "paper", "caffe") or (profile != "exact" and scheme != "ul2q"):
        raise ValueError(f"{source}: profile {profile!r} is not valid for scheme {scheme!r}")
    codes = np.asarray(arrays["codes"])
    alpha = np.asarray(arrays["alpha"])
    beta = np.asarray(arrays["beta"])
    check_quantized_parts(codes, alpha, beta, zero_point, bits, axis, scheme,
                          allow_nan_alpha=profile == "caffe", source=source)
    if codes.dtype.itemsize > 4:
        raise ValueError(f"{source}: codes must be int8, int16 or int32, got {codes.dtype}")
    lam = None
    if "lam" in arrays:
        lam = float(_scalar(arrays, "lam", "f", source))
        if not (np.isfinite(lam) and lam > 0):
            raise ValueError(f"{source}: lam must be finite and > 0, got {lam}")
    dtype = np.dtype(np.float64)
    if "dtype" in arrays:
        text = _scalar(arrays, "dtype", "U", source)
        if text not in ("<f4", "<f8", ">f4", ">f8", "=f4", "=f8", "|f4", "|f8"):
            raise ValueError(f"{source}: dtype must be float32 or float64, got {text!r}")
        dtype = np.dtype(text).newbyteorder("=")
    alpha = alpha.astype(np.float64)
    beta = beta.astype(np.float64)
    fields: dict[str, Any] = {
        "codes": codes,
        "alpha": alpha if axis is not None else np.float64(alpha.reshape(-1)[0]),
        "beta": beta if axis is not None else np.float64(beta.reshape(-1)[0]),
        "zero_point": zero_point, "bits": int(bits), "lam": lam, "axis": axis,
        "scheme": scheme, "dtype": dtype,
    }
    if profile == "exact":
        return Quantized(**fields)
    from .profiles import ProfileQuantized

    std = None
    if "std" in arrays:
        std = np.asarray(arrays["std"], dtype=np.float64)
        std = std if axis is not None else np.float64(std.reshape(-1)[0])
    return ProfileQuantized(**fields, profile=profile, std=std)


def save_quantized(path: str | os.PathLike[str], quantized: Quantized) -> None:
    """Save `quantized` to `path` (``.npz``, written atomically; its profile included)."""
    save_npz_atomic(path, quantized_arrays(quantized))


def load_quantized(path: str | os.PathLike[str]) -> Quantized:
    """Load and validate a :class:`Quantized` written by :func:`save_quantized`.

    Raises
    ------
    FileFormatError
        For a file that is unreadable, truncated, corrupted, not ul2q-ref's format, or whose
        parts are inconsistent (codes out of range, NaN α, unknown scheme, ...).
    """
    arrays = read_npz(path)
    try:
        return quantized_from_arrays(arrays, source=os.fspath(path))
    except ValueError as error:
        raise FileFormatError(str(error)) from None
