"""An app's connector instances and clients as the API finds them (another app's or subject's
is 404), each with its connector's description, and configuration checked by the plugin."""

from __future__ import annotations

import datetime

from marshmallow import ValidationError
from peewee import SQL, Case, fn, prefetch

from thingbridge.db import utcnow
from thingbridge.errors import ApiError, found
from thingbridge.models import (
    ConnectorClient,
    ConnectorDescription,
    ConnectorInstance,
    ThingMapping,
)


def validate_config(schema_cls, configuration: dict, what: str) -> dict:
    """``configuration`` loaded by a plugin's instance or client schema; 400 naming each
    problem otherwise."""
    try:
        return schema_cls().load(configuration)
    except ValidationError as exc:
        raise ApiError(400, f"invalid {what} configuration: " + "; ".join(
            f"{k}: {' '.join(v) if isinstance(v, list) else v}"
            for k, v in exc.normalized_messages().items()),
            "INVALID_CONFIGURATION", errors={"configuration": exc.normalized_messages()}) from exc


def app_instances(app):
    return ConnectorInstance.select(ConnectorInstance.id).where(
        ConnectorInstance.app == app).order_by(ConnectorInstance.created_at)


def own_instance(app, instance_id: str) -> ConnectorInstance:
    return found(_instance(ConnectorInstance.select(), app, instance_id).first(),
                 "connector instance")


def read_instance(app, instance_id: str) -> ConnectorInstance:
    """The instance as the API shows it: id, its connector's ``description`` and its
    ``clients`` (ids only; configurations are never read for it)."""
    query = _instance(ConnectorInstance.select(
        ConnectorInstance.id, ConnectorInstance.type_id, ConnectorDescription.id).join(
        ConnectorDescription, on=_described_by(ConnectorInstance), attr="description"),
        app, instance_id)
    clients = ConnectorClient.select(ConnectorClient.id, ConnectorClient.instance).order_by(
        ConnectorClient.created_at)
    instances = prefetch(query, clients)
    return found(instances[0] if instances else None, "connector instance")


def subject_clients(app, subject: str):
    return ConnectorClient.select(ConnectorClient.id).where(
        (ConnectorClient.app == app) & (ConnectorClient.external_subject_id == subject)
    ).order_by(ConnectorClient.created_at)


def own_client(app, subject: str, client_id: str) -> ConnectorClient:
    return found(_client(ConnectorClient.select(), app, subject, client_id).first(),
                 "connector client")


def read_client(app, subject: str, client_id: str) -> ConnectorClient:
    """The client as the API shows it: status, its ``instance`` and ``description`` (ids) and
    its thing ``mappings`` (configuration and tokens are never read for it)."""
    query = _client(ConnectorClient.select(
        ConnectorClient.id, ConnectorClient.type_id, ConnectorClient.status,
        ConnectorClient.status_reason, ConnectorInstance.id, ConnectorDescription.id
    ).join(ConnectorInstance).switch(ConnectorClient).join(
        ConnectorDescription, on=_described_by(ConnectorClient), attr="description"),
        app, subject, client_id)
    mappings = ThingMapping.select().order_by(ThingMapping.connector_thing_id)
    clients = prefetch(query, mappings)
    return found(clients[0] if clients else None, "connector client")


# What the console shows of a client: never its configuration or tokens.
SHOWN = (ConnectorClient.id, ConnectorClient.app, ConnectorClient.type_id,
         ConnectorClient.external_subject_id, ConnectorClient.status,
         ConnectorClient.status_reason, ConnectorClient.next_poll_at,
         ConnectorClient.last_success_at, ConnectorClient.failure_count,
         ConnectorClient.created_at, ConnectorClient.updated_at)
FRESHNESS = ("1x", "2x", "10x", "older", "never")


def app_clients(app, type_id: str | None = None, status: str | None = None,
                subject: str | None = None):
    """The app's clients (all subjects), newest first; ``subject`` matches as a prefix."""
    query = ConnectorClient.select(*SHOWN).where(ConnectorClient.app == app)
    if type_id:
        query = query.where(ConnectorClient.type_id == type_id)
    if status:
        query = query.where(ConnectorClient.status == status)
    if subject:
        query = query.where(ConnectorClient.external_subject_id.startswith(subject))
    return query.order_by(ConnectorClient.created_at.desc(), ConnectorClient.id)


def app_client(app, client_id: str) -> ConnectorClient:
    """One of the app's clients, whatever its subject (another app's is 404)."""
    return found(ConnectorClient.select(*SHOWN).where(
        (ConnectorClient.id == client_id) & (ConnectorClient.app == app)).first(),
        "connector client")


def troubled_clients(app, limit: int = 10) -> list[ConnectorClient]:
    """The app's clients in ERROR or failing right now, most recently changed first."""
    return list(ConnectorClient.select(*SHOWN).where(
        (ConnectorClient.app == app) & ((ConnectorClient.status == "ERROR")
                                        | (ConnectorClient.failure_count > 0)))
        .order_by(ConnectorClient.updated_at.desc()).limit(limit))


def client_counts(app=None) -> list[tuple[str, str, int, datetime.datetime | None]]:
    """(connector, status, clients, oldest last success) for one app's clients, or for every
    app's (the metrics): one grouped query."""
    query = ConnectorClient.select(ConnectorClient.type_id, ConnectorClient.status,
                                   fn.COUNT(ConnectorClient.id),
                                   fn.MIN(ConnectorClient.last_success_at))
    if app is not None:
        query = query.where(ConnectorClient.app == app)
    return list(query.group_by(ConnectorClient.type_id, ConnectorClient.status).tuples())


def freshness(app, intervals: dict[str, float]) -> dict[str, int]:
    """How many of the app's clients last polled successfully within 1x, 2x or 10x their
    connector's interval (seconds, by connector in ``intervals``), longer ago, or never."""
    now, counts = utcnow(), dict.fromkeys(FRESHNESS, 0)
    last = ConnectorClient.last_success_at
    for type_id, interval in intervals.items():
        def since(times, interval=interval):
            return now - datetime.timedelta(seconds=times * interval)

        bucket = Case(None, [(last.is_null(), "never"), (last >= since(1), "1x"),
                             (last >= since(2), "2x"), (last >= since(10), "10x")], "older")
        rows = (ConnectorClient.select(bucket.alias("bucket"), fn.COUNT(ConnectorClient.id))
                .where((ConnectorClient.app == app) & (ConnectorClient.type_id == type_id))
                .group_by(SQL("bucket")).tuples())
        for name, clients in rows:
            counts[name] += clients
    return counts


def _instance(query, app, instance_id: str):
    return query.where((ConnectorInstance.id == instance_id) & (ConnectorInstance.app == app))


def _client(query, app, subject: str, client_id: str):
    return query.where((ConnectorClient.id == client_id) & (ConnectorClient.app == app)
                       & (ConnectorClient.external_subject_id == subject))


def _described_by(model):
    return model.type_id == ConnectorDescription.type_id
