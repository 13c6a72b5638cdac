"""Files: checked readers of ``.npy``/``.npz``, atomic writers, and saved quantised tensors.

Readers
    :func:`read_npy`, :func:`read_npz` and :func:`read_npy_bytes` never unpickle, refuse
    anything that is not a regular file (a FIFO would block forever, a directory is a
    mistake), and compare the sizes a header claims with the bytes actually present *before*
    allocating: a ``.npy`` header's shape × itemsize must equal the file's payload; an
    ``.npz`` member's uncompressed size is capped (:data:`MAX_MEMBER_BYTES`) and so is its
    compression ratio (:data:`MAX_RATIO`), so a lying header or a decompression bomb is a
    one-line :class:`FileFormatError` naming the file, not a MemoryError.

    :func:`npy_info`, :func:`npz_members` and :func:`read_npz_member` read headers and single
    members with the same checks, so a model file is read one tensor at a time. These are
    the package's only ``.npy``/``.npz`` readers, with one set of limits.

Writers
    :func:`save_npz_atomic`, :func:`npz_writer` (member by member) and
    :func:`write_text_atomic` go through :mod:`ul2q_ref._atomic`, the one atomic writer: a
    failure (disk full, interrupt, SIGTERM) keeps the previous file and removes the
    temporary one, and files get the permissions the umask allows (0644 under umask 022).

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

import contextlib
import errno
import os
import stat
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._atomic import atomic_path, current_umask, write_text_atomic
from .codebook import Quantized, check_quantized_parts

FORMAT = "ul2q-ref/quantized-v2"
"""The format of files written by :func:`save_quantized`."""

READABLE_FORMATS = ("ul2q-ref/quantized-v1", FORMAT)
"""Every format :func:`load_quantized` reads (v1: written by ul2q-ref 0.1.0, no profile)."""

DTYPES = ("<f2", "<f4", "<f8", ">f2", ">f4", ">f8", "=f2", "=f4", "=f8", "|f2", "|f4", "|f8")
"""The reconstruction dtypes a quantised tensor may name (float16, float32, float64)."""

PROFILES = ("exact", "paper", "caffe")
"""The profiles a quantised tensor may name (:mod:`ul2q_ref.profiles`)."""

MAX_MEMBER_BYTES = 1 << 34
"""The largest uncompressed ``.npz`` member any reader accepts by default (16 GiB): the one
limit of every ``.npy``/``.npz`` reader of the package, model files included."""

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
            # 3.0 (utf-8 headers) has no public reader; numpy's own private one parses it
            shape, fortran, dtype = fmt._read_array_header(  # type: ignore[attr-defined]
                handle, version)
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


def _read_array(handle: IO[bytes], shape: tuple[int, ...], fortran: bool, dtype: np.dtype,
                source: str) -> np.ndarray:
    """Read exactly shape × itemsize bytes of `handle` into one new array (no extra copy)."""
    array = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
    if array.size:
        read_into(handle, array.reshape(-1).view(np.uint8).data, source)
    return array.T if fortran else array


def read_into(handle: IO[bytes], view: memoryview, source: str) -> None:
    """Fill `view` from `handle` (as many reads as it takes); FileFormatError naming
    `source` if the data ends first."""
    filled = 0
    while filled < len(view):
        count = handle.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            raise FileFormatError(f"{source}: truncated: expected {len(view)} bytes of data, "
                                  f"got {filled}")
        filled += count


def _array_from(data: bytes | bytearray, shape: tuple[int, ...], fortran: bool,
                dtype: np.dtype) -> np.ndarray:
    array = np.frombuffer(bytearray(data), dtype=dtype) if data else np.empty(0, dtype)
    return array.reshape(shape, order="F" if fortran else "C")


@dataclass(frozen=True)
class ArrayInfo:
    """What a ``.npy`` header (of a file or an ``.npz`` member) says: checked, not read."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool


def npy_info(path: str | os.PathLike[str]) -> ArrayInfo:
    """The header of the ``.npy`` file `path`, checked against the file's size (no data read).

    Raises FileNotFoundError or :class:`FileFormatError` as :func:`read_npy` does.
    """
    source = os.fspath(path)
    with open_regular(path) as handle:
        shape, fortran, dtype = _checked_npy_header(handle, source)
    return ArrayInfo(Path(source).stem, shape, dtype, fortran)


