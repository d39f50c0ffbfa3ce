"""Publishing the outbox to message brokers: one cursor and lease per (publisher, app).

Beat's dispatcher finds apps whose last event is past a publisher's cursor, leases the pair and
enqueues one ``thingbridge.publish_events`` task for it. The holder publishes the events after
the cursor in id order, a batch at a time, and moves the cursor only after the broker has
confirmed the whole batch, and only while it still holds the lease. Hence, per app and broker:
every event, in order, at least once; a holder that died mid-batch has its batch published
again by the next one, and consumers dedupe by (app, id).

Every function here is one short autocommit statement (or two): no transaction is ever open
while a broker is being talked to, which on SQLite would block every other writer.
"""

from __future__ import annotations

import datetime
import logging
import time

from flask import current_app
from peewee import JOIN, fn

from thingbridge import backoff
from thingbridge.db import utcnow
from thingbridge.lease import Lease
from thingbridge.models import Event, EventCounter, PublisherCursor
from thingbridge.outbox import events, publishers
from thingbridge.outbox.publishers.base import TURN_WAIT
from thingbridge.tasks import enqueue

log = logging.getLogger(__name__)
PUBLISH_TASK = "thingbridge.publish_events"
BATCH = 100
TIME_SLICE = 20.0  # seconds a task publishes before handing the rest to a new task
RETRY_BASE, MAX_BACKOFF = 0.5, 60.0


def _lease() -> Lease:
    return Lease(PublisherCursor, current_app.config["PUBLISHER_LEASE"])


def _pair(name: str, app_id: str):
    return (PublisherCursor.publisher == name) & (PublisherCursor.app == app_id)


def _held(name: str, app_id: str, token: str):
    return _pair(name, app_id) & _lease().held(token)


# --- finding and leasing work --------------------------------------------------------------

def due_apps(name: str, now: datetime.datetime, limit: int = 500) -> list[str]:
    """Apps with events past ``name``'s cursor (or no cursor yet) that are free and due."""
    cursor = PublisherCursor
    query = (EventCounter.select(EventCounter.app)
             .join(cursor, JOIN.LEFT_OUTER,
                   on=((cursor.app == EventCounter.app) & (cursor.publisher == name)))
             .where((EventCounter.last_seq > fn.COALESCE(cursor.last_seq, 0))
                    & (cursor.id.is_null()
                       | ((cursor.next_attempt_at <= now) & _lease().free(now))))
             .limit(limit).tuples())
    return [row[0] for row in query]


def claim(name: str, app_id: str, now: datetime.datetime) -> str | None:
    """Lease (publisher, app); the token, or None if someone holds it or it is not due."""
    PublisherCursor.insert(publisher=name, app=app_id,
                           next_attempt_at=now).on_conflict_ignore().execute()
    return _lease().take(_pair(name, app_id) & (PublisherCursor.next_attempt_at <= now), now)


def claim_due(limit: int | None = None) -> list[tuple[str, str, str]]:
    """Lease every due (publisher, app): [(publisher name, app id, token)]."""
    names = publishers.configured_names(current_app.config.get("EVENT_BROKERS"))
    now, claimed = utcnow(), []
    for name in names:
        for app_id in due_apps(name, now, limit or current_app.config["DISPATCH_BATCH"]):
            token = claim(name, app_id, now)
            if token:
                claimed.append((name, app_id, token))
    return claimed


def dispatch() -> int:
    claimed = claim_due()
    for name, app_id, token in claimed:
        enqueue(PUBLISH_TASK, name, app_id, token)
    return len(claimed)


def failing_apps() -> dict[str, int]:
    """Per publisher name: apps whose last attempt to publish to it failed."""
    return dict(PublisherCursor.select(PublisherCursor.publisher, fn.COUNT(PublisherCursor.id))
                .where(PublisherCursor.failures > 0).group_by(PublisherCursor.publisher)
                .tuples())


def lag(name: str) -> int:
    """Events the publisher ``name`` has not published yet, over every app (by id)."""
    cursor = PublisherCursor
    behind = (EventCounter.select(fn.SUM(EventCounter.last_seq - fn.COALESCE(cursor.last_seq, 0)))
              .join(cursor, JOIN.LEFT_OUTER,
                    on=((cursor.app == EventCounter.app) & (cursor.publisher == name)))
              .scalar())
    return int(behind or 0)


