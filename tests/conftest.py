"""Shared fixtures: real PostgreSQL and Redis (required, never skipped), provider simulators
served over real HTTP, and a Flask app wired to all three."""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlsplit

import pytest
from helpers import (
    AMQP_URL,
    BROKER_URL,
    DATABASE_URL,
    LOOPBACK,
    MQTT_URL,
    PUBLIC_BASE_URL,
    SECRET_KEY,
    basic,
)

pytest_plugins = ["worker_fixtures", "raw_receivers"]


def pytest_collection_modifyitems(items):
    """Every test that starts worker processes is ``slow``: ``-m "not slow"`` is the quick run."""
    for item in items:
        if {"start_worker", "worker_env"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=3):
            return True
    except OSError:
        return False


def pytest_sessionstart(session):
    # The suite needs the real services: missing ones fail the run, they never skip tests.
    services = (DATABASE_URL, BROKER_URL, AMQP_URL, MQTT_URL)
    missing = [f"{urlsplit(url).scheme}://{urlsplit(url).hostname}:{urlsplit(url).port}"
               for url in services if not _reachable(url)]
    if missing:
        raise pytest.UsageError(f"required services unreachable: {', '.join(missing)} "
                                "(start PostgreSQL, Redis, RabbitMQ and Mosquitto, see .ci/run)")


@pytest.fixture(scope="session")
def simulators():
    from thingbridge.localserver import LocalServer
    from thingbridge_netatmo.simulator import create_simulator as netatmo_sim
    from thingbridge_openweathermap.simulator import create_simulator as owm_sim

    servers = {"openweathermap": LocalServer(owm_sim()).start(),
               "netatmo": LocalServer(netatmo_sim()).start()}
    yield {name: server.url for name, server in servers.items()}
    for server in servers.values():
        server.stop()


def _reset_schema(database) -> None:
    database.execute_sql("DROP SCHEMA public CASCADE")
    database.execute_sql("CREATE SCHEMA public")


@pytest.fixture(scope="session")
def flask_app(simulators, tmp_path_factory):
    os.environ["THINGBRIDGE_VAR_DIR"] = str(tmp_path_factory.mktemp("var"))
    from thingbridge import create_app, db
    from thingbridge.connectors import registry

    app = create_app({
        "DATABASE_URL": DATABASE_URL, "BROKER_URL": BROKER_URL, "SECRET_KEYS": SECRET_KEY,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "OPENWEATHERMAP_BASE_URL": simulators["openweathermap"],
        "NETATMO_BASE_URL": simulators["netatmo"], "HTTP_TIMEOUT": 3, "TESTING": True,
        "OUTBOUND_ALLOW": LOOPBACK, "WEBHOOK_RETRY_BASE": 0.2, "WEBHOOK_LEASE": 5,
        "WEBHOOK_TIMEOUT": 3,
    })
    with db.db.connection_context():
        _reset_schema(db.db)
        db.migrate_up()
        registry.sync_descriptions(app)
    return app


@pytest.fixture
def second_app(flask_app, monkeypatch):
    """``create_app`` for a test that needs an app configured otherwise. Building one replaces
    process globals (database proxy, secret keyring, Celery's default app, the OAuth server's
    app); every one is restored afterwards, so later tests still run against ``flask_app``."""
    from celery import _state

    from thingbridge import create_app, crypto
    from thingbridge import db as database
    from thingbridge.auth.server import server

    saved_db, saved_celery = database.db.obj, _state.default_app
    saved_server = dict(vars(server))
    monkeypatch.setattr(crypto, "_keyring", crypto.keyring())
    yield create_app
    database.db.initialize(saved_db)
    _state.set_default_app(saved_celery)
    vars(server).clear()
    vars(server).update(saved_server)


def truncate_all() -> None:
    from thingbridge.db import db
    from thingbridge.models import ALL_MODELS, ConnectorDescription

    tables = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS
                       if m is not ConnectorDescription)
    db.execute_sql(f"TRUNCATE {tables} CASCADE")


