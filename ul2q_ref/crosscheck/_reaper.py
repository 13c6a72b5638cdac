"""Run one command and kill every process it started when it ends (standard library only).

``python -I _reaper.py -- CMD ARG…`` is how the checker runs ``--command``: this small
supervisor starts CMD, waits for it, and then kills every process CMD started, including
those that left its process group or session (a daemon that called ``setsid()`` and forked
again). It can, because on Linux it first makes itself a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``): a process orphaned anywhere below it is re-parented to
it instead of to init, so every descendant stays in its process tree, which it reads from
``/proc``. It also asks to receive SIGTERM when the checker dies (``PR_SET_PDEATHSIG``) and
treats SIGTERM as "stop now": kill the tree, then exit.

Elsewhere (no ``prctl``, no ``/proc``) it only waits for CMD; the checker then kills CMD's
process group, which a process that called ``setsid()`` has left.

The file imports nothing from ``ul2q_ref`` and little from the standard library, and runs
with ``python -I -S``, so it adds tens of milliseconds to a command's start and exits with
CMD's status (128 + N when a signal N ended it, 127 when CMD could not be started).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CLEAN_UP_SECONDS = 10.0
"""How long the clean-up keeps killing a tree that keeps forking before it gives up."""


class Stop(Exception):
    """Raised by the SIGTERM handler: the checker asks for everything to end now."""


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Adopt every orphan below this process (Linux ≥ 3.4); False where unsupported."""
    return sys.platform.startswith("linux") and _prctl(PR_SET_CHILD_SUBREAPER, 1)


def parents() -> dict[int, int]:
    """{pid: parent pid} of every process visible in ``/proc`` (empty without ``/proc``)."""
    found: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                text = handle.read()
        except OSError:
            continue  # exited meanwhile
        fields = text[text.rfind(b")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 1:
            found[int(name)] = int(fields[1])
    return found


def descendants(root: int) -> list[int]:
    """Every process below `root`, parents before children."""
    table = parents()
    children: dict[int, list[int]] = {}
    for pid, parent in table.items():
        children.setdefault(parent, []).append(pid)
    order, queue = [], list(children.get(root, []))
    while queue:
        pid = queue.pop()
        order.append(pid)
        queue.extend(children.get(pid, []))
    return order


def kill_tree() -> None:
    """SIGKILL every descendant and reap them, until none is left (or the time is up)."""
    me = os.getpid()
    give_up = time.monotonic() + CLEAN_UP_SECONDS
    while True:
        for pid in descendants(me):
            try:  # noqa: SIM105 - contextlib would add 20 ms to every command's start
                os.kill(pid, signal.SIGKILL)
            except OSError:  # exited meanwhile
                pass
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left; as a subreaper, no descendants either
        if reaped == 0:
            if time.monotonic() > give_up:
                return
            time.sleep(0.002)


def _stop(signum: int, frame: object) -> None:
    raise Stop


def main(argv: list[str]) -> int:
    """Run ``argv`` after ``--``; return its exit status once every descendant is gone."""
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    if not command:
        sys.stderr.write("_reaper: no command given\n")
        return 2
    checker = os.getppid()
    signal.signal(signal.SIGTERM, _stop)
    linux = become_subreaper()
    if linux:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != checker:  # the checker died before the request took effect
            return 128 + signal.SIGTERM
    status = 128 + signal.SIGTERM
    try:
        try:
            child = os.posix_spawnp(command[0], command, dict(os.environ))
        except OSError as error:
            sys.stderr.write(f"cannot run {command[0]}: {error.strerror or error}\n")
            return 127
        _, raw = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(raw)
        status = code if code >= 0 else 128 - code
    except Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second request cannot interrupt
        if linux:
            kill_tree()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
