"""Keep child processes running: ``thingbridge worker``, ``beat`` and ``run`` restart a child
that died (killed, out of memory, a Celery "Unrecoverable error") instead of leaving the
platform without it until someone notices.

A child that exits with status 0 was asked to stop (a Celery warm shutdown) and is not started
again. A child that fails within START_LIMIT_INTERVAL of its start START_LIMIT_BURST times in a
row (as systemd's StartLimitBurst) fails at start, most likely the same way every time (a
setting, an import): the supervisor gives up, stops the others and exits 1, so whatever runs it
sees the failure instead of a process restarting forever. SIGTERM or SIGINT to the supervisor
stops every child and ends it; a child still running after STOP_TIMEOUT is killed with its
whole process group (each child has its own).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)
# A child that dies again soon after a restart waits longer each time (doubling from 1 s up to
# 30 s); one that ran this long counts as healthy and restarts after 1 s again.
FIRST_DELAY, MAX_DELAY, HEALTHY_AFTER = 1.0, 30.0, 30.0
STOP_TIMEOUT = 30.0  # seconds children get to finish after SIGTERM before they are killed
START_LIMIT_BURST, START_LIMIT_INTERVAL = 5, 5.0


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict | None = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    delay: float = FIRST_DELAY
    restart_at: float | None = None
    quick_failures: int = 0  # in a row, each within the start limit interval of its start

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        self.started, self.restart_at = time.monotonic(), None

    def stop(self) -> None:
        """SIGTERM to the child alone: Celery and gunicorn stop their own processes after
        the work in hand (a warm shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def kill(self) -> None:
        """SIGKILL to the child's whole process group, its pool included."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Supervisor:
    def __init__(self, children: list[Child], start_limit_burst: int = START_LIMIT_BURST,
                 start_limit_interval: float = START_LIMIT_INTERVAL):
        self.children = children
        self.start_limit_burst, self.start_limit_interval = start_limit_burst, start_limit_interval
        self.stopping = self.gave_up = False

    def run(self) -> int:
        """Start every child and keep them running until stopped; 0 unless a child kept
        failing at start or could not be stopped cleanly."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        for child in self.children:
            child.start()
        while not self.stopping and any(c.proc is not None for c in self.children):
            self._tend(time.monotonic())
            time.sleep(0.2)
        return self._shutdown()

    def _stop(self, *_args) -> None:
        self.stopping = True

    def _tend(self, now: float) -> None:
        for child in self.children:
            if child.restart_at is not None and now >= child.restart_at:
                child.start()
            elif child.proc is not None and child.restart_at is None:
                code = child.proc.poll()
                if code == 0:
                    log.info("%s stopped", child.name)
                    child.proc = None
                elif code is not None:
                    self._schedule_restart(child, code, now)

    def _schedule_restart(self, child: Child, code: int, now: float) -> None:
        ran = now - child.started
        if ran >= HEALTHY_AFTER:
            child.delay = FIRST_DELAY
        child.quick_failures = child.quick_failures + 1 if ran < self.start_limit_interval else 0
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        if child.quick_failures >= self.start_limit_burst:
            log.error("%s %s; it failed within %g s of its start %d times in a row: giving up",
                      child.name, how, self.start_limit_interval, child.quick_failures)
            child.proc, self.gave_up, self.stopping = None, True, True
            return
        child.restart_at = now + child.delay
        log.warning("%s %s; restarting it in %.0f s", child.name, how, child.delay)
        child.delay = min(child.delay * 2, MAX_DELAY)

    def _shutdown(self) -> int:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            child.stop()
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in running:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.name, STOP_TIMEOUT)
                child.kill()
                child.proc.wait()
        unclean = any(c.proc.returncode not in (0, -signal.SIGTERM) for c in running)
        return 1 if self.gave_up or unclean else 0


def supervise(children: list[Child], **start_limit) -> int:
    """Run ``children`` until stopped; ``start_limit``: ``start_limit_burst`` and
    ``start_limit_interval`` other than the defaults."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return Supervisor(children, **start_limit).run()
