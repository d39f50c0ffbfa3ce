"""The event outbox and the cursors that read it.

Events are numbered per app by ``EventCounter``: the counter row is updated in the same
transaction as the state change, so it also serializes commits per app. A reader that has seen
seq N therefore never finds an N-1 committed later, and "everything after my cursor" is exact.
"""

from __future__ import annotations

from peewee import (
    SQL,
    BigAutoField,
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from thingbridge.db import utcnow
from thingbridge.models.apps import App
from thingbridge.models.base import BaseModel, JSONField


class EventCounter(BaseModel):
    app = ForeignKeyField(App, primary_key=True, on_delete="CASCADE")
    last_seq = BigIntegerField(default=0)


class Event(BaseModel):
    """One outbox row; ``created_at`` is the envelope's ``occurred_at``."""

    id = BigAutoField()
    app = ForeignKeyField(App, on_delete="CASCADE", index=False)  # (app, seq) serves it
    seq = BigIntegerField()
    type = CharField(max_length=64)
    external_subject_id = CharField(max_length=255, null=True)
    data = JSONField(default=dict)

    class Meta:
        indexes = ((("app", "seq"), True),)


# A client's own events (its history), found by subject through a partial index: it holds only
# these rare rows, so the many thing events are written without it. The condition is literal
# SQL so that a query using it is the index's condition to the letter (a planner proves that).
CLIENT_EVENTS = SQL("type IN ('connector.client.created', 'connector.client.status_changed', "
                    "'connector.client.deleted')")
Event.add_index(Event.index(Event.app, Event.external_subject_id, Event.seq,
                            where=CLIENT_EVENTS))


class PublisherCursor(BaseModel):
    """How far one message-broker publisher has published one app's events.

    A lease (token + expiry) keeps publishing single-threaded per (publisher, app), which is
    what keeps it in order; a publisher that died mid-batch loses its lease and the batch is
    published again (consumers dedupe by app and event id)."""

    publisher = CharField(max_length=200)
    app = ForeignKeyField(App, on_delete="CASCADE")
    last_seq = BigIntegerField(default=0)
    lease_token = CharField(max_length=36, null=True)
    leased_until = DateTimeField(null=True)
    next_attempt_at = DateTimeField(default=utcnow)
    failures = IntegerField(default=0)
    last_error = TextField(null=True)

    class Meta:
        indexes = ((("publisher", "app"), True),)
