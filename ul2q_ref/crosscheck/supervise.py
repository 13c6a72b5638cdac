"""Running another implementation's command, bounded in time, output and lifetime.

Every ``--command`` run goes through :mod:`._reaper`, a standard-library script that starts
the command and, when it ends or is told to stop, kills every process it started — those
that left the command's process group or session too (on Linux, through
``prctl(PR_SET_CHILD_SUBREAPER)``; docs/crosscheck.md, §5 states the limit elsewhere). The
reaper runs in a session of its own, whose process group is killed as well, and receives
SIGTERM if the checker dies. Output goes to temporary files whose sizes are watched, so the
checker's memory does not grow with what the command writes.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import CheckError

MAX_OUTPUT_BYTES = 256 << 20
"""The most a command may write to stdout (all cases of a batch) or stderr before it is killed."""

REAPER = Path(__file__).with_name("_reaper.py")
"""The supervising script every command runs under."""

STOP_GRACE_SECONDS = 5.0
"""How long the reaper may take to kill the command's processes before it is killed itself."""

_POLL = 0.05


def check_seconds(value: float, name: str) -> float:
    """`value` as float seconds; CheckError unless finite and > 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise CheckError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def check_program(argv: list[str]) -> None:
    """CheckError unless ``argv[0]`` names a program that exists (on PATH or as a path)."""
    program = argv[0]
    if os.sep in program or (os.altsep and os.altsep in program):
        if not Path(program).exists():
            raise CheckError(f"command not found: {program}")
        if not os.access(program, os.X_OK) or Path(program).is_dir():
            raise CheckError(f"cannot run {program}: not an executable file")
    elif shutil.which(program) is None:
        raise CheckError(f"command not found: {program}")


@dataclass
class Finished:
    """What a bounded run left: exit status, stdout (a file, rewound) and a stderr line.

    ``stdout`` stays open until the ``with`` block of :func:`run_bounded` ends; read it as a
    stream (:func:`ul2q_ref.crosscheck.results.read_lines`), never whole.
    """

    returncode: int | None
    stdout: IO[bytes]
    stderr_tail: str
    problem: str | None  # "timed out after ...", "wrote more than ..."


def exit_text(returncode: int | None, stderr_tail: str) -> str:
    """``exit status 3: <last stderr line>``; a status above 128 also names its signal.

    The reaper reports a command ended by signal N as 128 + N, as a shell does, so 139 is
    ``exit status 139 (SIGSEGV)``.
    """
    text = f"exit status {returncode}"
    if returncode is not None and returncode > 128:
        with contextlib.suppress(ValueError):
            text += f" ({signal.Signals(returncode - 128).name})"
    return f"{text}: {stderr_tail}" if stderr_tail else text


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ask the reaper to kill the command's processes; then kill its group and itself."""
    with contextlib.suppress(OSError):
        process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_SECONDS)
    _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the reaper's whole process group (it runs in a session of its own)."""
    with contextlib.suppress(OSError):  # the group is already gone
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def run_bounded(argv: list[str], stdin: Any, timeout: float,
                max_output: int = MAX_OUTPUT_BYTES) -> Any:
    """Run `argv` with `stdin` (a file) under the reaper; yield a :class:`Finished`.

    Stops the command when it times out or writes more than `max_output` bytes to stdout or
    stderr; in every case nothing it started is left running when this returns.
    """
    check_program(argv)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen([sys.executable, "-I", "-S", str(REAPER), "--", *argv],
                                       stdin=stdin, stdout=out, stderr=err,
                                       start_new_session=True)
        except OSError as error:
            raise CheckError(f"cannot run {argv[0]}: {error.strerror or error}") from None
        problem = None
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    process.wait(timeout=max(min(_POLL, remaining), 0.0))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() >= deadline:
                    problem = f"timed out after {timeout:g} s"
                    break
                if max(os.fstat(out.fileno()).st_size, os.fstat(err.fileno()).st_size) > \
                        max_output:
                    problem = f"wrote more than {max_output} bytes of output"
                    break
        finally:
            if process.returncode is None:
                _stop(process)
            _kill_group(process)
            process.wait()
        if os.fstat(out.fileno()).st_size > max_output and problem is None:
            problem = f"wrote more than {max_output} bytes of output"
        err.seek(max(os.fstat(err.fileno()).st_size - 4096, 0))
        tail_lines = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        out.seek(0)
        yield Finished(None if problem else process.returncode, out, tail_lines[0][:300],
                       problem)


__all__ = ["MAX_OUTPUT_BYTES", "REAPER", "Finished", "check_program", "check_seconds",
           "exit_text", "run_bounded"]
