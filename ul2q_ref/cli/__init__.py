"""The ``ul2q-ref`` command line: a thin layer over the library.

Each sub-command lives in its own module with two functions, ``add_parser(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them, with the one-line summary ``--help`` shows,
in the order it shows them. A module is imported only when its command runs (or its own
``--help`` is asked for), so ``ul2q-ref --help`` imports none of them: no SciPy, matplotlib
or PyTorch for a listing. Adding a command is one entry in :data:`COMMANDS` (and its module);
``tests/test_cli_startup.py`` checks that each entry's summary is its module's ``help``.

:func:`main` is the one error boundary: every expected failure (bad arguments, bad or missing
files, OS errors such as a full disk) ends as one line ``ul2q-ref SUBCOMMAND: error: …`` on
stderr and exit status 2; an unexpected exception ends as one ``internal error`` line and
status 70. ``--debug`` (or the environment variable ``UL2Q_DEBUG=1``) shows the traceback
instead. SIGTERM and SIGHUP unwind like Ctrl-C, so that writers remove their temporary files.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from ..io import FileFormatError
from ._common import CommandError

COMMANDS: dict[str, str] = {
    "lambdas": "print the exact optimal step λ_k* and its loss for each bit width",
    "quantize": "quantise a .npy tensor or a whole model with μL2Q and save the codes",
    "dequantize": "decode a quantised model (or tensor) to float weights",
    "inspect": "test the normality premise on a model file, layer by layer",
    "plan": "choose per-layer bit widths for a budget (exact optimum)",
    "train": "train a LeNet-5-class model with μL2Q quantisation-aware training",
    "export": "export a training checkpoint as an integer model",
    "evaluate": "print the test accuracy of a checkpoint or an integer model",
    "vectors": "write the conformance vectors for checking other implementations",
    "check": "check an implementation's results against the conformance vectors",
    "diagnose": "diagnose an implementation: which aspects deviate from the definition, and how",
    "reproduce": "re-derive the paper's evaluation as a report (tables, figures, JSON)",
}
"""Sub-command modules of this package by name, with the summary the listing shows (the
module's own ``help``), in the order the help lists them."""

EXIT_ERROR = 2
"""Exit status of an expected failure (bad arguments, bad files, OS errors)."""

EXIT_INTERNAL = 70
"""Exit status of an unexpected exception (a bug: please report it)."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``ul2q-ref CMD: error: … (see … --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``ul2q-ref``.

    `command`'s sub-parser is its module's, in full (the module is imported); every other
    command is listed by its name and summary alone, without importing its module. ``None``
    gives the listing only, which is all ``ul2q-ref --help`` needs.
    """
    parser = Parser(
        prog="ul2q-ref",
        description=(
            "The executable specification of μL2Q ultra-low loss quantisation "
            "(Gong et al., IJCNN 2019): exact optimal steps λ_k, quantisation of weight "
            "tensors, and the paper's comparison schemes."
        ),
        epilog="Run 'ul2q-ref COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also UL2Q_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        if name == command:
            importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The sub-command `argv` runs: its first argument that is not an option, if it is one of
    :data:`COMMANDS` (the top-level options, ``--debug``, ``--version`` and ``--help``, take
    no value)."""
    first = next((argument for argument in argv if not argument.startswith("-")), None)
    return first if first in COMMANDS else None


class _Terminated(BaseException):
    """Raised by the SIGTERM/SIGHUP handler so that `finally` blocks and cleanups run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def _install_signal_handlers() -> dict[int, Any]:
    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is None:
            continue
        with contextlib.suppress(ValueError, OSError):  # not the main thread: no handler
            previous[number] = signal.signal(number, _on_signal)
    return previous


def describe_error(error: BaseException) -> str:
    """One line for an expected error: the file or option named, and what is wrong."""
    if isinstance(error, OSError) and not isinstance(error, FileFormatError):
        reason = error.strerror or str(error)
        if error.filename is not None:
            return f"{error.filename}: {reason}"
        return reason
    if isinstance(error, MemoryError):
        return "out of memory"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def debug_requested(argv: Sequence[str]) -> bool:
    """Whether a traceback was asked for (``--debug`` before the command, or UL2Q_DEBUG)."""
    value = os.environ.get("UL2Q_DEBUG", "").strip().lower()
    return value not in ("", "0", "no", "false", "off") or "--debug" in argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ul2q-ref`` with `argv` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_named(argv))
    args = parser.parse_args(argv)
    debug = args.debug or debug_requested([])
    name = args.subcommand
    previous = _install_signal_handlers()
    try:
        return int(args.run(args) or 0)
    except (CommandError, FileFormatError, ValueError, TypeError, OSError,
            MemoryError) as error:
        if debug:
            raise
        print(f"ul2q-ref {name}: error: {describe_error(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        # from here to the exit a second Ctrl-C is ignored: it can neither cut the clean-up
        # short nor kill the interpreter while it shuts down (Python keeps SIG_IGN then)
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if debug:
            raise
        print(f"ul2q-ref {name}: interrupted", file=sys.stderr)
        return 130
    except _Terminated as stop:
        print(f"ul2q-ref {name}: terminated by signal {stop.signum}", file=sys.stderr)
        return 128 + stop.signum
    except Exception as error:  # noqa: BLE001 - the boundary: a bug, reported in one line
        if debug:
            raise
        print(f"ul2q-ref {name}: internal error: {type(error).__name__}: "
              f"{describe_error(error)} (rerun with --debug for the traceback, and please "
              "report it)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
