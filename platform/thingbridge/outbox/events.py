"""The event outbox: what changed, written in the transaction that changed it.

Every state change calls :func:`emit` (or :func:`emit_many`) inside its own ``db.atomic()``
block, so an event exists exactly when its change committed. Delivery modules (webhooks, broker
publishers, the pull feed) only ever read the outbox; none of them can lose an event that the
change's caller saw succeed.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from functools import cache
from typing import NamedTuple

from thingbridge.db import db, is_postgres, utcnow
from thingbridge.models import Event, EventCounter
from thingbridge.models.events import CLIENT_EVENTS
from thingbridge.schemas.common import ISO

EVENT_TYPES = (
    "connector.client.created", "connector.client.status_changed", "connector.client.deleted",
    "thing.created", "thing.updated", "thing.deleted", "thing.property_changed",
    "action.requested", "action.completed", "action.failed",
)

# Events one SQLite insert appends: it takes at most 32,766 parameters in some builds.
SQLITE_ROWS = 1000
MAX_ID = 2**63 - 1  # BIGINT: a larger cursor or id is a 400/404, never a database error
# A filtered newest-first read looks at this many of the app's newest events at most: the
# (app, seq) index walks them, and a rare subject must not walk the whole outbox.
FILTER_WINDOW = 20_000


class Pending(NamedTuple):
    type: str
    subject: str | None
    data: dict


class Ahead(NamedTuple):
    """A statement a change reads as the CTE ``name`` of the change's own statement."""
    name: str
    sql: str
    params: list | tuple


def emit(app_id: str, type_: str, subject: str | None, data: dict) -> None:
    emit_many(app_id, [Pending(type_, subject, data)])


def emit_many(app_id: str, events: list[Pending]) -> None:
    """Append events for one app. Call it last in the transaction: from here to commit the
    app's counter row is locked, which is what keeps per-app ids in commit order."""
    if not events:
        return
    for event in events:
        assert event.type in EVENT_TYPES, event.type
    # Inside the caller's transaction (the normal case) a savepoint would only add round trips.
    with contextlib.nullcontext() if db.in_transaction() else db.atomic():
        now = utcnow()
        if is_postgres():
            _append(app_id, events, now)
            return
        last = _reserve(app_id, len(events))
        first = last - len(events) + 1
        rows = [dict(app=app_id, seq=first + i, type=e.type, external_subject_id=e.subject,
                     data=e.data, created_at=now) for i, e in enumerate(events)]
        # SQLite takes a bounded number of parameters per statement (six a row here).
        for start in range(0, len(rows), SQLITE_ROWS):
            Event.insert_many(rows[start:start + SQLITE_ROWS]).execute()


def _counter_sql(rows: str) -> str:
    """The CTE ``counter``: the app's counter row moved on by as many ids as ``rows`` (text
    selecting app id, count, now) holds, taken here and held to commit; the last id taken."""
    counter = EventCounter._meta.table_name
    return (f"counter AS (INSERT INTO {counter} (app_id, last_seq, created_at) {rows}"
            f" ON CONFLICT (app_id) DO UPDATE SET last_seq = {counter}.last_seq"
            " + EXCLUDED.last_seq RETURNING last_seq)")


_INSERT = (f"INSERT INTO {Event._meta.table_name}"
           " (app_id, seq, type, external_subject_id, data, created_at)")


@cache
def _append_sql(guard: str | None = None, ahead: str | None = None,
                ahead_sql: str | None = None) -> str:
    """The append: the app's counter row first (taken and held to commit), then the events. With
    a ``guard`` (a statement whose rows say whether to append), nothing is appended when it
    returns none, and it runs first, in the same statement; ``ahead_sql`` runs before the guard,
    which may read it by the name ``ahead``."""
    return (
        "WITH " + (f"{ahead} AS ({ahead_sql}), " if ahead else "")
        + (f"guard AS ({guard}), " if guard else "")
        + _counter_sql("SELECT %s, %s, %s WHERE EXISTS (SELECT 1 FROM guard)" if guard
                       else "VALUES (%s, %s, %s)")
        + f" {_INSERT} SELECT %s, counter.last_seq - %s + e.n, e.item->>0, e.item->>1,"
        " e.item->>2, %s FROM counter, json_array_elements(%s::json) WITH ORDINALITY AS e(item, n)")


# The placeholders of ``appended_from``'s text, in order.
APPENDED_FROM = ("app", "now", "app", "now")


@cache
def appended_from(rows: str) -> str:
    """PostgreSQL: CTEs to follow the CTE ``rows`` (columns ``n``, their order, and ``type``,
    ``subject``, ``data``: JSON text) in a statement, appending its rows as the app's next
    events, none if it has none. The counter row is taken once ``rows`` is complete, so after
    every lock the rows took, and held to commit."""
    return (_counter_sql(f"SELECT %s, count(*), %s FROM {rows} HAVING count(*) > 0")
            + f", appended AS ({_INSERT} SELECT %s, counter.last_seq - r.total + r.k, r.type,"
            " r.subject, r.data, %s FROM counter, (SELECT *, count(*) OVER () AS total,"
            f" row_number() OVER (ORDER BY n) AS k FROM {rows}) AS r RETURNING 1)")


