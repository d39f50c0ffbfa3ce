"""Shared benchmark plumbing: scratch PostgreSQL database, simulator processes, workers, RSS."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext

import psycopg
from cryptography.fernet import Fernet

PG_ADMIN = os.environ.get("THINGBRIDGE_BENCH_DATABASE_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("THINGBRIDGE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
# A helper sharing the server with other benchmarks names its own scratch database and var dir.
SCRATCH = os.environ.get("THINGBRIDGE_BENCH_SCRATCH", "thingbridge_bench")
VAR_DIR = os.environ.get("THINGBRIDGE_BENCH_VAR_DIR", "/tmp/thingbridge-bench-var")


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


SIMULATORS = {"openweathermap": "thingbridge_openweathermap.simulator",
              "netatmo": "thingbridge_netatmo.simulator"}


@contextmanager
def simulators(*types: str):
    """The given providers' simulators, started and stopped; yields {type: (process, base URL)}
    and the settings that point the platform at them with the provider budgets lifted (the
    simulators have none)."""
    started: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for type_id in types:
            started[type_id] = start_simulator(SIMULATORS[type_id])
        settings = {}
        for type_id, (_proc, url) in started.items():
            settings[f"THINGBRIDGE_{type_id.upper()}_BASE_URL"] = url
            settings[f"THINGBRIDGE_{type_id.upper()}_RATE_LIMIT"] = "0"
        yield started, settings
    finally:
        stop([proc for proc, _url in started.values()])


@contextmanager
def platform(env: dict, connection: bool = True):
    """This process as the platform under ``env`` (from ``platform_env``): its Flask app in
    context, the schema migrated, the descriptions synced and the broker's queues purged.
    ``connection=False`` leaves the database connection to each request, as under gunicorn."""
    os.environ.update(env)
    from thingbridge import create_app, db
    from thingbridge.connectors.registry import sync_descriptions

    app = create_app()
    with app.app_context(), db.db.connection_context() if connection else nullcontext():
        db.migrate_up()
        sync_descriptions(app)
        app.extensions["celery"].control.purge()
        yield app


def platform_env(database_url: str, **extra: str) -> dict:
    env = dict(os.environ)
    env.update({"THINGBRIDGE_DATABASE_URL": database_url, "THINGBRIDGE_BROKER_URL": BROKER,
                "THINGBRIDGE_SECRET_KEYS": Fernet.generate_key().decode(),
                "THINGBRIDGE_PUBLIC_BASE_URL": "http://127.0.0.1:8080",
                "THINGBRIDGE_VAR_DIR": VAR_DIR, **extra})
    return env


def start_workers(env: dict, count: int, pool: str, concurrency: int) -> list[subprocess.Popen]:
    """Worker processes logging to <VAR_DIR>/bench<i>.log (read it when one dies)."""
    os.makedirs(env["THINGBRIDGE_VAR_DIR"], exist_ok=True)
    procs = []
    for i in range(count):
        log = open(os.path.join(env["THINGBRIDGE_VAR_DIR"], f"bench{i}.log"), "wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "thingbridge_workers.celery_app:celery",
             "worker", "--loglevel=WARNING", f"--pool={pool}", f"--concurrency={concurrency}",
             "-n", f"bench{i}@%h", "--without-heartbeat", "--without-gossip", "--without-mingle"],
            env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT))
        log.close()  # the child holds its own descriptor
    return procs


def check_alive(procs: list[subprocess.Popen], what: str = "worker") -> None:
    """A benchmark whose worker died measures half a platform: stop instead of printing it."""
    dead = [(i, p.returncode) for i, p in enumerate(procs) if p.poll() is not None]
    if dead:
        raise SystemExit(f"{what}(s) died during the run (index, exit code): {dead}; "
                         f"see the bench<i>.log files in the var dir")


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


def process_stat(pid: int | str) -> tuple[int, str, float, int]:
    """(parent pid, command name, CPU seconds so far, RSS bytes) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        head, tail = f.read().rsplit(")", 1)
    fields = tail.split()
    return (int(fields[1]), head.split("(", 1)[1],
            (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
            int(fields[21]) * os.sysconf("SC_PAGE_SIZE"))


def _processes() -> dict[int, tuple[int, str, float, int]]:
    """pid -> (parent pid, command name, CPU seconds, RSS bytes) of every process."""
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            procs[int(entry)] = process_stat(entry)
        except (OSError, IndexError, ValueError):
            continue
    return procs


def _tree(procs: dict, roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = [], list(roots)
    while stack:
        pid = stack.pop()
        if pid in procs:
            found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of process trees, by this process alone ("bench")
    and by the machine's PostgreSQL and Redis servers (by command name); diff two readings to
    see where a round's CPU went."""
    procs = _processes()
    used = {name: sum(procs[p][2] for p in _tree(procs, roots)) for name, roots in groups.items()}
    used["bench"] = procs[os.getpid()][2]
    for name, comm in (("postgres", "postgres"), ("redis", "redis-server")):
        used[name] = sum(cpu for _ppid, c, cpu, _rss in procs.values() if c == comm)
    return used


def snapshot() -> dict:
    """Every process now, to diff with ``cpu_between``."""
    return _processes()


def cpu_between(before: dict, after: dict, roots: list[int] | None = None,
                comm: str | None = None) -> float:
    """CPU seconds used between two snapshots by the process trees under ``roots``, or by the
    processes named ``comm``; only processes alive at both count (one that ended took its
    counters with it, and would make the difference negative)."""
    pids = _tree(after, roots) if roots is not None else [
        pid for pid, (_ppid, name, _cpu, _rss) in after.items() if name == comm]
    return sum(after[pid][2] - before[pid][2] for pid in pids if pid in before)


def tree_rss_mb(pids: list[int]) -> float:
    """Resident memory of the given processes and all their descendants, in MiB."""
    procs = _processes()
    return sum(procs[p][3] for p in _tree(procs, pids)) / 2**20
