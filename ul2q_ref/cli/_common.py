"""Helpers shared by the sub-commands: errors, bit-width lists, array files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from .._validate import MAX_BITS


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def bit_widths(text: str) -> list[int]:
    """Parse ``--bits``: ``K``, ``A-B`` or a comma-separated mix such as ``1-4,8,16``."""
    widths: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(end) for end in part.split("-", 1))
                if low > high:
                    raise ValueError
                widths.extend(range(low, high + 1))
            else:
                widths.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected K, A-B or a comma-separated list such as 1-4,8 (got {text!r})"
            ) from None
    bad = [k for k in widths if not 1 <= k <= MAX_BITS]
    if bad:
        raise argparse.ArgumentTypeError(f"bit widths must be 1 to {MAX_BITS}, got {bad[0]}")
    return sorted(set(widths))


def load_npy(path: str) -> np.ndarray:
    """Load a ``.npy`` array for a command, turning every failure into a CommandError."""
    file = Path(path)
    if not file.exists():
        raise CommandError(f"{path}: no such file")
    if file.is_dir():
        raise CommandError(f"{path}: is a directory, expected a .npy file")
    with open(file, "rb") as handle:
        magic = handle.read(6)
    if magic[:4] == b"PK\x03\x04":
        raise CommandError(f"{path}: is an .npz archive; pass a single-array .npy file")
    if magic != b"\x93NUMPY":
        raise CommandError(f"{path}: not a .npy file (it does not start with the NumPy header)")
    try:
        array = np.load(file, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise CommandError(
                f"{path}: holds Python objects (a pickled array), which are never loaded; "
                "save a numeric array"
            ) from None
        raise CommandError(f"{path}: not a readable .npy file ({error})") from None
    except (OSError, EOFError) as error:
        raise CommandError(f"{path}: cannot be read as a .npy file ({error})") from None
    return array


def check_output(path: str, force: bool) -> None:
    """Refuse to overwrite an existing file without ``--force``, or to write into nowhere."""
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{path}: is a directory; name the output file")
    if target.exists() and not force:
        raise CommandError(f"{path} exists; pass --force to overwrite it")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CommandError(f"{path}: directory {parent} is not writable")
