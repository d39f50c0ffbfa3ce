"""A production-mode Thingbridge for fault injection: `thingbridge api` (gunicorn), workers and
beat as real processes, on a private PostgreSQL cluster and a private redis-server broker that
the tests stop, restart and cut; one app with OpenWeatherMap clients and a webhook receiver.

Reads go straight to the private database with psycopg, so they work whatever the platform's
own processes are going through."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import requests
from broker_helpers import free_port, port_open
from helpers import OWM_KEY, SECRET_KEY, Receiver, wait_until

from thingbridge.localserver import LocalServer

THINGBRIDGE = str(Path(sys.executable).with_name("thingbridge"))
DATABASE = "thingbridge"
POLL_INTERVAL = 4  # seconds between polls of one client
DISPATCH_INTERVAL = 1
TASK_LEASE = 5  # longer than a poll can take here (HTTP timeout 3 s)
# Added to every recovery bound: a task waiting for a busy worker process, a process starting,
# on a 2-core machine that runs the whole platform and the test.
SLACK = 3
EVER = datetime.datetime(2000, 1, 1)  # "since" for a client's first poll


class Process:
    """One platform process in its own process group, its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict, logs: Path):
        self.name, self.log = name, logs / f"{name}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[int]:
        found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)],
                               capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def celery(self) -> int:
        """The pid of the Celery process a `thingbridge worker` or `beat` supervises."""
        return wait_until(lambda: self.children() and self.children()[0], timeout=30,
                          message=f"{self.name}'s Celery process")

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def kill_group(pid: int) -> None:
    """SIGKILL a process and everything in its process group (a Celery worker and its pool):
    nothing gets to acknowledge, requeue or clean up."""
    os.killpg(pid, signal.SIGKILL)


