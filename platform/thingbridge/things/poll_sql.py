"""The statements every poll runs, built once per dialect and then reused as constant text
(``thingbridge.sql``): peewee where it can express them, the models' table and column names
where it cannot. Only the poll's hot statements live here.
"""

from __future__ import annotations

import datetime
import json
from functools import cache
from typing import NamedTuple

from peewee import JOIN, Case, fn

from thingbridge.db import is_postgres
from thingbridge.db_pool import repeatable
from thingbridge.lease import Lease
from thingbridge.models import (
    Component,
    ConnectorClient,
    ConnectorInstance,
    Property,
    Thing,
    ThingMapping,
)
from thingbridge.outbox import events
from thingbridge.sql import Statement, param

# --- taking and releasing the client ------------------------------------------------------

_CLIENT_FIELDS = ConnectorClient._meta.sorted_fields
_INSTANCE_FIELDS = ConnectorInstance._meta.sorted_fields
RELEASED = {"lease_token": None, "leased_until": None}


@cache
def _take_client(postgres: bool) -> Statement:
    # On PostgreSQL one statement takes the lease and reads the client with its instance.
    # Taking it twice with the same token is the same as once, so it may run again after a
    # lost connection. SQLite cannot return the joined instance from an UPDATE: it reads after.
    holder = {ConnectorClient.lease_token: param("token"),
              ConnectorClient.leased_until: param("until")}
    takeable = ((ConnectorClient.id == param("id"))
                & Lease(ConnectorClient, 0).takeable(
                   param("token"), param("now"), ConnectorClient.next_poll_at <= param("now")))
    if not postgres:
        return Statement.build(ConnectorClient.update(holder).where(takeable))
    statement = Statement.build(
        ConnectorClient.update(holder).from_(ConnectorInstance)
        .where((ConnectorClient.instance == ConnectorInstance.id) & takeable)
        .returning(*_CLIENT_FIELDS, *_INSTANCE_FIELDS))
    return statement._replace(sql=repeatable(statement.sql))


@cache
def _load_client(postgres: bool) -> Statement:
    return Statement.build(ConnectorClient.select(*_CLIENT_FIELDS, *_INSTANCE_FIELDS)
                           .join(ConnectorInstance).where(ConnectorClient.id == param("id")))


def from_row(model, fields, values):
    """A model instance from a row of ``fields`` (as a constant statement returned them)."""
    instance = model(**{f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)})
    instance._dirty.clear()
    return instance


def row_parts(row, *groups) -> list[tuple]:
    """``row`` cut into consecutive parts, one per group of columns (a joined statement's
    row, each table's fields in turn); what is left over is a last part."""
    parts, start = [], 0
    for group in groups:
        parts.append(row[start:start + len(group)])
        start += len(group)
    return [*parts, row[start:]]


def take_client(client_id: str, token: str, now: datetime.datetime,
                until: datetime.datetime) -> ConnectorClient | None:
    """Hold the client until ``until`` if ``token`` holds it already, or it is free and due;
    the client with its instance (configurations decrypted), or None if not (held by another
    poll, polled since the task was sent, or deleted)."""
    taken = _take_client(is_postgres()).run(token=token, until=until, id=client_id, now=now)
    if is_postgres():
        row = taken.fetchone()
    else:
        row = _load_client(False).run(id=client_id).fetchone() if taken.rowcount else None
    if row is None:
        return None
    client_part, instance_part, _ = row_parts(row, _CLIENT_FIELDS, _INSTANCE_FIELDS)
    client = from_row(ConnectorClient, _CLIENT_FIELDS, client_part)
    client.instance = from_row(ConnectorInstance, _INSTANCE_FIELDS, instance_part)
    return client


