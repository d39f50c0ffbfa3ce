"""An app's connector instances and clients as the API finds them (another app's or subject's
is 404), each with its connector's description, and configuration checked by the plugin."""

from __future__ import annotations

import dataclasses
import datetime
import functools
from typing import NamedTuple

from marshmallow import Schema, ValidationError, fields
from peewee import JOIN, SQL, Case, fn, prefetch

from thingbridge.db import is_postgres, utcnow
from thingbridge.errors import ApiError, found, not_found
from thingbridge.lease import Lease
from thingbridge.models import (
    App,
    ConnectorClient,
    ConnectorDescription,
    ConnectorInstance,
    ThingMapping,
)
from thingbridge.sql import Statement, param


class Checked(NamedTuple):
    configuration: dict
    warnings: list[str]


class ConsentOptions(Schema):
    """Instance settings the host reads for every OAuth connector, beside the plugin's own."""

    confirm_consent = fields.Boolean(metadata={
        "description": "After consent the browser returns with a one-time `confirmation` code; "
                       "the client gets the grant only when the app's backend posts it to "
                       "POST /connectors/clients/{id}/confirm under the same subject"})


def validate_config(connector_cls, what: str, configuration: dict) -> Checked:
    """``configuration`` loaded by the plugin's ``what`` ("instance" or "client") schema (and
    the host's ``ConsentOptions`` for an OAuth instance), and a warning for each key neither
    knows, left out unless the connector declares such keys an error
    (``strict_configuration``). 400 naming each problem otherwise."""
    plugin = getattr(connector_cls, f"{what}_schema")()
    host = ConsentOptions() if what == "instance" and connector_cls.auth_kind == "oauth2" else None
    host_keys = _keys(host) if host else set()
    unknown = [] if what in connector_cls.strict_configuration else sorted(
        key for key in configuration if key not in _keys(plugin) | host_keys)
    given = {k: v for k, v in configuration.items() if k not in unknown}
    try:
        loaded = plugin.load({k: v for k, v in given.items() if k not in host_keys})
        if host:
            loaded.update(host.load({k: v for k, v in given.items() if k in host_keys}))
    except ValidationError as exc:
        raise ApiError(400, f"invalid {what} configuration: " + "; ".join(
            f"{k}: {' '.join(v) if isinstance(v, list) else v}"
            for k, v in exc.normalized_messages().items()),
            "INVALID_CONFIGURATION", errors={"configuration": exc.normalized_messages()}) from exc
    return Checked(loaded, [f"configuration.{key}: unknown {connector_cls.type_id} {what} "
                            "setting, ignored" for key in unknown])


def _keys(schema: Schema) -> set[str]:
    return {field.data_key or name for name, field in schema.load_fields.items()}


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
    return ConnectorClient.select(ConnectorClient.id, ConnectorClient.created_at).where(
        (ConnectorClient.app == app) & (ConnectorClient.external_subject_id == subject)
    ).order_by(ConnectorClient.created_at, ConnectorClient.id)


def own_client(app, subject: str, client_id: str) -> ConnectorClient:
    return found(_client(ConnectorClient.select(), app, subject, client_id).first(),
                 "connector client")


class Shown(NamedTuple):
    """A related object of a shown client, by id (its link needs nothing else)."""

    id: str | int


class ShownMapping(NamedTuple):
    connector_thing_id: str
    thing_id: str


@dataclasses.dataclass
class ShownClient:
    id: str
    status: str
    status_reason: str | None
    status_since: datetime.datetime
    last_polled_at: datetime.datetime | None
    next_poll_at: datetime.datetime | None
    instance: Shown
    description: Shown
    mappings: list[ShownMapping]
    warnings: list[str] = dataclasses.field(default_factory=list)


_SHOWN_CLIENT = (ConnectorClient.id, ConnectorClient.status, ConnectorClient.status_reason,
                 ConnectorClient.status_since, ConnectorClient.last_polled_at,
                 ConnectorClient.next_poll_at, ConnectorClient.instance, ConnectorDescription.id,
                 ThingMapping.connector_thing_id, ThingMapping.thing)


@functools.cache
def _read_client_statement(postgres: bool) -> Statement:
    """The client, its description's id and a row per mapping (none: one row, the mapping's
    columns NULL), built once per dialect: building it with peewee per request cost more CPU
    than the rest of the request."""
    return Statement.build(_client(
        ConnectorClient.select(*_SHOWN_CLIENT)
        .join(ConnectorDescription, on=_described_by(ConnectorClient))
        .switch(ConnectorClient)
        .join(ThingMapping, JOIN.LEFT_OUTER, on=ThingMapping.client == ConnectorClient.id),
        param("app"), param("subject"), param("client"))
        .order_by(ThingMapping.connector_thing_id))


def read_client(app, subject: str, client_id: str) -> ShownClient:
    """The client as the API shows it: status (why, since when, polled when), its ``instance``
    and ``description`` (ids) and its thing ``mappings`` (configuration and tokens are never
    read for it)."""
    rows = _read_client_statement(is_postgres()).run(
        app=app.id, subject=subject, client=client_id).fetchall()
    if not rows:
        raise not_found("connector client")
    times = [ConnectorClient.status_since.python_value(value) for value in rows[0][3:6]]
    (id_, status, reason), (instance, description) = rows[0][:3], rows[0][6:8]
    return ShownClient(id_, status, reason, *times, Shown(instance), Shown(description),
                       [ShownMapping(row[8], row[9]) for row in rows if row[8] is not None])


# What the console shows of a client: never its configuration or tokens.
SHOWN = (ConnectorClient.id, ConnectorClient.app, ConnectorClient.type_id,
         ConnectorClient.external_subject_id, ConnectorClient.status,
         ConnectorClient.status_reason, ConnectorClient.status_since,
         ConnectorClient.next_poll_at, ConnectorClient.last_polled_at,
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


def due(client, now: datetime.datetime):
    """``client`` (the model, or an alias of it) is due for a poll and no poll holds it or was
    sent for it: what the dispatcher claims, and the backlog the metrics count."""
    return ((client.next_poll_at <= now) & (client.status != "ERROR")
            & Lease(client, 0).free(now))


def poll_backlog() -> list[tuple[str, int, datetime.datetime]]:
    """(connector, clients due and not sent yet, the earliest due time among them), of the
    apps the dispatcher serves (not a disabled one's): one grouped query."""
    disabled = App.select(App.id).where(App.disabled_at.is_null(False))
    return list(ConnectorClient.select(ConnectorClient.type_id, fn.COUNT(ConnectorClient.id),
                                       fn.MIN(ConnectorClient.next_poll_at))
                .where(due(ConnectorClient, utcnow()) & ConnectorClient.app.not_in(disabled))
                .group_by(ConnectorClient.type_id).tuples())


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
