"""One poll of one connector client (the dispatcher, ``dispatcher.py``, sends them).

Plugins do provider I/O and pure mapping; the poll below owns everything stateful, in the order
it happens: the client, the provider budget, the token, the fetch, the mapping, and what
records the outcome and writes what changed: one statement when that is at most new readings
of a STARTED client (nearly every poll), else one transaction.

A client is leased to one poll at a time. The dispatcher claims a due client for as long as
its task may wait in the queue (its poll interval, at most TASK_LEASE); the poll renews that
for TASK_LEASE when it starts and releases the client when it ends. A task lost with its worker
leaves the lease to run out, and the dispatcher sends the client again: within two poll
intervals. A stale copy of a task (redelivered by the broker after its worker died, or
overtaken by a newer claim) finds the client held or no longer due and does nothing, so no two
polls of a client fetch at once and none runs twice for one due time.
"""

from __future__ import annotations

import copy
import logging

from thingbridge.connectors import lifecycle, rate_budget
from thingbridge.connectors.contract import ConnectorError, TransientError
from thingbridge.connectors.plugin_call import (
    PluginFailed,
    call_plugin,
    guarded,
    lease_budget,
)
from thingbridge.connectors.registry import (
    build_connector,
    connector_classes,
    rate_limit,
)
from thingbridge.crypto import SecretKeyError
from thingbridge.db import db
from thingbridge.models import ConnectorClient
from thingbridge.observability import metrics
from thingbridge.outbox import events
from thingbridge.things import spec_fit, sync
from thingbridge.things.poll_sql import RELEASED

log = logging.getLogger(__name__)


def poll(client_id: str, token: str | None = None) -> str:
    """Poll one client, holding its lease; returns an outcome word (for logs, tests and
    metrics)."""
    try:
        client = lifecycle.take(client_id, token)
        # None: another poll holds it, it was polled since this task was sent, or deleted.
        return "held" if client is None else poll_held(client)
    except SecretKeyError as exc:
        # A key removed too early: the operator must act. Said on the client and backed off
        # like any transient failure, not a task failing at every lease.
        log.error("poll %s: %s", client_id, exc)
        lifecycle.record_unreadable_secrets(client_id)
        return "exception"


@metrics.observe_poll
def poll_held(client: ConnectorClient) -> str:
    if client.status == "ERROR":
        lifecycle.release(client)
        return "skipped"  # needs the app or the end user to act first
    if client.type_id not in connector_classes():
        lifecycle.set_status(client, "ERROR", f"connector {client.type_id} is not installed",
                             **RELEASED)
        return "error"
    connector = build_connector(client.type_id)
    if connector.auth_kind == "oauth2" and not client.tokens:
        lifecycle.release(client, next_poll_at=None)  # the consent callback makes it due
        return "awaiting_consent"
    retry_at = rate_budget.take(client.instance.id, rate_limit(client.type_id))
    if retry_at is not None:
        lifecycle.postpone(client, retry_at)
        return "rate_limited"
    try:
        payload = call_plugin(connector, client, connector.fetch, lease_budget())
        specs = spec_fit.fit(connector, guarded(connector, connector.map_things, payload,
                                                copy.deepcopy(client.configuration or {})))
    except TransientError as exc:
        lifecycle.record_transient_failure(client, exc.reason, exc.retry_after)
        log.info("poll %s transient failure: %s", client.id, exc.reason)
        return "exception" if isinstance(exc, PluginFailed) else "retry"
    except ConnectorError as exc:  # ReauthRequired, ConfigError: the app or user must act
        if not lifecycle.record_error(client, exc):
            log.info("poll %s: the instance was changed while it ran: polled again", client.id)
            return "retry"
        log.info("poll %s error: %s", client.id, exc.reason)
        return "error"

    plan = sync.plan(sync.read_stored(client.id), specs)
    if not plan.structural and lifecycle.mark_polled(client, plan.values):
        return "ok"  # steady, or new readings only: one statement, no transaction
    with db.atomic():
        said = lifecycle.record_success(client)  # locks the client row first,
        if said is None:
            return "gone"
        if plan.structural:  # compare again now that no other poll of this client can write
            plan = sync.plan(sync.read_stored(client.id), specs)
        said += sync.apply(client, plan)         # then writes its things,
        events.emit_many(client.app_id, said)    # and takes the app's event counter last
    return "ok"