def _append(app_id: str, events: list[Pending], now: datetime.datetime,
            guard: str | None = None, guard_params: list | tuple = (),
            ahead: Ahead | None = None) -> int:
    """PostgreSQL: reserve the ids and insert every event in one statement, the counter row
    taken first and held to commit; the number of events appended. The rows travel as one JSON
    text parameter (psycopg adapts a list element by element, which cost more than the
    statement), each event's data as its own JSON text, what ``JSONField`` stores: as a nested
    object PostgreSQL would parse it and refuse a NUL character or a lone surrogate."""
    count = len(events)
    items = json.dumps([[e.type, e.subject, json.dumps(e.data, separators=(",", ":"))]
                        for e in events], separators=(",", ":"))
    if ahead:
        statement = _append_sql(guard, ahead.name, ahead.sql)
        guard_params = (*ahead.params, *guard_params)
    else:
        statement = _append_sql(guard)
    return db.execute_sql(statement, (*guard_params, app_id, count, now, app_id, count, now,
                                      items)).rowcount


def emit_after(change: str, params: list | tuple, app_id: str, type_: str,
               subject: str | None, data: dict, ahead: Ahead | None = None) -> bool:
    """Run ``change`` (a statement that writes a row, or finds none to write and changes
    nothing) and, if it wrote one, append the event: True if it did. On PostgreSQL both are one
    statement (committed on its own outside a transaction): the change and its event in one
    round trip. ``ahead`` (PostgreSQL only) runs before the change in that statement; the change
    reads it by its name."""
    assert type_ in EVENT_TYPES, type_
    if is_postgres():
        return _append(app_id, [Pending(type_, subject, data)], utcnow(), change, params,
                       ahead) > 0
    assert ahead is None, "a statement ahead of the change needs PostgreSQL"
    with contextlib.nullcontext() if db.in_transaction() else db.atomic():
        cursor = db.execute_sql(change, params)
        if not (cursor.fetchall() or cursor.rowcount > 0):
            return False
        emit(app_id, type_, subject, data)
    return True


def _reserve(app_id: str, count: int) -> int:
    """SQLite: take ``count`` sequence numbers for the app; returns the last one taken."""
    query = (EventCounter.insert(app=app_id, last_seq=count)
             .on_conflict(conflict_target=[EventCounter.app],
                          update={EventCounter.last_seq: EventCounter.last_seq + count})
             .returning(EventCounter.last_seq).tuples())
    return list(query.execute())[0][0]


def last_seq(app_id: str) -> int:
    row = EventCounter.get_or_none(EventCounter.app == app_id)
    return row.last_seq if row else 0


def envelope(event: Event) -> dict:
    return {"id": event.seq, "type": event.type,
            "occurred_at": event.created_at.strftime(ISO),
            "app": event.app_id, "external_subject_id": event.external_subject_id,
            "data": event.data}


def body(item: dict) -> bytes:
    """The bytes every delivery module sends: compact JSON of an envelope."""
    return json.dumps(item, separators=(",", ":")).encode()


def read_after(app_id: str, after: int, limit: int) -> list[Event]:
    return list(Event.select().where((Event.app == app_id) & (Event.seq > after))
                .order_by(Event.seq).limit(limit))


def read_newest(app_id: str, limit: int, before: int | None = None,
                types: list[str] | None = None, subject: str | None = None) -> list[Event]:
    """The app's events before the id ``before``, newest first, optionally of ``types``
    (patterns as webhooks take them) or one subject; filtered reads look no further back than
    ``FILTER_WINDOW`` events."""
    query = Event.select().where(Event.app == app_id)
    if before is not None:
        query = query.where(Event.seq < before)
    if types or subject:
        newest = last_seq(app_id) if before is None else before - 1
        query = query.where(Event.seq > newest - FILTER_WINDOW)
    if subject:
        query = query.where(Event.external_subject_id == subject)
    if types:
        exact = [t for t in types if not t.endswith("*")]
        prefixes = [t[:-1] for t in types if t.endswith("*")]
        if "*" not in types:
            condition = Event.type.in_(exact) if exact else None
            for prefix in prefixes:
                clause = Event.type.startswith(prefix)
                condition = clause if condition is None else condition | clause
            query = query.where(condition)
    return list(query.order_by(Event.seq.desc()).limit(limit))


def client_history(client, limit: int = 100) -> list[Event]:
    """The client's own events (created, status changes, deleted), newest first: its status
    history, for as long as the outbox keeps it."""
    rows = (Event.select().where((Event.app == client.app_id)
                                 & (Event.external_subject_id == client.external_subject_id)
                                 & CLIENT_EVENTS)
            .order_by(Event.seq.desc()).limit(limit))
    return [event for event in rows if event.data.get("client_id") == client.id]


def type_matches(patterns: list[str], event_type: str) -> bool:
    """``*`` is every type; ``thing.*`` every type under ``thing.``; else an exact type."""
    for pattern in patterns or ["*"]:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def _patterns() -> tuple[str, ...]:
    families = {".".join(t.split(".")[:i]) + ".*" for t in EVENT_TYPES
                for i in range(1, t.count(".") + 1)}
    return ("*", *sorted(families), *EVENT_TYPES)


# What a webhook may subscribe to: every type, a family of them, or one type.
EVENT_PATTERNS = _patterns()
