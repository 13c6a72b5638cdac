"""The checker against hostile commands and files, each run under time and memory limits.

Issue 18, item 7: a command's daemons (``setsid()``, then fork) do not outlive the check;
a result line beyond the cap is refused unparsed and the checker's memory stays bounded for
a line several times the cap; a data file far larger than its case declares is refused
before it is read; a command that keeps timing out is given up after N cases. Memory is
measured as the peak resident set size of a fresh interpreter that runs only the check
(``VmHWM`` of ``/proc/self/status`` at its end: the high-water mark of the process's own
memory; ``ru_maxrss`` would not do, since Linux carries it over from the parent that forked
the interpreter, here the whole test session), compared with the same run on harmless input;
time by ``subprocess.run(timeout=…)``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import check_helpers
import pytest

from ul2q_ref.crosscheck import check
from ul2q_ref.crosscheck.results import read_lines

ROOT = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux") and Path("/proc/self/stat").exists()
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
suite_dir, suite = check_helpers.suite_dir, check_helpers.suite  # module-scoped fixtures


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


DAEMON = textwrap.dedent("""\
    import json, os, sys, time
    pid_file, mode = sys.argv[1], sys.argv[2]
    request = sys.stdin.readline()
    if os.fork() == 0:                      # child: leave the session, fork a daemon
        os.setsid()
        if os.fork() == 0:
            with open(pid_file + ".tmp", "w") as handle:
                handle.write(str(os.getpid()))
            os.replace(pid_file + ".tmp", pid_file)
            time.sleep(120)
        os._exit(0)
    while not os.path.exists(pid_file):
        time.sleep(0.01)
    if mode == "hang":
        time.sleep(120)
    print(json.dumps({"id": json.loads(request)["id"], "error": "answered"}))
    """)


@pytest.mark.skipif(not LINUX, reason="the child subreaper and /proc exist on Linux only")
@pytest.mark.parametrize("mode, batch", [("answer", False), ("hang", False), ("answer", True)])
def test_a_setsid_daemon_does_not_outlive_the_check(tmp_path, suite, mode, batch):
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    pid_file = tmp_path / "daemon.pid"
    command = f"{sys.executable} {script} {pid_file} {mode}"
    cases = check.select_cases(suite.cases, patterns=["ul2q-exact-k2-float32-random"])
    provider = (check.batch_provider(command, timeout=3) if batch
                else check.command_provider(command, timeout=3))
    started = time.monotonic()
    try:
        results = provider(cases)
    except check.CheckError as error:  # the batch run that hangs is a run-level error
        results = {"error": str(error)}
    assert time.monotonic() - started < 20
    daemon = int(pid_file.read_text())
    time.sleep(0.1)
    assert not alive(daemon), f"daemon {daemon} outlived the check"
    if mode == "hang":
        assert results[cases[0].id]["error"] == "timed out after 3 s"
    else:
        assert results[cases[0].id]["error"] == "answered"


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG and /proc exist on Linux only")
def test_a_killed_checker_takes_the_daemon_with_it(tmp_path, suite_dir):
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    pid_file = tmp_path / "daemon.pid"
    driver = textwrap.dedent(f"""\
        from ul2q_ref.crosscheck import check, vectors
        suite = vectors.load_suite({str(suite_dir)!r})
        cases = check.select_cases(suite.cases, patterns=["ul2q-exact-k2-float32-random"])
        check.command_provider({f"{sys.executable} {script} {pid_file} hang"!r},
                               timeout=100)(cases)
        """)
    checker = subprocess.Popen([sys.executable, "-c", driver], env=ENV)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon = int(pid_file.read_text())
        checker.kill()
        checker.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(daemon) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(daemon), f"daemon {daemon} outlived the killed checker"
    finally:
        if checker.poll() is None:
            checker.kill()
            checker.wait()


# --------------------------------------------------------------------------- long lines


def test_read_lines_splits_chunks_and_skips_an_over_long_line_by_its_id():
    long_line = b'{"id": "case-7", "quantize": "' + b"x" * 300_000 + b'"}'
    stream = io.BytesIO(b'{"id": "a"}\n\n' + long_line + b'\n{"id": "b"}\r\n' + b'{"id": "c"}')
    lines = list(read_lines(stream, max_line=100_000))
    assert [line.number for line in lines] == [1, 3, 4, 5]
    assert lines[0].text == '{"id": "a"}' and lines[2].text == '{"id": "b"}\r'
    assert lines[1].text is None and lines[1].case_id == "case-7"
    assert lines[1].problem == ("result line 3 is longer than the cap of 100000 bytes (at "
                                f"least {len(long_line)}): not parsed")
    assert lines[3].text == '{"id": "c"}'


def test_a_line_exactly_at_the_cap_is_kept_and_one_byte_more_is_not():
    for size, kept in ((1000, True), (1001, False)):
        body = b'{"id": "x", "p": "' + b"y" * (size - 20) + b'"}'
        assert len(body) == size
        (line,) = read_lines(io.BytesIO(body + b"\n"), max_line=1000)
        assert (line.text is not None) is kept


LONG = textwrap.dedent("""\
    import json, sys
    size = int(sys.argv[1])
    for request in sys.stdin:
        head = '{"id": "' + json.loads(request)["id"] + '", "pad": "'
        sys.stdout.write(head)
        chunk = "x" * 65536
        for _ in range(size // 65536):
            sys.stdout.write(chunk)
        sys.stdout.write('"}\\n')
    """)

PEAK = textwrap.dedent("""\
    import resource, sys
    def peak_kib():  # VmHWM: own peak (ru_maxrss counts the parent's)
        with open("/proc/self/status") as status:
            return int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
    from ul2q_ref.crosscheck import check, vectors
    suite = vectors.load_suite(sys.argv[1])
    cases = check.select_cases(suite.cases, patterns=["ul2q-exact-k2-float32-random"])
    command, batch = sys.argv[2], sys.argv[3] == "batch"
    provider = (check.batch_provider(command, max_line=1 << 20) if batch
                else check.command_provider(command, max_line=1 << 20))
    result = provider(cases)[cases[0].id]
    print(result.get("error"))
    print(peak_kib())  # KiB
    """)


def peak_of_check(tmp_path, suite_dir, line_bytes: int, mode: str) -> tuple[str, int, float]:
    """The check's error text, its peak RSS in KiB and its wall time in a fresh interpreter."""
    script = tmp_path / "long.py"
    script.write_text(LONG)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", PEAK, str(suite_dir),
                           f"{sys.executable} {script} {line_bytes}", mode],
                          env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    error, peak = done.stdout.strip().splitlines()
    return error, int(peak), time.monotonic() - started


