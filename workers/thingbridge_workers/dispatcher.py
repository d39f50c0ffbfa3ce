"""The dispatcher: every DISPATCH_INTERVAL it claims due clients and sends one poll each.

Due clients are claimed in turns between apps (``turns.py``): each app's longest-waiting
client, then each app's second, and so on, until the batch is full. So an app with a backlog
of thousands (a tenant that created them all at once, or was enabled again) takes the batch
only where no other app has a client due, and another app's client coming due behind it is
sent within a dispatch or two, not after the whole backlog.
"""

from __future__ import annotations

import itertools
import uuid

from flask import current_app

from thingbridge import tasks, turns
from thingbridge.connectors import lifecycle
from thingbridge.connectors.registry import connector_classes, poll_interval
from thingbridge.connectors.service import due
from thingbridge.db import locking, utcnow
from thingbridge.lease import Lease
from thingbridge.models import App, ConnectorClient


def claim_lease(type_id: str) -> float:
    """Seconds a dispatched poll may wait in the queue before its client is sent again. A
    client of a connector no longer installed is sent all the same: its poll says so (ERROR)."""
    lease = current_app.config["TASK_LEASE"]
    if type_id not in connector_classes():
        return lease
    return min(poll_interval(type_id), lease)


def claim_due(limit: int) -> tuple[list[str], str]:
    """Claim up to ``limit`` due, free clients under one new token, in turns between apps.

    Concurrent dispatchers never claim the same one: the rows are locked (skipping those
    another holds) and the conditions checked again on them. None of a disabled app's:
    disabling took them off the schedule, and a poll under way then that schedules its next
    must not bring them back."""
    now, token = utcnow(), str(uuid.uuid4())
    with turns.claiming():
        query = (ConnectorClient.select(ConnectorClient.id, ConnectorClient.type_id)
                 .where(ConnectorClient.id.in_(turns.in_turns(
                     ConnectorClient, lambda client: due(client, now), "next_poll_at", limit,
                     apps=App.disabled_at.is_null())) & due(ConnectorClient, now)))
        rows = sorted(locking(query, skip_locked=True), key=lambda row: row.type_id)
        for type_id, group in itertools.groupby(rows, key=lambda row: row.type_id):
            Lease(ConnectorClient, claim_lease(type_id)).take(
                ConnectorClient.id.in_([row.id for row in group]), now, token)
    return [row.id for row in rows], token


def dispatch() -> int:
    """Send polls until DISPATCH_BATCH wait in the polls' queue. When the workers fall
    behind, the backlog stays in the database, where the apps take turns and nothing is
    claimed, rather than in the broker's queue, where each app's polls would wait in line
    behind the others' and past their claims (and be sent again)."""
    room = current_app.config["DISPATCH_BATCH"] - tasks.waiting()
    if room <= 0:
        return 0
    ids, token = claim_due(room)
    tasks.send_claimed(lifecycle.POLL_TASK, ConnectorClient, ids, token,
                       current_app.config["TASK_LEASE"])  # claim_lease's longest
    return len(ids)
