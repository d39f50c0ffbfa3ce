"""Test helpers shared across test folders: polling waits, an HTTP receiver, sample bodies."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time

import psycopg
from cryptography.fernet import Fernet
from werkzeug.wrappers import Request, Response

DATABASE_URL = os.environ.get("THINGBRIDGE_TEST_DATABASE_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
BROKER_URL = os.environ.get("THINGBRIDGE_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
# Message brokers that receive published events (tests use their own exchanges and topics).
AMQP_URL = os.environ.get("THINGBRIDGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MQTT_URL = os.environ.get("THINGBRIDGE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
SECRET_KEY = Fernet.generate_key().decode()
# What the Flask test client's requests come in as (production requires the setting).
PUBLIC_BASE_URL = "http://localhost"
OWM_KEY = "0123456789abcdef0123456789abcdef"  # valid shape for the OpenWeatherMap simulator
OTHER_KEY = "fedcba9876543210fedcba9876543210"  # a second key of that shape
# Receivers in the tests run on this machine: the outbound policy opens loopback for them.
LOOPBACK = "127.0.0.0/8,::1/128"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class Receiver:
    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict | None]] = []  # consumed first, then `default`
        self.default: tuple[int, dict | None] = (204, None)
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            status, body = self.script.pop(0) if self.script else self.default
            self.requests.append({"url": request.url, "headers": dict(request.headers),
                                  "body": request.get_data(), "answered": status})
        payload = json.dumps(body) if body is not None else ""
        return Response(payload, status=status,
                        content_type="application/json")(environ, start_response)

    def answered(self, status: int) -> list[dict]:
        return [r for r in self.requests if r["answered"] == status]


def wait_until(predicate, timeout=30.0, interval=0.2, message="condition"):
    """Poll ``predicate`` until truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# An app-created thing with one action (used by the things and actions tests).
LAMP = {
    "name": "Desk lamp", "manufacturer": "ACME", "displaytype": "core.LIGHT",
    "maincomponentid": "switch", "attributes": [{"name": "room", "value": "office"}],
    "components": [{
        "id": "switch", "name": "Switch", "componenttype": "core.SWITCH",
        "capabilities": ["core.SWITCHABLE"],
        "properties": [{"id": "on", "name": "On", "value": "false", "type": "BOOLEAN"},
                       {"id": "level", "value": "40", "unit": "%", "type": "NUMBER",
                        "propertytype": "core.LEVEL"}],
        "actions": [{"id": "setOn", "parameters": [{"name": "on", "type": "BOOLEAN",
                                                    "required": True}]}],
    }],
}


def sync_things(client, specs) -> list:
    """What a poll writes after its fetch, without the status: plan against what is stored,
    apply and emit in one transaction; returns the events emitted."""
    from thingbridge.db import db
    from thingbridge.outbox import events
    from thingbridge.things import sync

    with db.atomic():
        said = sync.apply(client, sync.plan(sync.read_stored(client.id), specs))
        events.emit_many(client.app_id, said)
    return said


class Statements:
    """Counts the statements and transactions the database is sent."""

    def __init__(self, monkeypatch):
        from thingbridge.db import db

        self.sql, self.transactions, self.flights = [], 0, []
        database = db.obj
        execute, begin = database.execute_sql, database.begin
        flight = getattr(database, "transaction_in_one_flight", None)

        def counting_flight(statements):
            self.flights.append(len(statements))
            return flight(statements)

        if flight is not None:
            monkeypatch.setattr(database, "transaction_in_one_flight", counting_flight)

        def counting_execute(sql, params=None, *args, **kwargs):
            self.sql.append(sql)
            return execute(sql, params, *args, **kwargs)

        def counting_begin(*args, **kwargs):
            self.transactions += 1
            return begin(*args, **kwargs)

        monkeypatch.setattr(database, "execute_sql", counting_execute)
        monkeypatch.setattr(database, "begin", counting_begin)

    def reset(self) -> None:
        self.sql.clear()
        self.transactions = 0
        self.flights.clear()


def lock_waiters(probe, statement: str) -> list[int]:
    """The sessions whose statement starts with ``statement`` and waits for a lock."""
    return [pid for (pid,) in probe.execute(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND starts_with(query, %s)", (statement,))]


@contextlib.contextmanager
def waiting_on(flask_app, hold: str, params: tuple, run, statement: str):
    """Another transaction runs ``hold`` (a write, locking its row) and keeps it open while
    ``run`` goes in a thread with a connection of its own. Yields a probe connection and the
    list ``run``'s answer is put in, once ``run``'s statement starting with ``statement``
    waits for a row lock; then the hold commits and ``run`` finishes."""
    from thingbridge.db import db

    other = psycopg.connect(DATABASE_URL)
    other.execute(hold, params)
    answers = []

    def target():
        with flask_app.app_context():
            try:
                answers.append(run())
            finally:  # the thread's connection back to the pool (a request gave it already)
                if not db.is_closed():
                    db.close()

    thread = threading.Thread(target=target)
    thread.start()
    try:
        with psycopg.connect(DATABASE_URL, autocommit=True) as probe:
            wait_until(lambda: len(lock_waiters(probe, statement)) == 1,
                       timeout=30, message=f"{statement} waiting for a lock")
            yield probe, answers
    finally:
        other.commit()
        other.close()
        thread.join(timeout=30)
