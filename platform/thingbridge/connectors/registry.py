"""The host side of the connector contract: which plugins are installed, and how to build them."""

from __future__ import annotations

import os
import threading
import time
from http.cookiejar import DefaultCookiePolicy

import requests
from flask import current_app

from thingbridge.config import provider_setting
from thingbridge.connectors.contract import Connector, load_connectors
from thingbridge.db import db
from thingbridge.errors import ApiError
from thingbridge.http import bounded
from thingbridge.models import ConnectorDescription
from thingbridge.observability import metrics

EXTENSION = "thingbridge.connectors"


def init_app(app) -> None:
    app.extensions[EXTENSION] = load_connectors()


def connector_classes(app=None) -> dict[str, type[Connector]]:
    return (app or current_app).extensions[EXTENSION]


_local = threading.local()
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def installed(type_id: str, app=None) -> type[Connector]:
    """The connector class of ``type_id``; 409 if its plugin was uninstalled since."""
    cls = connector_classes(app).get(type_id)
    if cls is None:
        raise ApiError(409, f"connector {type_id} is not installed", "CONNECTOR_NOT_INSTALLED")
    return cls


def _session(type_id: str) -> requests.Session:
    """One HTTP session per worker thread and provider: polls reuse kept-alive connections
    instead of a TCP (and TLS) handshake per poll. Per thread because a Session's cookie and
    adapter state are not meant to be shared across threads."""
    sessions = _local.__dict__.setdefault("sessions", {})
    if type_id not in sessions:
        # Counts every answer by code; each call within its timeout and MAX_ANSWER bytes.
        session = bounded.mount(metrics.ProviderSession(type_id))
        # The session serves every end user a thread polls: a cookie one user's answer set must
        # never ride along with another user's request, so none is kept or sent.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=()))
        # With trust_env, requests re-reads the environment on every request, a cost per poll.
        # Without proxy variables, read the CA bundle variables once here instead.
        if not any(k.lower() in PROXY_VARIABLES for k in os.environ):
            session.trust_env = False
            session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                              or os.environ.get("CURL_CA_BUNDLE") or True)
        sessions[type_id] = session
    return sessions[type_id]


def build_connector(type_id: str, app=None) -> Connector:
    """A plugin instance wired to this deployment's provider base URL and timeouts."""
    app = app or current_app
    cls = connector_classes(app)[type_id]
    return cls(base_url=provider_setting(app.config, type_id, "BASE_URL"),
               session=_session(type_id), timeout=app.config["HTTP_TIMEOUT"])


def poll_interval(type_id: str, app=None) -> int:
    app = app or current_app
    cls = connector_classes(app)[type_id]
    return int(provider_setting(app.config, type_id, "POLL_INTERVAL", cls.poll_interval))


def rate_limit(type_id: str, app=None) -> int | None:
    """Provider calls per minute per instance; ``THINGBRIDGE_<TYPE>_RATE_LIMIT=0`` lifts it."""
    app = app or current_app
    cls = connector_classes(app)[type_id]
    value = int(provider_setting(app.config, type_id, "RATE_LIMIT",
                                 cls.rate_limit_per_minute or 0))
    return value or None


# Descriptions change only when a sync runs, so each process keeps the rows it read this many
# seconds: a sync in another process (a migrate while the API runs) shows within the bound.
DESCRIPTIONS_CACHE_SECONDS = 60
_descriptions: dict[tuple, tuple[float, list[ConnectorDescription]]] = {}
_descriptions_lock = threading.Lock()


def installed_descriptions() -> list[ConnectorDescription]:
    """The installed connectors' descriptions, by id (read-only rows, shared by requests)."""
    installed = tuple(sorted(connector_classes()))  # an app's own set (tests make several)
    with _descriptions_lock:
        read_at, rows = _descriptions.get(installed, (None, None))
    if read_at is not None and time.monotonic() - read_at < DESCRIPTIONS_CACHE_SECONDS:
        return rows
    rows = list(ConnectorDescription.select().where(
        ConnectorDescription.type_id.in_(installed)).order_by(ConnectorDescription.id))
    with _descriptions_lock:
        _descriptions[installed] = (time.monotonic(), rows)
    return rows


def sync_descriptions(app) -> None:
    """Mirror the installed plugins into ConnectorDescription; existing ids never change.
    Run by ``thingbridge migrate`` and at the start of ``thingbridge run``, so installing a
    connector is: install its package, migrate."""
    with db.atomic():
        existing = {d.type_id: d for d in ConnectorDescription.select()}
        next_id = max((d.id for d in existing.values()), default=0) + 1
        for type_id, cls in connector_classes(app).items():
            fields = dict(name=cls.name, description=cls.description, logo=cls.logo,
                          sample_instance_configuration=cls.sample_instance_configuration,
                          sample_client_configuration=cls.sample_client_configuration)
            row = existing.get(type_id)
            if row is None:
                ConnectorDescription.create(id=next_id, type_id=type_id, **fields)
                next_id += 1
            elif any(getattr(row, k) != v for k, v in fields.items()):
                ConnectorDescription.update(**fields).where(
                    ConnectorDescription.id == row.id).execute()
    with _descriptions_lock:
        _descriptions.clear()


def resolve_type(value: int | str) -> str:
    """`connector_type_id` as the API loads it: a description id (int) or a type id (str)."""
    query = ConnectorDescription.select()
    if isinstance(value, int):
        row = query.where(ConnectorDescription.id == value).first()
    else:
        row = query.where(ConnectorDescription.type_id == value).first()
    if row is None or row.type_id not in connector_classes():
        raise ApiError(400, f"unknown connector_type_id {value!r}", "UNKNOWN_CONNECTOR_TYPE")
    return row.type_id
