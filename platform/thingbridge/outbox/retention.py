"""Pruning the outbox: old events go once every delivery module is past them.

An event older than ``EVENT_RETENTION_DAYS`` is deleted only when every webhook endpoint of its
app has fanned it out, no delivery of it is kept (finished deliveries are kept for the same
retention), and every configured broker publisher has published it. A receiver or broker that
stays away longer than the retention therefore keeps its backlog: nothing is dropped to save
space.
"""

from __future__ import annotations

import datetime

from flask import current_app
from peewee import fn

from thingbridge.db import delete_in_batches, utcnow
from thingbridge.models import (
    Event,
    EventCounter,
    PublisherCursor,
    WebhookDelivery,
    WebhookEndpoint,
)


def publisher_names() -> list[str]:
    from thingbridge.outbox.publishers import configured_names

    return configured_names(current_app.config.get("EVENT_BROKERS", ""))


def prune(now: datetime.datetime | None = None) -> int:
    """Delete what may go; returns the number of events deleted."""
    now = now or utcnow()
    cutoff = now - datetime.timedelta(days=current_app.config["EVENT_RETENTION_DAYS"])
    delete_in_batches(WebhookDelivery, (WebhookDelivery.status != "PENDING")
                      & (WebhookDelivery.finished_at < cutoff))
    publishers = publisher_names()
    deleted = 0
    for counter in EventCounter.select():
        app_id, limit = counter.app_id, counter.last_seq
        hooks = WebhookEndpoint.select(fn.MIN(WebhookEndpoint.cursor)).where(
            WebhookEndpoint.app == app_id).scalar()
        if hooks is not None:
            limit = min(limit, hooks)
        # Deliveries still kept (pending, or finished within retention) keep their event: the
        # delivery log and redelivery need it.
        kept = WebhookDelivery.select(fn.MIN(WebhookDelivery.seq)).join(WebhookEndpoint).where(
            WebhookEndpoint.app == app_id).scalar()
        if kept is not None:
            limit = min(limit, kept - 1)
        if publishers:
            cursors = dict(PublisherCursor.select(PublisherCursor.publisher,
                                                  PublisherCursor.last_seq)
                           .where(PublisherCursor.app == app_id).tuples())
            limit = min([limit, *(cursors.get(name, 0) for name in publishers)])
        deleted += delete_in_batches(Event, (Event.app == app_id) & (Event.seq <= limit)
                                     & (Event.created_at < cutoff))
    return deleted
