"""Webhook delivery state: fan-out from the outbox, lanes, leases and attempt outcomes.

A lane is one endpoint's deliveries for one subject. Only a lane's oldest PENDING delivery may
be sent, and only by the holder of its lease, so each receiver sees one subject's events in
order. A holder that dies loses the lease when it expires and the pump hands the lane to
someone else, who sends the same event again: receivers dedupe by ``webhook-id``.
All network I/O happens outside these functions; none holds a transaction across it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask import current_app
from peewee import fn

from thingbridge import backoff
from thingbridge.db import db, is_postgres, locking, retry_idempotent, utcnow
from thingbridge.lease import Lease
from thingbridge.models import (
    ENDPOINT_PLAIN,
    Event,
    EventCounter,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from thingbridge.observability import metrics
from thingbridge.outbox import events

MAX_BACKOFF = 3600.0


def _lease() -> Lease:
    return Lease(WebhookDelivery, current_app.config["WEBHOOK_LEASE"])


# --- fan-out: outbox -> deliveries ---------------------------------------------------------

def fan_out(batch: int = 500) -> int:
    """Create deliveries for every endpoint behind its app's last event; returns how many."""
    behind = (WebhookEndpoint.select(WebhookEndpoint.id)
              .join(EventCounter, on=(EventCounter.app == WebhookEndpoint.app))
              .where(EventCounter.last_seq > WebhookEndpoint.cursor))
    total = 0
    for row in behind:
        while (created := _fan_out_endpoint(row.id, batch)) is not None:
            total += created
    return total


def _fan_out_endpoint(endpoint_id: str, batch: int) -> int | None:
    """One batch for one endpoint; None when it is caught up (or another pump holds it)."""
    with db.atomic():
        endpoint = locking(WebhookEndpoint.select(*ENDPOINT_PLAIN).where(
            WebhookEndpoint.id == endpoint_id), skip_locked=True).first()
        if endpoint is None:
            return None
        rows = list(Event.select(Event.id, Event.seq, Event.type, Event.external_subject_id)
                    .where((Event.app == endpoint.app_id) & (Event.seq > endpoint.cursor))
                    .order_by(Event.seq).limit(batch).tuples())
        if not rows:
            return None
        # After a replay the same event may still be PENDING here: never queue it twice.
        pending = {r[0] for r in WebhookDelivery.select(WebhookDelivery.event).where(
            (WebhookDelivery.endpoint == endpoint.id) & (WebhookDelivery.status == "PENDING")
            & WebhookDelivery.event.in_([r[0] for r in rows])).tuples()}
        now = utcnow()
        new = [dict(endpoint=endpoint.id, event=event_id, seq=seq, lane=subject or "",
                    created_at=now, next_attempt_at=now)
               for event_id, seq, type_, subject in rows
               if event_id not in pending and events.type_matches(endpoint.event_types, type_)]
        for start in range(0, len(new), 200):
            WebhookDelivery.insert_many(new[start:start + 200]).execute()
        WebhookEndpoint.update(cursor=rows[-1][1]).where(
            WebhookEndpoint.id == endpoint.id).execute()
        return len(new)


# --- lanes and leases ----------------------------------------------------------------------

CLAIM_LOCK = 0x7462_7768  # advisory lock key: one pump claims lanes at a time


def claim_lanes(limit: int = 200) -> list[tuple[int, str]]:
    """Lease the due head of up to ``limit`` idle lanes: [(delivery id, lease token)].

    Each app holds at most ``WEBHOOK_APP_CONCURRENCY`` lanes at once, so one app's slow or
    dead receivers occupy that many worker threads and never the others' share. Pumps that
    overlap (beat ticks faster than a loaded pump runs) would each count the same lanes as
    free, so one claims at a time and the others skip their turn."""
    with db.atomic():
        if is_postgres() and not db.execute_sql(
                "SELECT pg_try_advisory_xact_lock(%s)", (CLAIM_LOCK,)).fetchone()[0]:
            return []
        return _claim_lanes(limit)