def _mark_polled_query(postgres: bool):
    fields = ("status_reason", "updated_at", "last_polled_at", "last_success_at",
              "failure_count", *RELEASED)
    # A poll asked for while this one ran (after an action: it may have read the device before
    # the action took effect) moved next_poll_at from what the take saw; the sooner one stays.
    due, scheduled = ConnectorClient.next_poll_at, param("next_poll_at")
    sooner = (fn.LEAST if postgres else fn.MIN)(fn.COALESCE(due, scheduled), scheduled)
    return (ConnectorClient.update({**{getattr(ConnectorClient, f): param(f) for f in fields},
                                    due: Case(None, [(due == param("seen"), scheduled)], sooner)})
            .where((ConnectorClient.id == param("id"))
                   & (ConnectorClient.status == param("status"))))


@cache
def _mark_polled(postgres: bool) -> Statement:
    return Statement.build(_mark_polled_query(postgres))


def _polled(client_id: str, status: str, now: datetime.datetime,
            next_poll_at: datetime.datetime, seen: datetime.datetime | None) -> dict:
    return dict(status_reason=None, updated_at=now, last_polled_at=now, last_success_at=now,
                failure_count=0, next_poll_at=next_poll_at, seen=seen, id=client_id,
                status=status, **RELEASED)


def mark_polled(client_id: str, status: str, now: datetime.datetime,
                next_poll_at: datetime.datetime, seen: datetime.datetime | None) -> bool:
    """Record a successful poll of a client already in ``status`` and release its lease; False
    if it is not in that status. ``seen``: the client's next_poll_at when the poll took it."""
    return _mark_polled(is_postgres()).run(
        **_polled(client_id, status, now, next_poll_at, seen)).rowcount == 1


# --- the client's things -----------------------------------------------------------------------


class StoredProperty(NamedTuple):
    """One row of a client's stored things, flattened down to the property."""

    connector_thing_id: str
    thing_id: str
    name: str
    manufacturer: str
    display_type: str
    main_component_id: str
    status: str
    attributes: str  # JSON text
    component_pk: int | None
    component_id: str | None
    property_pk: int | None
    property_id: str | None
    value: str | None


@cache
def _read_things(postgres: bool) -> Statement:
    # Keyed by the client, so the planner walks the mapping index and nested-loops into the
    # per-thing and per-component indexes; a list of ids lets it hash-join whole tables.
    return Statement.build(ThingMapping.select(
        ThingMapping.connector_thing_id, Thing.id, Thing.name, Thing.manufacturer,
        Thing.display_type, Thing.main_component_id, Thing.status, Thing.attributes,
        Component.id, Component.component_id, Property.id, Property.property_id, Property.value)
        .join(Thing).join(Component, JOIN.LEFT_OUTER, on=(Component.thing == Thing.id))
        .join(Property, JOIN.LEFT_OUTER, on=(Property.component == Component.id))
        .where(ThingMapping.client == param("client")))


def read_things(client_id: str) -> list[StoredProperty]:
    return [StoredProperty(*row)
            for row in _read_things(is_postgres()).run(client=client_id).fetchall()]


# --- writing readings -------------------------------------------------------------------------


def _write_values_sql(head: str, gate: str) -> str:
    """The CTEs ``old`` (the properties' values, read under lock, in id order) and ``changed``
    (each value that still differs from the reading, written; its row's ordinality ``n``, the
    row ``item`` and the value it ``replaced``). Reading under lock makes the value replaced the
    one the event must tell, even when another writer (a stale poll of the client, past its
    lease) wrote it after this poll's read."""
    table, pk, value, updated = (Property._meta.table_name, Property.id.column_name,
                                 Property.value.column_name, Property.last_update.column_name)
    # The id array is what the planner sizes the scan by: joined only to the JSON rows (which
    # it guesses at 100) it seq-scanned the whole property table when statistics were stale.
    return (f"{head}old AS (SELECT {pk}, {value} FROM {table}"
            f" WHERE {pk} = ANY(%s::integer[]){gate} ORDER BY {pk} FOR NO KEY UPDATE), "
            f"changed AS (UPDATE {table} AS p SET {value} = v.item->>1, {updated} = %s"
            " FROM old, json_array_elements(%s::json) WITH ORDINALITY AS v(item, n)"
            f" WHERE p.{pk} = old.{pk} AND old.{pk} = (v.item->>0)::integer"
            f" AND old.{value} IS DISTINCT FROM v.item->>1"
            f" RETURNING v.n, v.item, old.{value} AS replaced)")