def _checked_npy_header(handle: IO[bytes], source: str) -> tuple[tuple[int, ...], bool,
                                                                 np.dtype]:
    head = handle.read(6)
    if head[:4] == b"PK\x03\x04":
        raise FileFormatError(f"{source}: is an .npz archive; pass a single-array .npy file")
    if head != b"\x93NUMPY":
        raise FileFormatError(f"{source}: not a .npy file (it does not start with the NumPy "
                              "header)")
    handle.seek(0)
    shape, fortran, dtype = _npy_header(handle, source)
    expected = _payload_size(shape, dtype)
    actual = os.fstat(handle.fileno()).st_size - handle.tell()
    if actual != expected:
        raise FileFormatError(
            f"{source}: the header claims {dtype} {shape} ({expected} bytes) but the file "
            f"holds {actual} bytes of data ({'truncated' if actual < expected else 'extra data'})"
        )
    return shape, fortran, dtype


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ``.npy`` file after checking that its header matches its size.

    The data is read straight into the one array returned (peak memory: the array).

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
        shape, fortran, dtype = _checked_npy_header(handle, source)
        return _read_array(handle, shape, fortran, dtype, source)


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


@contextlib.contextmanager
def _open_npz(path: str | os.PathLike[str]) -> Iterator[zipfile.ZipFile]:
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
            yield archive


def _member_name(info: zipfile.ZipInfo) -> str:
    return info.filename[:-4] if info.filename.endswith(".npy") else info.filename


def npz_members(path: str | os.PathLike[str], *, max_member_bytes: int = MAX_MEMBER_BYTES,
                max_ratio: float = MAX_RATIO) -> list[ArrayInfo]:
    """The checked header of every member of an ``.npz`` archive, reading no array data.

    Every member passes the size checks of :func:`read_npz` (uncompressed size, compression
    ratio, ``.npy`` header against the member's size) before this returns.
    """
    source = os.fspath(path)
    found = []
    with _open_npz(path) as archive:
        for info in archive.infolist():
            _check_member(info, source, max_member_bytes, max_ratio)
        for info in archive.infolist():
            name = _member_name(info)
            where = f"{source}: member {name!r}"
            try:
                with archive.open(info) as member:
                    shape, fortran, dtype = _member_header(member, info, where)
            except FileFormatError:
                raise
            except Exception as error:  # noqa: BLE001 - zipfile/zlib raise many types
                raise FileFormatError(f"{where}: unreadable ({_first_line(error)})") from None
            found.append(ArrayInfo(name, shape, dtype, fortran))
    return found


def read_npz_member(path: str | os.PathLike[str], name: str, *,
                    max_member_bytes: int = MAX_MEMBER_BYTES,
                    max_ratio: float = MAX_RATIO) -> np.ndarray:
    """One array of an ``.npz`` archive (member ``NAME.npy``), with every check of
    :func:`read_npz`; only that member is read."""
    source = os.fspath(path)
    with _open_npz(path) as archive:
        try:
            info = archive.getinfo(f"{name}.npy")
        except KeyError:
            try:
                info = archive.getinfo(name)
            except KeyError:
                raise FileFormatError(f"{source}: has no member {name!r}") from None
        _check_member(info, source, max_member_bytes, max_ratio)
        return _read_member(archive, info, f"{source}: member {name!r}")