class Stack:
    def __init__(self, cluster, broker, owm_url: str, folder: Path):
        self.cluster, self.broker, self.folder = cluster, broker, folder
        self.processes: list[Process] = []
        self.db_url = cluster.url(DATABASE)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = {**os.environ,
                    "THINGBRIDGE_DATABASE_URL": self.db_url,
                    "THINGBRIDGE_BROKER_URL": f"redis://127.0.0.1:{broker.port}/0",
                    "THINGBRIDGE_SECRET_KEYS": SECRET_KEY,
                    "THINGBRIDGE_PUBLIC_BASE_URL": self.api_url,
                    "THINGBRIDGE_VAR_DIR": str(folder),
                    "TMPDIR": str(folder),  # the API's slot folders go with the test's
                    "THINGBRIDGE_OPENWEATHERMAP_BASE_URL": owm_url,
                    "THINGBRIDGE_OPENWEATHERMAP_POLL_INTERVAL": str(POLL_INTERVAL),
                    "THINGBRIDGE_OPENWEATHERMAP_RATE_LIMIT": "0",  # more than the key's 60/min
                    "THINGBRIDGE_DISPATCH_INTERVAL": str(DISPATCH_INTERVAL),
                    "THINGBRIDGE_TASK_LEASE": str(TASK_LEASE),
                    "THINGBRIDGE_HTTP_TIMEOUT": "3",
                    "THINGBRIDGE_BROKER_VISIBILITY_TIMEOUT": "20",
                    "THINGBRIDGE_EVENT_PUMP_INTERVAL": "0.3",
                    "THINGBRIDGE_WEBHOOK_RETRY_BASE": "0.2",
                    "THINGBRIDGE_WEBHOOK_LEASE": "5",
                    "THINGBRIDGE_WEBHOOK_TIMEOUT": "3",
                    # Shorter than the task lease, as the settings check requires.
                    "THINGBRIDGE_OUTBOUND_TIMEOUT": "3",
                    "THINGBRIDGE_ALLOW_HTTP_LOOPBACK": "1"}
        self.receiver = Receiver()
        self.receiver_server = LocalServer(self.receiver).start()
        cluster.recreate(DATABASE)
        subprocess.run([THINGBRIDGE, "migrate"], env=self.env, check=True,
                       capture_output=True, timeout=120)
        self.http = requests.Session()

    # --- processes ------------------------------------------------------------------------

    def start(self, name: str, *args: str) -> Process:
        process = Process(name, [THINGBRIDGE, *args], self.env, self.folder)
        self.processes.append(process)
        return process

    def start_api(self) -> Process:
        process = self.start("api", "api", "--port", str(self.api_port), "--workers", "1",
                             "--threads", "4")
        wait_until(lambda: port_open(self.api_port), timeout=60, message="API listening")
        return process

    def start_worker(self, name: str, *celery_args: str) -> Process:
        return self.start(name, "worker", "-n", f"{name}@%h", "--without-gossip",
                          "--without-mingle", "--without-heartbeat", *celery_args)

    def start_beat(self) -> Process:
        return self.start("beat", "beat", "-s", str(self.folder / "beat-schedule"))

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.receiver_server.stop()

    def logs(self) -> str:
        return "\n\n".join(f"--- {p.name} ---\n{p.tail()}" for p in self.processes)

    # --- the API, as an app would use it ----------------------------------------------------

    def create_app(self) -> None:
        out = subprocess.run([THINGBRIDGE, "create-app", "faults"], env=self.env, check=True,
                             capture_output=True, text=True, timeout=60).stdout
        creds = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        token = self.http.post(f"{self.api_url}/oauth2/token",
                               data={"grant_type": "client_credentials"},
                               auth=(creds["client_id"], creds["client_secret"]), timeout=10)
        token.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        self.app_id = self.one("SELECT id FROM app WHERE client_id = %s", creds["client_id"])

    def call(self, method: str, path: str, subject: str | None = None, **kwargs):
        headers = {"X-External-Subject-Id": subject} if subject else {}
        return self.http.request(method, f"{self.api_url}{path}", headers=headers, timeout=30,
                                 **kwargs)

    def connect_clients(self, count: int) -> list[str]:
        """An OpenWeatherMap instance, a webhook for every event, and ``count`` clients, one
        per subject, each at its own coordinates (so the simulator tells their calls apart)."""
        assert self.call("POST", "/api/v1/connectors/instances", json={
            "connector_type_id": "openweathermap",
            "configuration": {"app_key": OWM_KEY}}).status_code == 201
        hook = self.call("POST", "/api/v1/webhooks",
                         json={"url": f"{self.receiver_server.url}/hook"})
        assert hook.status_code == 201, hook.text
        return [self.create_client(f"subject-{i}", 10 + i) for i in range(count)]

    def create_client(self, subject: str, latitude: float) -> str:
        resp = self.call("POST", "/api/v1/connectors/clients", subject, json={
            "connector_type_id": "openweathermap",
            "configuration": {"lat": latitude, "lon": 20.0}})
        assert resp.status_code == 201, resp.text
        return resp.json()["client_id"]

    # --- what happened, read from the database ----------------------------------------------

    def rows(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.db_url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def one(self, sql: str, *params):
        return self.rows(sql, *params)[0][0]

    def polled_since(self, since, client_ids: list[str]) -> set[str]:
        rows = self.rows("SELECT id FROM connector_client WHERE last_success_at > %s "
                         "AND status = 'STARTED' AND id = ANY(%s)", since, client_ids)
        return {row[0] for row in rows}

    def db_now(self):
        """The database's clock in the platform's terms (naive UTC)."""
        return self.one("SELECT (now() AT TIME ZONE 'utc')::timestamp")

    def wait_all_polled(self, client_ids: list[str], since, bound: float, what: str) -> float:
        """Seconds until every client has a successful poll after ``since``; fails past
        ``bound`` (plus SLACK)."""
        started = time.monotonic()
        wait_until(lambda: self.polled_since(since, client_ids) == set(client_ids),
                   timeout=bound + SLACK, interval=0.25,
                   message=f"every client polled ({what}) within {bound} s")
        return time.monotonic() - started

    def events(self) -> list[tuple[int, str, str | None, dict]]:
        return [(seq, kind, subject, json.loads(data)) for seq, kind, subject, data in self.rows(
            "SELECT seq, type, external_subject_id, data FROM event WHERE app_id = %s "
            "ORDER BY seq", self.app_id)]

    def wait_delivered(self, timeout: float = 60) -> None:
        """Every event in the outbox so far has reached the webhook receiver, and every
        attempt is recorded (no delivery left PENDING: no run in flight)."""
        wait_until(lambda: {env["id"] for _, env in self.deliveries()}
                   >= {seq for seq, *_ in self.events()}
                   and self.one("SELECT count(*) FROM webhook_delivery"
                                " WHERE status = 'PENDING'") == 0,
                   timeout=timeout, message="every event delivered to the webhook")

    def deliveries(self) -> list[tuple[str, dict]]:
        """(webhook-id, envelope) of every webhook request received, in arrival order."""
        with self.receiver.lock:
            received = list(self.receiver.requests)
        return [(r["headers"]["Webhook-Id"], json.loads(r["body"])) for r in received
                if r["url"].endswith("/hook")]

    def callbacks(self) -> list[dict]:
        """Every action callback the receiver got, in arrival order."""
        with self.receiver.lock:
            received = list(self.receiver.requests)
        return [json.loads(r["body"]) for r in received if r["url"].endswith("/actions")]