@cache
def _write_values(postgres: bool) -> Statement:
    if not postgres:  # inside the caller's transaction, which holds SQLite's write lock
        return Statement.build(
            Property.update({Property.value: param("new"), Property.last_update: param("now")})
            .where(Property.id == param("pk")))
    return Statement(_write_values_sql("WITH ", "") + " SELECT n, replaced FROM changed",
                     ("ids", "now", "rows"))


def _rows(changes: list[tuple]) -> tuple[str, str]:
    """The statement's two text parameters: psycopg adapting a Python list element by element
    cost more than the statement itself at a station's ~45 changed values."""
    return ("{" + ",".join(str(pk) for pk, *_ in changes) + "}",
            json.dumps(changes, separators=(",", ":")))


def write_values(changes: list[tuple[int, str]], now: datetime.datetime) -> dict[int, str | None]:
    """Inside the caller's transaction: set each (property pk, reading) where the stored value
    differs from it; returns pk -> the value replaced (a pk left out already held its
    reading)."""
    if not is_postgres():
        wanted = dict(changes)
        stored = Property.select(Property.id, Property.value).where(
            Property.id.in_(list(wanted))).tuples()
        replaced = {pk: value for pk, value in stored if value != wanted[pk]}
        for pk in replaced:
            _write_values(False).run(new=wanted[pk], now=now, pk=pk)
        return replaced
    ids, rows = _rows(changes)
    by_n = _write_values(True).run(ids=ids, now=now, rows=rows).fetchall()
    return {changes[n - 1][0]: value for n, value in by_n}


@cache
def _record_readings() -> Statement:
    """PostgreSQL: the poll recorded (``mark_polled``, as CTE ``polled``), its readings
    written and their events appended, one statement. Lock order as in a poll's transaction:
    the client row, then the properties, then the app's event counter."""
    polled = Statement.build(_mark_polled_query(True).returning(ConnectorClient.id))
    # The data's text around its oldValue is Python's (non-ASCII escaped), the value itself
    # PostgreSQL's (raw UTF-8): the same JSON once parsed, which is how every reader reads it.
    said = ("said AS (SELECT n, %s::text AS type, %s::text AS subject,"
            " (item->>2) || COALESCE(to_json(replaced)::text, 'null') || (item->>3) AS data"
            " FROM changed), ")
    return Statement(
        _write_values_sql(f"WITH polled AS ({polled.sql}), ", " AND EXISTS (SELECT 1 FROM polled)")
        + ", " + said + events.appended_from("said") + " SELECT EXISTS (SELECT 1 FROM polled)",
        (*polled.names, "ids", "now", "rows", "type", "subject", *events.APPENDED_FROM))


def record_readings(client_id: str, status: str, now: datetime.datetime,
                    next_poll_at: datetime.datetime, seen: datetime.datetime | None,
                    changes: list[tuple[int, str, str, str]], app_id: str, type_: str,
                    subject: str) -> bool:
    """PostgreSQL, committed on its own: ``mark_polled`` and, if it found the client in
    ``status``, each (property pk, reading, the event data's JSON text before its oldValue and
    after it) written where the stored value differs, with its event; False (nothing written)
    if the client was not in that status."""
    ids, rows = _rows(changes)
    return _record_readings().run(**_polled(client_id, status, now, next_poll_at, seen),
                                  now=now, ids=ids, rows=rows, type=type_, subject=subject,
                                  app=app_id).fetchone()[0]