def read_npz(path: str | os.PathLike[str], *, max_member_bytes: int = MAX_MEMBER_BYTES,
             max_ratio: float = MAX_RATIO) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` archive, checking sizes before reading any.

    Each member's uncompressed size must be at most `max_member_bytes` and, above 1 MiB, at
    most `max_ratio` times its compressed size; each member's ``.npy`` header must match its
    size exactly. CRC errors, truncation and bad headers are :class:`FileFormatError`.
    """
    source = os.fspath(path)
    with _open_npz(path) as archive:
        members = archive.infolist()
        for info in members:
            _check_member(info, source, max_member_bytes, max_ratio)
        arrays: dict[str, np.ndarray] = {}
        for info in members:
            name = _member_name(info)
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


def check_zip_members(path: str | os.PathLike[str]) -> None:
    """The size checks of :func:`read_npz` on every member of any zip archive (e.g. a
    PyTorch file), before a library inflates it; FileFormatError naming `path`."""
    source = os.fspath(path)
    with open_regular(path) as handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise FileFormatError(f"{source}: not a readable zip archive "
                                  f"({_first_line(error)})") from None
        with archive:
            for info in archive.infolist():
                _check_member(info, source, MAX_MEMBER_BYTES, MAX_RATIO)


def _member_header(member: IO[bytes], info: zipfile.ZipInfo, source: str
                   ) -> tuple[tuple[int, ...], bool, np.dtype]:
    shape, fortran, dtype = _npy_header(member, source)
    expected = _payload_size(shape, dtype)
    header_size = member.tell()
    if info.file_size - header_size != expected:
        raise FileFormatError(
            f"{source}: the header claims {expected} bytes of data, the member holds "
            f"{info.file_size - header_size}")
    return shape, fortran, dtype


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> np.ndarray:
    try:
        with archive.open(info) as member:
            shape, fortran, dtype = _member_header(member, info, source)
            array = _read_array(member, shape, fortran, dtype, source)
            member.read(1)  # reach the end, where zipfile checks the CRC
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as error:  # zlib.error is an Exception subclass handled below
        raise FileFormatError(f"{source}: unreadable ({_first_line(error)})") from None
    except Exception as error:  # noqa: BLE001 - zlib.error, lzma/bz2: corrupt data
        raise FileFormatError(f"{source}: corrupt data ({_first_line(error)})") from None
    return array


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


# --------------------------------------------------------------------------- writing


def save_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` to `path` as an uncompressed ``.npz``, atomically.

    Written member by member through :func:`npz_writer` (the one atomic writer of
    :mod:`ul2q_ref._atomic`): a crash leaves either the old file or the new one, never a
    truncated file, and a failed write removes the temporary file. `path` is used exactly
    as given (no ``.npz`` is appended). Raises OSError naming `path`.
    """
    with npz_writer(path) as add:
        for name, array in arrays.items():
            add(name, array)


@contextlib.contextmanager
def npz_writer(path: str | os.PathLike[str]) -> Iterator[Callable[[str, Any], None]]:
    """Yield ``add(name, array)`` that appends one array to an ``.npz`` written atomically.

    The archive is built in a temporary file beside `path` (uncompressed, ZIP64 so that
    members may exceed 4 GiB), one member at a time, so a model can be written while only
    one of its tensors is in memory; on success it replaces `path` (``os.replace``), on any
    error it is removed. Arrays are written with ``allow_pickle=False``.
    """
    with atomic_path(path) as temporary, \
            zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:

        def add(name: str, array: Any) -> None:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

        yield add


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
    std = getattr(quantized, "std", None)  # a profile's result (ProfileQuantized) keeps σ
    if std is not None:
        arrays["std"] = np.asarray(std, dtype=np.float64)
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
    if profile not in PROFILES or (profile != "exact" and scheme != "ul2q"):
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
        if text not in DTYPES:
            raise ValueError(f"{source}: dtype must be float16, float32 or float64, got "
                             f"{text[:40]!r}")
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
        std = np.asarray(arrays["std"])
        if std.dtype.kind != "f" or std.shape != alpha.shape:
            raise ValueError(f"{source}: std must be floats shaped like alpha {alpha.shape}, "
                             f"got {std.dtype} {std.shape}")
        std = std.astype(np.float64)
    _check_nan_alpha(codes, alpha, std, axis, profile, source)
    if std is not None:
        std = std if axis is not None else np.float64(std.reshape(-1)[0])
    return ProfileQuantized(**fields, profile=profile, std=std)


def _check_nan_alpha(codes: np.ndarray, alpha: np.ndarray, std: np.ndarray | None,
                     axis: int | None, profile: str, source: str) -> None:
    """A NaN α is the caffe profile's mark of a channel whose float32 variance came out
    negative: σ is NaN there too and every code of that channel is 0 (its ŵ is NaN, as in
    Caffe). Anything else with a NaN α is a tampered file."""
    nan = np.isnan(alpha.reshape(-1))
    if not nan.any():
        return
    if std is None or not np.array_equal(nan, np.isnan(std.reshape(-1))):
        raise ValueError(f"{source}: alpha is NaN where std is not (a {profile} result has a "
                         "NaN alpha only where its float32 variance was negative)")
    if axis is None:
        stray = bool(np.any(codes != 0))
    else:
        rows = np.moveaxis(codes, axis, 0)
        stray = any(bool(np.any(rows[i] != 0)) for i in np.flatnonzero(nan))
    if stray:
        raise ValueError(f"{source}: codes must be 0 where alpha is NaN")


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


__all__ = ["DTYPES", "FORMAT", "MAX_MEMBER_BYTES", "MAX_RATIO", "PROFILES", "READABLE_FORMATS",
           "ArrayInfo", "FileFormatError", "check_zip_members", "current_umask",
           "load_quantized", "npy_info", "npz_members", "npz_writer", "open_regular",
           "quantized_arrays", "quantized_from_arrays", "read_into", "read_npy", "read_npy_bytes",
           "read_npz", "read_npz_member", "save_npz_atomic", "save_quantized",
           "write_text_atomic"]
