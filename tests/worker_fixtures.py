"""Real Celery worker processes on Redis + PostgreSQL, polling the session's simulators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
from helpers import BROKER_URL, DATABASE_URL, LOOPBACK, PUBLIC_BASE_URL, SECRET_KEY, wait_until

# The workers' broker visibility timeout: a task a killed worker held comes back after it.
VISIBILITY_TIMEOUT = 6


def _broker_redis() -> redis.Redis | None:
    return redis.Redis.from_url(BROKER_URL) if BROKER_URL.startswith("redis://") else None


def clear_unacked() -> None:
    """Drop tasks a killed worker left unacknowledged (kombu's Redis ``unacked`` hash): a purge
    leaves them, and they would come back in a later test."""
    client = _broker_redis()
    if client is not None:
        client.delete("unacked", "unacked_index", "unacked_mutex")


def unacked_visible() -> bool:
    """True once a killed worker's unacknowledged tasks are older than the visibility timeout.
    A worker started from then on restores them as it starts; one started earlier finds them
    only at kombu's next sweep (every ``unacked_restore_interval * unacked_restore_throttle``,
    100 s by default)."""
    client = _broker_redis()
    scores = [score for _, score in client.zrange("unacked_index", 0, -1, withscores=True)]
    return bool(scores) and max(scores) <= time.time() - VISIBILITY_TIMEOUT


class WorkerProcess:
    def __init__(self, env: dict, name: str, concurrency: int = 2, beat: bool = False,
                 app: str = "thingbridge_workers.celery_app:celery"):
        command = [sys.executable, "-m", "celery", "-A", app,
                   "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
                   "-n", f"{name}@%h", "--without-heartbeat", "--without-gossip",
                   "--without-mingle"]
        if beat:  # embedded beat: the schedule runs as in production (dispatch, event pumps)
            schedule = os.path.join(env["THINGBRIDGE_VAR_DIR"], f"beat-{name}")
            command += ["-B", "-s", schedule]
        self.proc = subprocess.Popen(command, env=env, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool): nothing gets to ack or clean up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_env(flask_app, simulators):
    env = dict(os.environ)
    env.update({
        "THINGBRIDGE_DATABASE_URL": DATABASE_URL, "THINGBRIDGE_BROKER_URL": BROKER_URL,
        "THINGBRIDGE_SECRET_KEYS": SECRET_KEY, "THINGBRIDGE_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "THINGBRIDGE_OPENWEATHERMAP_BASE_URL": simulators["openweathermap"],
        "THINGBRIDGE_NETATMO_BASE_URL": simulators["netatmo"],
        "THINGBRIDGE_HTTP_TIMEOUT": "3",
        "THINGBRIDGE_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "THINGBRIDGE_EVENT_PUMP_INTERVAL": "0.3", "THINGBRIDGE_WEBHOOK_RETRY_BASE": "0.2",
        "THINGBRIDGE_WEBHOOK_LEASE": "5", "THINGBRIDGE_WEBHOOK_TIMEOUT": "3",
        "THINGBRIDGE_OUTBOUND_ALLOW": LOOPBACK,  # the receivers run on this machine
        "THINGBRIDGE_VAR_DIR": os.environ["THINGBRIDGE_VAR_DIR"],  # set by flask_app
    })
    return env


@pytest.fixture
def start_worker(worker_env, clean_db):
    started: list[WorkerProcess] = []

    def start(name="w1", concurrency=2, beat=False, env=None,
              app="thingbridge_workers.celery_app:celery") -> WorkerProcess:
        worker = WorkerProcess({**worker_env, **(env or {})}, f"{name}-{len(started)}",
                               concurrency, beat, app)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _fresh_simulator(simulators, name):
    """A simulator with default modes and counters before and after the test."""
    base = simulators[name]
    requests.post(f"{base}/_sim/reset", timeout=5)
    yield base
    requests.post(f"{base}/_sim/reset", timeout=5)


@pytest.fixture
def owm_sim(simulators):
    yield from _fresh_simulator(simulators, "openweathermap")


@pytest.fixture
def netatmo_sim(simulators):
    yield from _fresh_simulator(simulators, "netatmo")


THINGBRIDGE = str(Path(sys.executable).with_name("thingbridge"))


@pytest.fixture
def run(worker_env, tmp_path):
    """Start ``thingbridge <args>`` in its own process group, output to a file; stopped after."""
    started = []

    def start(*args, env=None) -> subprocess.Popen:
        log = tmp_path / f"{args[0]}-{len(started)}.log"
        proc = subprocess.Popen([THINGBRIDGE, *args], env={
            **worker_env, "THINGBRIDGE_METRICS_DIR": str(tmp_path / "metrics"),
            "TMPDIR": str(tmp_path), **(env or {})},  # its folders go with the test's
            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = log
        started.append(proc)
        return proc

    yield start
    for proc in started:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def listening(base: str) -> None:
    """Wait for a `thingbridge api` at ``base`` to answer (its workers boot after it binds)."""
    def answers() -> bool:
        try:
            return requests.get(f"{base}/health", timeout=5).status_code in (200, 503)
        except (requests.ConnectionError, requests.Timeout):
            return False

    wait_until(answers, timeout=60, message=f"the API at {base} to answer")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a `thingbridge api`'s gunicorn workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
