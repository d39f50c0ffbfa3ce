"""One poll of one connector client, and the dispatcher that finds due clients.

Plugins do provider I/O and pure mapping; the poll below owns everything stateful, in the order
it happens: the client, the provider budget, the token, the fetch, the mapping, and one
transaction that records the outcome and writes what changed.
"""

from __future__ import annotations

import datetime
import logging

from flask import current_app

from thingbridge.connectors import lifecycle, rate_budget
from thingbridge.connectors.contract import ConnectorError, TransientError
from thingbridge.connectors.plugin_call import call_plugin
from thingbridge.connectors.registry import build_connector, connector_classes, rate_limit
from thingbridge.db import db, locking, utcnow
from thingbridge.models import ConnectorClient
from thingbridge.observability import metrics
from thingbridge.outbox import events
from thingbridge.tasks import enqueue
from thingbridge.things import sync

log = logging.getLogger(__name__)

# A claimed client is not claimed again for this long, even if its poll task is lost.
CLAIM_LEASE = datetime.timedelta(minutes=5)


def poll(client_id: str) -> str:
    """Poll one client; returns an outcome word (for logs, tests and metrics)."""
    client = lifecycle.load(client_id)
    return "gone" if client is None else poll_loaded(client)  # None: deleted while queued


@metrics.observe_poll
def poll_loaded(client: ConnectorClient) -> str:
    if client.status == "ERROR":
        return "skipped"  # needs the app or the end user to act first
    if client.type_id not in connector_classes():
        lifecycle.set_status(client, "ERROR", f"connector {client.type_id} is not installed")
        return "error"
    connector = build_connector(client.type_id)
    if connector.auth_kind == "oauth2" and not client.tokens:
        return "awaiting_consent"
    retry_at = rate_budget.take(client.instance.id, rate_limit(client.type_id))
    if retry_at is not None:
        lifecycle.postpone(client, retry_at)
        return "rate_limited"
    try:
        payload = call_plugin(connector, client, connector.fetch)
        specs = connector.map_things(payload, client.configuration or {})
    except TransientError as exc:
        lifecycle.record_transient_failure(client, exc.reason, exc.retry_after)
        log.info("poll %s transient failure: %s", client.id, exc.reason)
        return "retry"
    except ConnectorError as exc:  # ReauthRequired, ConfigError: the app or user must act
        lifecycle.record_error(client, exc.reason)
        log.info("poll %s error: %s", client.id, exc.reason)
        return "error"

    plan = sync.plan(sync.read_stored(client.id), specs)
    if plan.empty and lifecycle.mark_polled(client):
        return "ok"  # a steady poll: one UPDATE, no transaction, nothing to tell
    with db.atomic():
        said = lifecycle.record_success(client)  # locks the client row first,
        if said is None:
            return "gone"
        if plan.structural:  # compare again now that no other poll of this client can write
            plan = sync.plan(sync.read_stored(client.id), specs)
        said += sync.apply(client, plan)         # then writes its things,
        events.emit_many(client.app_id, said)    # and takes the app's event counter last
    return "ok"


def claim_due(limit: int) -> list[str]:
    """Claim up to ``limit`` due clients; concurrent dispatchers never claim the same one."""
    now = utcnow()
    with db.atomic():
        query = (ConnectorClient.select(ConnectorClient.id)
                 .where((ConnectorClient.next_poll_at <= now)
                        & (ConnectorClient.status != "ERROR"))
                 .order_by(ConnectorClient.next_poll_at).limit(limit))
        ids = [row.id for row in locking(query, skip_locked=True)]
        if ids:
            ConnectorClient.update(next_poll_at=now + CLAIM_LEASE).where(
                ConnectorClient.id.in_(ids)).execute()
    return ids


def dispatch() -> int:
    ids = claim_due(current_app.config["DISPATCH_BATCH"])
    for client_id in ids:
        enqueue(lifecycle.POLL_TASK, client_id)
    return len(ids)
