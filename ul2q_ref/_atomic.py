"""The one atomic file writer: every JSON and model file ul2q-ref writes goes through here.

A file is written to a uniquely named temporary file in the target's directory, flushed and
``fsync``-ed, given the mode the umask allows (0644 under umask 022, like any file the user
creates with ``open``), and renamed over the target in one step (``os.replace``). A crash,
a full disk, Ctrl-C or SIGTERM therefore leaves either the old file or the new one, never a
truncated file, and the temporary file is removed on every failure.

:func:`atomic_path` yields the temporary path for writers that need a file name (a zip
writer, a library's ``save_file``); :func:`write_atomic` passes an open binary handle;
:func:`write_text_atomic` writes a string.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


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


def _fail(error: OSError, target: Path) -> OSError:
    return OSError(error.errno or errno.EIO, f"cannot write: {error.strerror or error}",
                   str(target))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    The body writes the file (by name) at the yielded path. On normal exit the file gets
    the umask's mode (``0o666 & ~umask``), is fsync-ed and renamed onto `path`; on any
    exception it is removed and the exception propagates (an OSError is re-raised naming
    `path`).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        descriptor, name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.",
                                            suffix=".tmp")
    except OSError as error:
        raise _fail(error, target) from None
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fchmod(descriptor, 0o666 & ~current_umask())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _fail(error, target) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(handle)`` on a binary handle whose content atomically becomes `path`."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        write(handle)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (see the module docstring)."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


__all__ = ["atomic_path", "current_umask", "write_atomic", "write_text_atomic"]
