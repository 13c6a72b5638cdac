"""The ``ul2q-ref`` command line: a thin layer over the library.

Each sub-command lives in its own module with two functions, ``add_parser(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them in the order ``--help`` shows them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ._common import CommandError

COMMANDS = ("lambdas", "quantize", "dequantize", "inspect", "plan", "train", "export", "evaluate",
            "vectors", "check", "reproduce")
"""Sub-command modules of this package, in the order the help lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ul2q-ref`` with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="ul2q-ref",
        description=(
            "The executable specification of μL2Q ultra-low loss quantisation "
            "(Gong et al., IJCNN 2019): exact optimal steps λ_k, quantisation of weight "
            "tensors, and the paper's comparison schemes."
        ),
        epilog="Run 'ul2q-ref COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ul2q-ref`` with `argv` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CommandError as error:
        print(f"ul2q-ref {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ul2q-ref {args.command}: interrupted", file=sys.stderr)
        return 130
