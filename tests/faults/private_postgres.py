"""A PostgreSQL cluster that belongs to the test: initdb under a temp dir, its own port and
socket directory, started, stopped and restarted at will. Never the machine's shared server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import psycopg
from broker_helpers import free_port, port_open
from helpers import wait_until


def _bin(name: str) -> str:
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda path: int(path.split("/")[-2]))
    found = [os.path.join(v, name) for v in versions if os.path.exists(os.path.join(v, name))]
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


class PrivateCluster:
    """initdb refuses to run as root, so as root the cluster runs as the postgres user."""

    def __init__(self):
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="tb-faults-pg-")
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "server.log")
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run(_bin("initdb"), "-D", self.data, "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        # Test speed over durability; a fast shutdown still writes everything out.
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.folder}'\nfsync = off\n"
                       "full_page_writes = off\nmax_connections = 200\n")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def _ctl(self, action: str, *extra: str) -> None:
        self._run(_bin("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60", action,
                  *extra)

    def start(self) -> None:
        self._ctl("start")
        wait_until(lambda: port_open(self.port), timeout=30, message="private PostgreSQL up")

    def stop(self) -> None:
        """A fast shutdown: every session is terminated, as in an operator's restart."""
        self._ctl("stop", "-m", "fast")

    def restart(self) -> float:
        """Stop and start again; returns how long the server was away, in seconds."""
        started = time.monotonic()
        self._ctl("restart", "-m", "fast")
        wait_until(lambda: port_open(self.port), timeout=30, message="private PostgreSQL back")
        return time.monotonic() - started

    def execute(self, sql: str, params=(), database: str = "postgres") -> list[tuple]:
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def recreate(self, database: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self.execute(f'CREATE DATABASE "{database}"')

    def terminate(self, application_name: str) -> int:
        """pg_terminate_backend every session of that application; returns how many."""
        rows = self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s", (application_name,))
        return sum(1 for (done,) in rows if done)

    def destroy(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)