def _claim_lanes(limit: int) -> list[tuple[int, str]]:
    now = utcnow()
    share = current_app.config["WEBHOOK_APP_CONCURRENCY"]
    head, busy = WebhookDelivery.alias(), WebhookDelivery.alias()
    head_seq = head.select(fn.MIN(head.seq)).where(
        (head.endpoint == WebhookDelivery.endpoint) & (head.lane == WebhookDelivery.lane)
        & (head.status == "PENDING"))
    lane_busy = busy.select(busy.id).where(
        (busy.endpoint == WebhookDelivery.endpoint) & (busy.lane == WebhookDelivery.lane)
        & (busy.status == "PENDING") & (busy.leased_until > now))
    ranked = (WebhookDelivery.select(
        WebhookDelivery.id, WebhookEndpoint.app.alias("app_id"), WebhookDelivery.next_attempt_at,
        fn.ROW_NUMBER().over(partition_by=[WebhookEndpoint.app],
                             order_by=[WebhookDelivery.next_attempt_at]).alias("rank"))
        .join(WebhookEndpoint)
        .where((WebhookDelivery.status == "PENDING") & (WebhookDelivery.next_attempt_at <= now)
               & (WebhookDelivery.seq == head_seq) & ~fn.EXISTS(lane_busy))).alias("ranked")
    candidates = (WebhookDelivery.select(ranked.c.id, ranked.c.app_id).from_(ranked)
                  .where(ranked.c.rank <= share).order_by(ranked.c.next_attempt_at)
                  .limit(limit).tuples())
    held = dict(WebhookDelivery.select(WebhookEndpoint.app, fn.COUNT(WebhookDelivery.id))
                .join(WebhookEndpoint)
                .where((WebhookDelivery.status == "PENDING")
                       & (WebhookDelivery.leased_until > now))
                .group_by(WebhookEndpoint.app).tuples())
    lease, claimed = _lease(), []
    for delivery_id, app_id in list(candidates):
        if held.get(app_id, 0) >= share:
            continue
        token = lease.take((WebhookDelivery.id == delivery_id)
                           & (WebhookDelivery.status == "PENDING"), now)
        if token:
            claimed.append((delivery_id, token))
            held[app_id] = held.get(app_id, 0) + 1
    return claimed


@dataclass
class Leased:
    delivery: WebhookDelivery
    endpoint: WebhookEndpoint
    event: Event

    def secrets(self) -> list[dict]:
        """The endpoint's signing secrets, decrypted only now: SecretKeyError when no
        configured key reads them."""
        return WebhookEndpoint.secrets.python_value(self.endpoint.sealed_secrets)


def _with_endpoint_and_event():
    """Deliveries with their endpoint (its secrets as stored, ``sealed_secrets``) and event."""
    return (WebhookDelivery.select(WebhookDelivery, *ENDPOINT_PLAIN, Event,
                                   WebhookEndpoint.secrets.coerce(False).alias("sealed_secrets"))
            .join(WebhookEndpoint).switch(WebhookDelivery).join(Event))


def leased(delivery_id: int, token: str) -> Leased | None:
    """The delivery with its endpoint and event, if ``token`` still holds it."""
    row = (_with_endpoint_and_event()
           .where((WebhookDelivery.id == delivery_id) & (WebhookDelivery.lease_token == token)
                  & (WebhookDelivery.status == "PENDING")).first())
    return Leased(row, row.endpoint, row.event) if row else None


@dataclass
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    ok: bool = False
    retryable: bool = False
    retry_after: float | None = None


def record(delivery: WebhookDelivery, token: str, outcome: Outcome) -> int | None:
    """Store an attempt and move the lane on. Returns the lane's next delivery, leased with
    the same token, when the caller should go on sending; else None."""
    return record_run(token, [(delivery, outcome)])


def _moved(delivery: WebhookDelivery, outcome: Outcome, now: datetime.datetime,
           config) -> tuple[dict, bool, str]:
    """The delivery's new fields after ``outcome``, whether it left PENDING, its metric."""
    attempts = delivery.attempts + 1
    fields = dict(attempts=attempts, last_status_code=outcome.status_code,
                  last_error=outcome.error, **Lease.RELEASED)
    too_old = now - delivery.created_at > datetime.timedelta(seconds=config["WEBHOOK_MAX_AGE"])
    if outcome.ok or not outcome.retryable or too_old:
        status = "DELIVERED" if outcome.ok else "DEAD"
        fields.update(status=status, finished_at=now)
        return fields, True, status
    wait = backoff.delay(attempts, config["WEBHOOK_RETRY_BASE"], MAX_BACKOFF,
                         outcome.retry_after)
    fields.update(next_attempt_at=now + datetime.timedelta(seconds=wait))
    return fields, False, "retry"


