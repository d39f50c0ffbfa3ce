"""The dispatcher: every DISPATCH_INTERVAL it claims due clients and sends one poll each.

Due clients are claimed in turns between apps: each app's longest-waiting client, then each
app's second, and so on, until the batch is full. So an app with a backlog of thousands (a
tenant that created them all at once, or was enabled again) takes the batch only where no other
app has a client due, and another app's client coming due behind it is sent within a dispatch
or two, not after the whole backlog.
"""

from __future__ import annotations

import itertools
import uuid

from flask import current_app
from peewee import JOIN, Select, fn

from thingbridge import tasks
from thingbridge.connectors import lifecycle
from thingbridge.connectors.registry import poll_interval
from thingbridge.connectors.service import due
from thingbridge.db import db, is_postgres, locking, utcnow
from thingbridge.lease import Lease
from thingbridge.models import App, ConnectorClient


def claim_lease(type_id: str) -> float:
    """Seconds a dispatched poll may wait in the queue before its client is sent again."""
    return min(poll_interval(type_id), current_app.config["TASK_LEASE"])


def _in_turns(now, limit: int):
    """The ids of up to ``limit`` due clients of enabled apps, in turns between apps.

    On PostgreSQL each app's turns are read through the (app, next_poll_at) index, at most
    ``limit`` of an app's (none of a disabled app's), so a dispatch reads at most ``limit``
    clients per app with clients due, whatever their backlog. SQLite (one machine, few
    clients) numbers every due client."""
    if is_postgres():
        client = ConnectorClient.alias("due")
        oldest = (client.select(client.id, client.app, client.next_poll_at)
                  .where((client.app == App.id) & due(client, now))
                  .order_by(client.next_poll_at).limit(limit))
        source = (App.select(oldest.c.id, oldest.c.app_id, oldest.c.next_poll_at)
                  .join(oldest, JOIN.LATERAL).where(App.disabled_at.is_null()))
    else:
        client = ConnectorClient
        disabled = App.select(App.id).where(App.disabled_at.is_null(False))
        source = client.select(client.id, client.app, client.next_poll_at).where(
            due(client, now) & client.app.not_in(disabled))
    source = source.alias("due_by_app")
    turn = fn.ROW_NUMBER().over(partition_by=[source.c.app_id],
                                order_by=[source.c.next_poll_at])
    turns = Select([source], [source.c.id, source.c.next_poll_at, turn.alias("turn")]) \
        .alias("turns")
    return (Select([turns], [turns.c.id])
            .order_by(turns.c.turn, turns.c.next_poll_at).limit(limit))


def claim_due(limit: int) -> tuple[list[str], str]:
    """Claim up to ``limit`` due, free clients under one new token, in turns between apps.

    Concurrent dispatchers never claim the same one: the rows are locked (skipping those
    another holds) and the conditions checked again on them. None of a disabled app's:
    disabling took them off the schedule, and a poll under way then that schedules its next
    must not bring them back."""
    now, token = utcnow(), str(uuid.uuid4())
    with db.atomic():
        query = (ConnectorClient.select(ConnectorClient.id, ConnectorClient.type_id)
                 .where(ConnectorClient.id.in_(_in_turns(now, limit))
                        & due(ConnectorClient, now)))
        rows = sorted(locking(query, skip_locked=True), key=lambda row: row.type_id)
        for type_id, group in itertools.groupby(rows, key=lambda row: row.type_id):
            Lease(ConnectorClient, claim_lease(type_id)).take(
                ConnectorClient.id.in_([row.id for row in group]), now, token)
    return [row.id for row in rows], token


def dispatch() -> int:
    """Send polls until DISPATCH_BATCH tasks wait in the broker. When the workers fall
    behind, the backlog stays in the database, where the apps take turns and nothing is
    claimed, rather than in the broker's queue, where each app's polls would wait in line
    behind the others' and past their claims (and be sent again)."""
    room = current_app.config["DISPATCH_BATCH"] - tasks.waiting()
    if room <= 0:
        return 0
    ids, token = claim_due(room)
    tasks.enqueue_many(lifecycle.POLL_TASK, [(client_id, token) for client_id in ids])
    return len(ids)
