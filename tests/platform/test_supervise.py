"""The supervisor behind `thingbridge worker`, `beat` and `run`, with real child processes: one
that dies is started again, one that finishes is left alone, one that keeps failing at start
makes it give up, SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from helpers import wait_until

# The child writes its pid to a file named after it, then behaves as told by its argument.
CHILD = textwrap.dedent("""
    import os, sys, time
    with open(sys.argv[1], "a") as out:
        out.write(f"{os.getpid()}\\n")
    if sys.argv[2] == "crash":
        sys.exit(3)
    if sys.argv[2] == "finish":
        sys.exit(0)
    if sys.argv[2] == "flaky":
        # Fails at once on its starts 1-4 and 6-9; its 5th start runs a while, then fails.
        with open(sys.argv[1]) as out:
            start = len(out.read().split())
        if start % 5:
            sys.exit(4)
        if start == 5:
            time.sleep(4)
            sys.exit(4)
    time.sleep(600)
""")
SUPERVISOR = textwrap.dedent("""
    import os, sys
    from thingbridge.supervise import Child, supervise
    children = [Child(name, [sys.executable, "-c", sys.argv[1], f"{sys.argv[2]}/{name}", name])
                for name in sys.argv[3:]]
    for child in children:
        child.delay = float(os.environ.get("FIRST_DELAY", child.delay))
    sys.exit(supervise(children, start_limit_interval=3.0))
""")


def _supervise(folder, *children: str, first_delay: float = 1.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SUPERVISOR, CHILD, str(folder), *children],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FIRST_DELAY": str(first_delay)})


def _starts(folder, name) -> list[int]:
    path = folder / name
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_a_killed_child_is_started_again_and_sigterm_stops_all(tmp_path):
    supervisor = _supervise(tmp_path, "sleep")
    try:
        [first] = wait_until(lambda: _starts(tmp_path, "sleep"), message="child started")
        os.kill(first, signal.SIGKILL)
        starts = wait_until(lambda: len(_starts(tmp_path, "sleep")) == 2
                            and _starts(tmp_path, "sleep"), message="child started again")
        assert starts[1] != first and _alive(starts[1])
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        wait_until(lambda: not _alive(starts[1]), message="child stopped")
        assert "was killed by signal 9; restarting it in 1 s" in supervisor.stderr.read()
    finally:
        supervisor.kill()


def test_a_crashing_child_is_restarted_with_growing_pauses(tmp_path):
    supervisor = _supervise(tmp_path, "crash")
    try:
        wait_until(lambda: len(_starts(tmp_path, "crash")) >= 3, timeout=30,
                   message="three starts")
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        log = supervisor.stderr.read()
        assert "crash exited with status 3; restarting it in 1 s" in log
        assert "crash exited with status 3; restarting it in 2 s" in log
    finally:
        supervisor.kill()


def test_a_child_that_finishes_is_not_restarted(tmp_path):
    supervisor = _supervise(tmp_path, "finish")
    try:
        assert supervisor.wait(timeout=30) == 0  # nothing left to supervise
        assert len(_starts(tmp_path, "finish")) == 1
    finally:
        supervisor.kill()


def test_a_child_that_keeps_failing_at_start_makes_the_supervisor_give_up(tmp_path):
    supervisor = _supervise(tmp_path, "crash", "sleep", first_delay=0.05)
    try:
        assert supervisor.wait(timeout=60) == 1
        assert len(_starts(tmp_path, "crash")) == 5
        [sleeper] = _starts(tmp_path, "sleep")
        wait_until(lambda: not _alive(sleeper), message="the other child stopped")
        log = supervisor.stderr.read()
        assert log.count("crash exited with status 3; restarting it") == 4
        assert "ERROR thingbridge.supervise crash exited with status 3; it failed within 3 s " \
               "of its start 5 times in a row: giving up" in log
    finally:
        supervisor.kill()


def test_a_child_that_ran_a_while_before_failing_starts_the_count_again(tmp_path):
    supervisor = _supervise(tmp_path, "flaky", first_delay=0.01)
    try:
        wait_until(lambda: len(_starts(tmp_path, "flaky")) == 10, timeout=60,
                   message="ten starts: eight quick failures, never five in a row")
        assert supervisor.poll() is None
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        assert "giving up" not in supervisor.stderr.read()
    finally:
        supervisor.kill()