@pytest.fixture(params=["postgres", "sqlite"])
def database(request, tmp_path):
    """Run the test body on the suite's PostgreSQL, or on a fresh migrated SQLite file (the
    embedded default): for code whose statements differ between the two."""
    from thingbridge.db import db, migrate_up, open_database

    if request.param == "postgres":
        request.getfixturevalue("clean_db")
        yield "postgres"
        return
    request.getfixturevalue("flask_app")  # configures the secret keys
    saved = db.obj
    sqlite = open_database(f"sqlite:///{tmp_path / 'embedded.db'}")
    try:
        with db.connection_context():
            migrate_up()
            yield "sqlite"
    finally:
        sqlite.close()
        db.initialize(saved)


@pytest.fixture
def clean_db(flask_app):
    """Empty tables and queue; the test body runs inside an app context, like a request."""
    from worker_fixtures import clear_unacked  # after pytest loaded it as a plugin

    from thingbridge import tasks
    from thingbridge.db import db
    from thingbridge.http import breaker

    # A broker or provider outage one test made is not the next one's.
    tasks._soon_paused_until[0] = 0.0
    breaker.forget()
    with flask_app.app_context():
        with db.connection_context():
            truncate_all()
            flask_app.extensions["celery"].control.purge()
            clear_unacked()  # what a killed worker left unacknowledged survives a purge
        db.connect(reuse_if_open=True)
        yield
        if not db.is_closed():
            db.close()


class Api:
    """A Flask test client acting as one app (token) for one end user (subject)."""

    def __init__(self, http, token: str | None, subject: str | None = "alice"):
        self.http, self.token, self.subject = http, token, subject

    def as_subject(self, subject: str | None) -> Api:
        return Api(self.http, self.token, subject)

    def headers(self, extra=None) -> dict:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.subject is not None:
            headers["X-External-Subject-Id"] = self.subject
        headers.update(extra or {})
        return headers

    def request(self, method, path, json=None, headers=None, **kwargs):
        return self.http.open(path, method=method, json=json, headers=self.headers(headers),
                              **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture
def live_api(flask_app, clean_db, monkeypatch):
    """The app served over real HTTP on 127.0.0.1 (browsers, cookie-keeping clients), which
    is then its public base URL (links, the OAuth redirect URI)."""
    from thingbridge.localserver import LocalServer

    server = LocalServer(flask_app).start()
    monkeypatch.setitem(flask_app.config, "PUBLIC_BASE_URL", server.url)
    yield server.url
    server.stop()


@pytest.fixture
def http(flask_app, clean_db):
    return flask_app.test_client()


@pytest.fixture
def make_app(http):
    """Register an app and return an Api acting as it, with a token for ``scopes``."""
    from thingbridge.models import ALL_SCOPES, App

    def factory(name="app", scopes=ALL_SCOPES, subject="alice", token_scopes=None) -> Api:
        app, secret = App.register(name, scopes)
        body = {"grant_type": "client_credentials"}
        if token_scopes is not None:
            body["scope"] = " ".join(token_scopes)
        resp = http.post("/oauth2/token", data=body,
                         headers={"Authorization": basic(app.client_id, secret)})
        assert resp.status_code == 200, resp.json
        api = Api(http, resp.json["access_token"], subject)
        api.model, api.client_id, api.secret = app, app.client_id, secret
        return api

    return factory


@pytest.fixture
def api(make_app) -> Api:
    return make_app("app-a")



@pytest.fixture
def hanging_dns(monkeypatch):
    """Names under ``.hang`` have a name server that does not answer until released (set)."""
    from thingbridge.http import addresses

    release = threading.Event()

    def resolve(host, port):
        if host.endswith(".hang"):
            release.wait(120)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return addresses._getaddrinfo(host, port)

    monkeypatch.setattr(addresses, "resolver", resolve)
    yield release
    release.set()
