"""Helpers shared by the sub-commands: errors, bit-width lists, array files."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import numpy as np

from .._validate import MAX_BITS
from ..io import FileFormatError, read_npy


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


def int_at_least(text: str, minimum: int, expected: str) -> int:
    """Parse an option's whole number n ≥ `minimum`.

    Anything else (not an integer, or n < `minimum`) is an argparse error
    ``expected <expected>, got '<text>'``, so `expected` says what the option takes.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def one_bit_width(text: str) -> int:
    """Parse a single bit width k, 1 to 16 (``--bits`` of quantize and train)."""
    widths = bit_widths(text)
    if len(widths) != 1:
        raise argparse.ArgumentTypeError(f"expected one bit width, got {text!r}")
    return widths[0]


def layer_bit_width(text: str) -> tuple[str, int]:
    """Parse ``LAYER=K`` (``--pin`` of plan, ``--layer-bits`` of train): a name and one k.

    The name is everything before the last ``=``; k is one bit width, 1 to 16
    (:func:`one_bit_width`).
    """
    name, _, bits = text.rpartition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"expected LAYER=K such as fc2=8, got {text!r}")
    return name, one_bit_width(bits)


def load_npy(path: str) -> np.ndarray:
    """Load a ``.npy`` array for a command, turning every failure into a CommandError."""
    try:
        return read_npy(path)
    except FileFormatError as error:
        raise CommandError(str(error)) from None


def check_output(path: str, force: bool) -> None:
    """Refuse to overwrite an existing file without ``--force``, or to write into nowhere."""
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{path}: is a directory; name the output file")
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        raise CommandError(f"{path}: exists and is not a regular file")
    if target.exists() and not force:
        raise CommandError(f"{path} exists; pass --force to overwrite it")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CommandError(f"{path}: directory {parent} is not writable")


def check_suffix(path: str, suffix: str, option: str) -> None:
    """Refuse an output name whose suffix says another format (``-o out.npy`` for an npz)."""
    actual = Path(path).suffix.lower()
    if actual != suffix:
        raise CommandError(f"{option} {path}: the output is a {suffix} file; name it "
                           f"{Path(path).with_suffix(suffix).name if actual else path + suffix}")
