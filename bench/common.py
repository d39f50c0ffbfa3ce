"""Shared benchmark plumbing: scratch PostgreSQL database, simulator processes, workers, RSS."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import psycopg
from cryptography.fernet import Fernet

PG_ADMIN = os.environ.get("THINGBRIDGE_BENCH_DATABASE_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("THINGBRIDGE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
SCRATCH = "thingbridge_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def scratch_database():
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {SCRATCH}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + SCRATCH
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        admin.close()


def start_simulator(module: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{module} did not start")


def platform_env(database_url: str, **extra: str) -> dict:
    env = dict(os.environ)
    env.update({"THINGBRIDGE_DATABASE_URL": database_url, "THINGBRIDGE_BROKER_URL": BROKER,
                "THINGBRIDGE_SECRET_KEYS": Fernet.generate_key().decode(),
                "THINGBRIDGE_VAR_DIR": "/tmp/thingbridge-bench-var", **extra})
    return env


def start_workers(env: dict, count: int, pool: str, concurrency: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "thingbridge_workers.celery_app:celery", "worker",
         "--loglevel=WARNING", f"--pool={pool}", f"--concurrency={concurrency}",
         "-n", f"bench{i}@%h", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(count)]


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def tree_rss_mb(pids: list[int]) -> float:
    """Resident memory of the given processes and all their descendants, in MiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError):
            continue
    total, stack = 0, list(pids)
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20
