"""Options and helpers shared by the model commands (inspect, plan, quantize MODEL)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._atomic import write_text_atomic
from ..weights import Model, ModelFileError, inspect_tensors, read_model, select_weights
from ..weights.tensors import Tensor
from ._common import CommandError, int_at_least, usable_cores

MODEL_HELP = (".npz (arrays, checkpoint, integer or quantised model), .npy, .safetensors, "
              ".pt/.pth/.bin/.ckpt (PyTorch, weights_only) or .onnx")


def add_selection(parser: argparse.ArgumentParser) -> None:
    """``--include`` and ``--exclude`` patterns."""
    parser.add_argument("--include", action="append", default=[], metavar="PATTERN",
                        help="select exactly the float tensors whose name matches (fnmatch, "
                             "repeatable) instead of the default conv and linear weights")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="leave out the tensors whose name matches (repeatable)")


def jobs_value(text: str) -> int:
    """Parse ``--jobs``: ``auto`` (every usable core) or a positive integer."""
    if text.strip().lower() == "auto":
        return usable_cores()
    return int_at_least(text, 1, "'auto' or a positive number of threads")


def add_jobs(parser: argparse.ArgumentParser) -> None:
    """``--jobs N|auto``: threads that measure each tensor's bit widths side by side."""
    parser.add_argument("--jobs", type=jobs_value, default="auto", metavar="N",
                        help="threads per tensor (default: auto, every usable core)")


def load(args: argparse.Namespace, path: str) -> tuple[Model, list[Tensor]]:
    """Read the model file and select its weight tensors, as one-line CommandErrors."""
    try:
        model = read_model(path)
        return model, select_weights(model, args.include, args.exclude)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    except OSError as error:
        raise CommandError(f"{path}: cannot be read ({error.strerror or error})") from None


def write_json(path: str, document: Any) -> None:
    """Write `document` as indented JSON to `path`, atomically (:mod:`ul2q_ref._atomic`)."""
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")


def measure(path: str, tensors: list[Tensor], *args: Any, **options: Any) -> list[dict]:
    """:func:`~ul2q_ref.weights.inspect_tensors`, its errors as CommandErrors naming `path`."""
    try:
        return inspect_tensors(tensors, *args, **options)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    except ValueError as error:
        raise CommandError(f"{path}: {error}") from None


def progress(enabled: bool) -> Any:
    """A callback printing each tensor's name to stderr, or None."""
    if not enabled:
        return None
    return lambda name: print(f"  measuring {name}", file=sys.stderr, flush=True)


def table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    """A plain text table: columns padded, numbers (columns in `right`) right-aligned."""
    right = set(range(1, len(header))) if right is None else right
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
