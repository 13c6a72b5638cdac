"""Progress reports that suit both a terminal and a log file.

On a terminal, :func:`progress` is a tqdm bar that redraws in place. When the stream is not
a terminal (output redirected to a log, a CI job), redrawing would write thousands of
``\\r``-separated updates; instead it writes one plain line at most every
:data:`LOG_INTERVAL` seconds and one when the task ends, so a log of a long run stays short
and readable. Use it for every loop that reports progress (the trainer, ``reproduce``).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

LOG_INTERVAL = 30.0
"""Seconds between two progress lines when the stream is not a terminal."""


class Progress:
    """A progress report over `total` steps; see :func:`progress`."""

    def __init__(self, total: int, description: str, *, unit: str = "it",
                 stream: TextIO | None = None, interval: float = LOG_INTERVAL) -> None:
        self.total = total
        self.description = description
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.count = 0
        self.postfix: dict[str, Any] = {}
        self.started = time.monotonic()
        self._last = self.started
        self._bar = None
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit=unit, leave=True,
                             dynamic_ncols=True, file=self.stream)

    @property
    def elapsed(self) -> float:
        """Seconds since the report started."""
        return time.monotonic() - self.started

    def advance(self, steps: int = 1, **postfix: Any) -> None:
        """Record `steps` more steps done, with the latest `postfix` values (loss=…)."""
        self.count += steps
        self.postfix = postfix
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(steps)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line()

    def close(self) -> None:
        """End the report (a last line in a log)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.count:
            self._line()
            self.count = 0

    def _line(self) -> None:
        percent = 100.0 * self.count / self.total if self.total else 100.0
        extra = "".join(f", {key} {value}" for key, value in self.postfix.items())
        self.stream.write(f"{self.description}: {self.count}/{self.total} {self.unit} "
                          f"({percent:.0f}%), {self.elapsed:.0f} s{extra}\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress(total: int, description: str, *, enabled: bool = True, unit: str = "it",
             stream: TextIO | None = None) -> Progress | None:
    """A :class:`Progress` over `total` steps on `stream` (default stderr), or None when
    not `enabled`: a tqdm bar on a terminal, a line every :data:`LOG_INTERVAL` seconds
    otherwise."""
    if not enabled:
        return None
    return Progress(total, description, unit=unit, stream=stream)
