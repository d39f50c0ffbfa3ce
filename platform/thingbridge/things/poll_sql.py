"""The statements every poll runs, written out as constant SQL.

Building them with peewee's query builder cost more worker CPU than running them (loading a
client took ~0.45 ms, reading a station's things ~1.4 ms; the raw statements ~0.05 and ~0.1 ms),
and constant text lets psycopg prepare each statement once per connection. Only these hot
statements live here; everything else stays in peewee. Statements are written for PostgreSQL
(``%s``); SQLite, the embedded default, gets the same text with ``?`` placeholders, and a plain
per-row path where PostgreSQL takes arrays.
"""

from __future__ import annotations

import datetime
import json
from functools import cache
from typing import NamedTuple

from thingbridge.db import db, is_postgres
from thingbridge.models import ConnectorClient, ConnectorInstance


@cache
def _dialect(sql: str, postgres: bool) -> str:
    return sql if postgres else sql.replace("%s", "?")


def _run(sql: str, params: tuple | list = ()):
    return db.execute_sql(_dialect(sql, is_postgres()), params)


_CLIENT_FIELDS = ConnectorClient._meta.sorted_fields
_INSTANCE_FIELDS = ConnectorInstance._meta.sorted_fields
_LOAD_CLIENT = (
    "SELECT " + ", ".join([f"c.{f.column_name}" for f in _CLIENT_FIELDS]
                          + [f"i.{f.column_name}" for f in _INSTANCE_FIELDS])
    + " FROM connector_client c JOIN connector_instance i ON i.id = c.instance_id"
    " WHERE c.id = %s")


def _model(model, fields, values):
    instance = model(**{f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)})
    instance._dirty.clear()
    return instance


def load_client(client_id: str) -> ConnectorClient | None:
    """The client with its instance (configurations decrypted), or None if it is gone."""
    row = _run(_LOAD_CLIENT, (client_id,)).fetchone()
    if row is None:
        return None
    split = len(_CLIENT_FIELDS)
    client = _model(ConnectorClient, _CLIENT_FIELDS, row[:split])
    client.instance = _model(ConnectorInstance, _INSTANCE_FIELDS, row[split:])
    return client


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


# One join keyed by the client: the planner walks the mapping index and nested-loops into the
# per-thing and per-component indexes (an IN list of ids made it hash-join whole tables).
_READ_THINGS = (
    "SELECT m.connector_thing_id, t.id, t.name, t.manufacturer, t.display_type,"
    " t.main_component_id, t.status, t.attributes, c.id, c.component_id, p.id, p.property_id,"
    " p.value FROM thing_mapping m JOIN thing t ON t.id = m.thing_id"
    " LEFT JOIN component c ON c.thing_id = t.id"
    " LEFT JOIN property p ON p.component_id = c.id WHERE m.client_id = %s")


def read_things(client_id: str) -> list[StoredProperty]:
    return [StoredProperty(*row) for row in _run(_READ_THINGS, (client_id,)).fetchall()]


# Rows travel as one JSON text parameter: psycopg adapts a Python list element by element,
# which cost more than the statement itself at a station's ~45 changed values. The id list
# beside it is what the planner sizes the scan by: joined only to the JSON rows (which it
# guesses at 100), it seq-scanned the whole property table whenever statistics were stale,
# as on a fresh database (3.5 ms instead of 0.3 ms at 1,000 clients).
_SWAP_VALUES_PG = (
    "UPDATE property AS p SET value = v.item->>2, last_update = %s"
    " FROM json_array_elements(%s::json) AS v(item)"
    " WHERE p.id = ANY(%s::integer[]) AND p.id = (v.item->>0)::integer"
    " AND p.value = v.item->>1 RETURNING p.id")
_SWAP_VALUE = "UPDATE property SET value = %s, last_update = %s WHERE id = %s AND value = %s"


def swap_values(changes: list[tuple[int, str, str]], now: datetime.datetime) -> set[int]:
    """Set each (property pk, old, new) whose stored value is still ``old``; returns the pks
    set. A pk left out was changed by someone else since it was read."""
    if not changes:
        return set()
    if is_postgres():
        ids = "{" + ",".join(str(pk) for pk, _, _ in changes) + "}"
        rows = _run(_SWAP_VALUES_PG, (now, json.dumps(changes), ids)).fetchall()
        return {row[0] for row in rows}
    return {pk for pk, old, new in changes
            if _run(_SWAP_VALUE, (new, now, pk, old)).rowcount == 1}


# The counter row is taken first and stays locked until commit: that orders the app's commits,
# so readers following ``seq`` never skip an event committed late (see thingbridge.events).
_APPEND_EVENTS_PG = (
    "WITH counter AS (INSERT INTO event_counter (app_id, last_seq, created_at)"
    " VALUES (%s, %s, %s) ON CONFLICT (app_id)"
    " DO UPDATE SET last_seq = event_counter.last_seq + EXCLUDED.last_seq RETURNING last_seq)"
    " INSERT INTO event (app_id, seq, type, external_subject_id, data, created_at)"
    " SELECT %s, counter.last_seq - %s + e.n, e.item->>0, e.item->>1, e.item->>2, %s"
    " FROM counter, json_array_elements(%s::json) WITH ORDINALITY AS e(item, n)")


def append_events(app_id: str, events: list, now: datetime.datetime) -> None:
    """PostgreSQL: reserve ids and insert ``events`` (type, subject, data) in one statement.
    Each data object travels as its own JSON text (what ``JSONField`` would store): as a
    nested object, PostgreSQL would parse it and refuse ``\\u0000`` or a lone surrogate."""
    count = len(events)
    items = json.dumps([[e[0], e[1], json.dumps(e[2], separators=(",", ":"))]
                        for e in events], separators=(",", ":"))
    _run(_APPEND_EVENTS_PG, (app_id, count, now, app_id, count, now, items))


_POLLED = ("UPDATE connector_client SET status_reason = NULL, updated_at = %s,"
           " last_success_at = %s, failure_count = 0, next_poll_at = %s"
           " WHERE id = %s AND status = %s")


def mark_polled(client_id: str, status: str, now: datetime.datetime,
                next_poll_at: datetime.datetime) -> bool:
    """Record a successful poll of a client already in ``status``; False if it is not."""
    return _run(_POLLED, (now, now, next_poll_at, client_id, status)).rowcount == 1