@retry_idempotent
def record_run(token: str, run: list[tuple[WebhookDelivery, Outcome]]) -> int | None:
    """Store the attempts of a run of one lane's consecutive deliveries, sent in order while
    ``token`` held the first, in one transaction (a commit per run, not per delivery: a sender
    that dies before it sends the run again, receivers dedupe). Every delivery but the last
    left PENDING. Returns the lane's next delivery, leased with ``token``, or None."""
    now, config = utcnow(), current_app.config
    first = run[0][0]
    with db.atomic():
        # The UPDATE first: it locks the delivery row, so the attempts' rows below cannot
        # lose their delivery to a concurrent delete of the endpoint.
        fields, final, status = _moved(first, run[0][1], now, config)
        held = WebhookDelivery.update(**fields).where(
            (WebhookDelivery.id == first.id) & _lease().held(token)
            & (WebhookDelivery.status == "PENDING")).execute()
        if not held:
            # Lease lost meanwhile: the new holder owns the lane and sends these again. Our
            # attempts still happened; log them unless the endpoint is gone or a lost answer
            # to our own commit brought us here (the lane moved on).
            if WebhookDelivery.select().where((WebhookDelivery.id == first.id)
                                              & (WebhookDelivery.status == "PENDING")).exists():
                _log_attempts(run, now)
            return None
        metrics.webhook_attempted(status)
        for delivery, outcome in run[1:]:
            fields, final, status = _moved(delivery, outcome, now, config)
            WebhookDelivery.update(**fields).where(
                (WebhookDelivery.id == delivery.id)
                & (WebhookDelivery.status == "PENDING")).execute()
            metrics.webhook_attempted(status)
        _log_attempts(run, now)
        return lease_next(run[-1][0], token, now) if final else None


def _log_attempts(run: list[tuple[WebhookDelivery, Outcome]], now: datetime.datetime) -> None:
    WebhookAttempt.insert_many([
        dict(delivery=delivery.id, status_code=outcome.status_code, error=outcome.error,
             duration_ms=outcome.duration_ms, created_at=now)
        for delivery, outcome in run]).execute()


def note_endpoint(endpoint_id: str, outcome: Outcome, shown: str | None) -> str | None:
    """The endpoint's last error after a run, given the one the sender last knew it to show
    (``shown``); returns the one it shows now. A failure sets it, a success clears it, in a
    statement of its own after the run's transaction (which locks deliveries before this row,
    where a deletion of the endpoint locks it first). A success where none was shown writes
    nothing, so the lanes' runs add no write while all is well; an error another lane set
    meanwhile is cleared by a later run that reads it."""
    if outcome.ok and shown is None:
        return None
    query = WebhookEndpoint.update(last_error=outcome.error,
                                   last_error_at=None if outcome.ok else utcnow())
    if outcome.ok:
        query = query.where(WebhookEndpoint.last_error.is_null(False))
    query.where(WebhookEndpoint.id == endpoint_id).execute()
    return outcome.error


def lag() -> int:
    """Events webhooks still owe, over every app: those fan-out has not reached yet (by id)
    plus the deliveries still pending."""
    behind = (WebhookEndpoint.select(fn.SUM(EventCounter.last_seq - WebhookEndpoint.cursor))
              .join(EventCounter, on=(EventCounter.app == WebhookEndpoint.app)).scalar())
    pending = WebhookDelivery.select().where(WebhookDelivery.status == "PENDING").count()
    return int(behind or 0) + pending


def lease_next(delivery: WebhookDelivery, token: str,
               now: datetime.datetime | None = None) -> int | None:
    """Hand the lease on to the lane's next delivery if it is due now (and free)."""
    now = now or utcnow()
    nxt = (WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.next_attempt_at).where(
        (WebhookDelivery.endpoint == delivery.endpoint_id)
        & (WebhookDelivery.lane == delivery.lane) & (WebhookDelivery.status == "PENDING"))
        .order_by(WebhookDelivery.seq).first())
    if nxt is None or nxt.next_attempt_at > now:
        return None
    return nxt.id if _lease().take(WebhookDelivery.id == nxt.id, now, token) else None


def catch_up(endpoint_id: str) -> bool:
    """Fan out the endpoint's new events now rather than at the pump's next tick (a sender
    whose lane ran dry calls it); True if deliveries were created."""
    created = False
    while (count := _fan_out_endpoint(endpoint_id, 500)) is not None:
        created = created or count > 0
    return created


def lane_after(delivery: WebhookDelivery, token: str, limit: int) -> list[Leased]:
    """The delivery ``token`` holds and the lane's next PENDING ones, in order, with endpoint
    and event: what a sender will probably send next, read in one query. Only the first is
    held; the others are leased one by one as ``record`` hands the lease on."""
    rows = (_with_endpoint_and_event()
            .where((WebhookDelivery.endpoint == delivery.endpoint_id)
                   & (WebhookDelivery.lane == delivery.lane)
                   & (WebhookDelivery.status == "PENDING")
                   & (WebhookDelivery.seq >= delivery.seq))
            .order_by(WebhookDelivery.seq).limit(limit))
    return [Leased(row, row.endpoint, row.event) for row in rows]