# --- the holder's side ---------------------------------------------------------------------

def next_batch(name: str, app_id: str, token: str, limit: int = BATCH) -> list[Event] | None:
    """The events after the cursor, oldest first; None once the lease is someone else's."""
    cursor = PublisherCursor.select(PublisherCursor.last_seq).where(
        _held(name, app_id, token)).first()
    if cursor is None:
        return None
    return events.read_after(app_id, cursor.last_seq, limit)


def advance(name: str, app_id: str, token: str, seq: int) -> bool:
    """Move the cursor to ``seq`` (confirmed by the broker) and renew the lease."""
    return bool(PublisherCursor.update(last_seq=seq, failures=0, last_error=None,
                                       **_lease().renewal())
                .where(_held(name, app_id, token) & (PublisherCursor.last_seq < seq)).execute())


def fail(name: str, app_id: str, token: str, error: str) -> None:
    """Keep the cursor, note the error, back off, and give the lease back."""
    cursor = PublisherCursor.select(PublisherCursor.failures).where(
        _held(name, app_id, token)).first()
    if cursor is None:
        return
    failures = cursor.failures + 1
    wait = backoff.delay(failures, RETRY_BASE, MAX_BACKOFF)
    PublisherCursor.update(failures=failures, last_error=error[:2000],
                           next_attempt_at=utcnow() + datetime.timedelta(seconds=wait),
                           **Lease.RELEASED).where(_held(name, app_id, token)).execute()


def release(name: str, app_id: str, token: str) -> None:
    PublisherCursor.update(**Lease.RELEASED).where(_held(name, app_id, token)).execute()


def postpone(name: str, app_id: str, token: str, seconds: float) -> None:
    """Give the lease back and leave the pair alone for ``seconds``, with no failure noted."""
    PublisherCursor.update(next_attempt_at=utcnow() + datetime.timedelta(seconds=seconds),
                           **Lease.RELEASED).where(_held(name, app_id, token)).execute()


def _published(publisher: publishers.Publisher, batch: list[Event]) -> str | None:
    """Publish ``batch``; None once the broker confirmed it all, else what failed."""
    try:
        publisher.publish([events.envelope(event) for event in batch])
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def drain(name: str, app_id: str, token: str) -> int:
    """Publish the app's backlog to one broker while holding the lease; returns how many
    events the broker confirmed."""
    publisher = publishers.configured(current_app.config.get("EVENT_BROKERS")).get(name)
    if publisher is None:  # beat and this worker disagree about EVENT_BROKERS
        log.warning("publisher %s is not configured in this worker", name)
        release(name, app_id, token)
        return 0
    if why := publishers.failing(name):
        fail(name, app_id, token, f"not tried: this worker's last attempt failed ({why})")
        return 0
    until, published = time.monotonic() + TIME_SLICE, 0
    while True:
        batch = next_batch(name, app_id, token)
        if batch is None:
            return published  # the lease expired and another holder took over
        if not batch:
            release(name, app_id, token)
            return published
        # The process's threads take turns on its publisher (other apps' batches may be
        # under way). A healthy batch takes milliseconds: an attempt that held the turn for
        # all of TURN_WAIT is at a slow or silent broker, and this pair waits for its end away
        # from the worker's threads, rather than come back at every dispatch.
        if not publisher.turn.acquire(timeout=TURN_WAIT):
            postpone(name, app_id, token, publisher.step_aside())
            return published
        try:
            # The attempt this one waited for may have failed, or been given up.
            skipped = publishers.failing(name) or (
                "given up at its deadline" if publisher.abandoned else None)
            error = None if skipped else _published(publisher, batch)
            if error:
                publishers.failed(name, error)  # before the next thread takes the turn
        finally:
            publisher.turn.release()
        if skipped:
            fail(name, app_id, token, f"not tried: this worker's last attempt failed ({skipped})")
            return published
        if error:
            log.warning("publishing to %s failed for app %s: %s", name, app_id, error)
            fail(name, app_id, token, error)
            return published
        publishers.succeeded(name)
        if not advance(name, app_id, token, batch[-1].seq):
            return published
        published += len(batch)
        if time.monotonic() > until:
            # Yield the worker process; the lease travels with the task.
            enqueue(PUBLISH_TASK, name, app_id, token)
            return published