@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM is read from /proc (Linux)")
@pytest.mark.parametrize("mode", ["per-case", "batch"])
def test_a_line_over_the_cap_is_refused_and_memory_stays_bounded(tmp_path, suite_dir, mode):
    cap, long_line = 1 << 20, 24 << 20          # a line 24 times the 1 MiB cap
    small_error, small_peak, _ = peak_of_check(tmp_path, suite_dir, 1 << 16, mode)
    error, peak, seconds = peak_of_check(tmp_path, suite_dir, long_line, mode)
    assert small_error.startswith("malformed") or small_error == "None"
    assert f"result line 1 is longer than the cap of {cap} bytes" in error
    # holding the line (24 MiB of bytes, more as str) would add at least 24 MiB
    assert peak - small_peak < 8 << 10, (peak, small_peak)
    assert seconds < 60


# --------------------------------------------------------------------------- data files


@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM is read from /proc (Linux)")
def test_an_oversized_data_file_is_refused_before_it_is_read(tmp_path, suite_dir):
    copy = tmp_path / "v"
    shutil.copytree(suite_dir, copy)
    document = json.loads((copy / "vectors.json").read_text())
    large = next(case for case in document["cases"] if isinstance(case["input"], dict)
                 and "npy" in case["input"])
    target = copy / large["input"]["npy"]
    os.truncate(target, 3 << 30)           # 3 GiB, sparse: takes no disk and no time
    driver = textwrap.dedent("""\
        import resource, sys
        def peak_kib():  # VmHWM: own peak (ru_maxrss counts the parent's)
            with open("/proc/self/status") as status:
                return int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
        from ul2q_ref.cli import main
        status = main(["check", sys.argv[1], "--self", "--quiet"])
        print(status, peak_kib())
        """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", driver, str(copy)], env=ENV,
                          capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    status, peak = (int(x) for x in done.stdout.split())
    assert status == 2
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and large["input"]["npy"] in error[0]   # names the file
    assert f"{3 << 30} bytes, but" in error[0] and "refused unread" in error[0]
    assert peak < 400 << 10, peak           # KiB: far below the file's 3 GiB
    assert seconds < 30


# --------------------------------------------------------------------------- timeouts


def test_a_command_that_never_answers_is_given_up_after_n_timeouts(suite):
    cases = check.select_cases(suite.cases, profiles=["exact"])[:12]
    command = f"{sys.executable} -c 'import time; time.sleep(60)'"
    provider = check.command_provider(command, timeout=1, give_up_after=3)
    started = time.monotonic()
    results = provider(cases)
    seconds = time.monotonic() - started
    errors = [results[case.id]["error"] for case in cases]
    assert errors[:3] == ["timed out after 1 s"] * 3
    assert errors[3:] == ["not run: the command timed out on 3 consecutive cases"] * 9
    assert seconds < 12 * 1 - 3               # waiting for all 12 would take 12 s at least


def test_an_answer_resets_the_timeout_count(tmp_path, suite):
    script = tmp_path / "alternate.py"
    script.write_text(textwrap.dedent(f"""\
        import json, sys, time
        from pathlib import Path
        counter = Path({str(tmp_path / 'count')!r})
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        request = json.loads(sys.stdin.readline())
        if n % 2 == 0:
            time.sleep(60)
        print(json.dumps({{"id": request["id"], "error": "answered"}}))
        """))
    cases = check.select_cases(suite.cases, profiles=["exact"])[:4]
    results = check.command_provider(f"{sys.executable} {script}", timeout=1,
                                     give_up_after=2)(cases)
    assert [results[c.id]["error"] for c in cases] == ["timed out after 1 s", "answered"] * 2


def test_give_up_after_is_in_the_help():
    done = subprocess.run([sys.executable, "-m", "ul2q_ref", "check", "--help"], env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert "--give-up-after N" in done.stdout and "(default 3)" in done.stdout
    assert check.GIVE_UP_AFTER == 3


def test_the_reaper_exits_with_the_commands_status_and_names_a_missing_program(suite):
    from ul2q_ref.crosscheck.supervise import REAPER

    done = subprocess.run([sys.executable, "-I", str(REAPER), "--", sys.executable, "-c",
                           "import sys; sys.exit(7)"], timeout=60)
    assert done.returncode == 7
    killed = subprocess.run([sys.executable, "-I", str(REAPER), "--", sys.executable, "-c",
                             "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
                            timeout=60)
    assert killed.returncode == 128 + signal.SIGKILL
    with pytest.raises(check.CheckError, match="command not found: no-such-program-ul2q"):
        check.command_provider("no-such-program-ul2q")(suite.cases[:1])
