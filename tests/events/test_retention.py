"""Outbox pruning: old events go only once webhooks, deliveries and publishers are past them."""

import datetime

import pytest
from helpers import LAMP

from thingbridge.db import utcnow
from thingbridge.models import Event, EventCounter, PublisherCursor, WebhookDelivery
from thingbridge.outbox import retention, webhooks

THINGS = "/api/v1/things"


def seqs(app_id):
    return [e.seq for e in Event.select().where(Event.app == app_id).order_by(Event.seq)]


def age(days: float, *seq_range) -> None:
    then = utcnow() - datetime.timedelta(days=days)
    Event.update(created_at=then).where(Event.seq.between(*seq_range)).execute()


def test_only_events_past_retention_go(api):
    for _ in range(4):
        api.post(THINGS, json=LAMP)
    age(8, 1, 2)
    assert retention.prune() == 2
    assert seqs(api.model.id) == [3, 4]
    assert api.get("/api/v1/events").json["events"][0]["id"] == 3  # ids never reused


def test_webhook_cursor_and_kept_deliveries_hold_events(api):
    api.post("/api/v1/webhooks", json={"url": "https://example.com/h"})
    for _ in range(3):
        api.post(THINGS, json=LAMP)
    age(8, 1, 3)
    assert retention.prune() == 0  # not fanned out yet
    webhooks.fan_out()
    assert retention.prune() == 0  # deliveries pending
    WebhookDelivery.update(status="DELIVERED", finished_at=utcnow()).where(
        WebhookDelivery.seq <= 2).execute()
    assert retention.prune() == 0  # finished within retention: the log still shows them
    WebhookDelivery.update(finished_at=utcnow() - datetime.timedelta(days=8)).where(
        WebhookDelivery.seq <= 2).execute()
    assert retention.prune() == 2
    assert seqs(api.model.id) == [3]


def test_a_lagging_broker_publisher_holds_events(api, flask_app, monkeypatch):
    for _ in range(3):
        api.post(THINGS, json=LAMP)
    age(8, 1, 3)
    with monkeypatch.context() as patch:
        patch.setitem(flask_app.config, "EVENT_BROKERS",
                      "redis://127.0.0.1:6379/13?stream=retention-test")
        assert retention.prune() == 0  # that publisher has published nothing yet
        name = retention.publisher_names()[0]
        PublisherCursor.create(publisher=name, app=api.model.id, last_seq=2)
        assert retention.prune() == 2
    assert seqs(api.model.id) == [3]


def test_a_backlog_goes_a_batch_per_transaction(api, monkeypatch):
    """The first prune after days of a receiver away can meet millions of events: it deletes
    them a batch at a time, each batch committed on its own, not in one statement holding one
    transaction (SQLite: the only write lock) for all of them; a prune stopped on its way
    keeps what it deleted."""
    from thingbridge import db

    api.post(THINGS, json=LAMP)
    first = Event.get(Event.app == api.model.id)
    backlog = 2_500
    Event.insert_many([{"app": api.model.id, "seq": seq, "type": first.type,
                        "external_subject_id": first.external_subject_id, "data": first.data}
                       for seq in range(2, backlog + 1)]).execute()
    EventCounter.update(last_seq=backlog).where(EventCounter.app == api.model.id).execute()
    age(8, 1, backlog - 1)
    monkeypatch.setattr(db, "PRUNE_BATCH", 1_000)
    deletes, execute = [], db.db.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        if sql.lstrip().upper().startswith("DELETE") and '"event"' in sql and stop_at == len(
                deletes):
            raise RuntimeError("the worker was stopped")
        cursor = execute(sql, params, *args, **kwargs)
        if sql.lstrip().upper().startswith("DELETE") and '"event"' in sql:
            deletes.append(cursor.rowcount)
        return cursor

    monkeypatch.setattr(db.db.obj, "execute_sql", counting)
    stop_at = 1
    with pytest.raises(RuntimeError):
        retention.prune()
    assert deletes == [1_000] and len(seqs(api.model.id)) == backlog - 1_000
    stop_at = None
    assert retention.prune() == backlog - 1 - 1_000
    assert deletes == [1_000, 1_000, 499]
    assert seqs(api.model.id) == [backlog]
