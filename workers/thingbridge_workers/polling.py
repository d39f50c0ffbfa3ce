"""One poll of one connector client, and the dispatcher that finds due clients.

Plugins do provider I/O and pure mapping; everything stateful lives here: token refresh,
rate budgets, status transitions, scheduling with jittered backoff, and the thing upsert.
"""

from __future__ import annotations

import datetime
import logging
import random

from flask import current_app

from thingbridge.connectors import oauth, rate_budget
from thingbridge.connectors.contract import (
    ClientContext,
    ConfigError,
    ConnectorError,
    ReauthRequired,
    TransientError,
)
from thingbridge.connectors.lifecycle import POLL_TASK, set_status
from thingbridge.connectors.registry import (
    build_connector,
    connector_classes,
    poll_interval,
    rate_limit,
)
from thingbridge.db import db, locking, utcnow
from thingbridge.models import ConnectorClient
from thingbridge.tasks import enqueue
from thingbridge.things import poll_sql
from thingbridge.things.sync import sync_things

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0
# A claimed client is not claimed again for this long, even if its poll task is lost.
CLAIM_LEASE = datetime.timedelta(minutes=5)


def jittered(seconds: float, spread: float = 0.2) -> datetime.timedelta:
    # Jitter keeps thousands of clients created together from polling in lockstep.
    return datetime.timedelta(seconds=seconds * random.uniform(1 - spread, 1 + spread))


def backoff_seconds(failures: int, retry_after: float | None) -> float:
    return max(min(MAX_BACKOFF, 30.0 * 2 ** max(failures - 1, 0)), retry_after or 0.0)


def poll(client_id: str) -> str:
    """Poll one client; returns an outcome word (for logs and tests)."""
    client = poll_sql.load_client(client_id)
    if client is None:
        return "gone"  # deleted while queued
    if client.status == "ERROR":
        return "skipped"  # needs the app or the end user to act first
    if client.type_id not in connector_classes():
        set_status(client, "ERROR", f"connector {client.type_id} is not installed")
        return "error"
    connector = build_connector(client.type_id)
    if connector.auth_kind == "oauth2" and not client.tokens:
        return "awaiting_consent"
    instance = client.instance
    retry_at = rate_budget.take(instance.id, rate_limit(client.type_id))
    if retry_at is not None:
        ConnectorClient.update(next_poll_at=retry_at + jittered(5)).where(
            ConnectorClient.id == client.id).execute()
        return "rate_limited"
    try:
        payload = _fetch(connector, client, instance.configuration)
        specs = connector.map_things(payload, client.configuration or {})
    except TransientError as exc:
        failures = client.failure_count + 1
        delay = backoff_seconds(failures, exc.retry_after)
        ConnectorClient.update(failure_count=failures, status_reason=exc.reason,
                               next_poll_at=utcnow() + jittered(delay), updated_at=utcnow()
                               ).where(ConnectorClient.id == client.id).execute()
        log.info("poll %s transient failure %d: %s", client.id, failures, exc.reason)
        return "retry"
    except (ReauthRequired, ConfigError, ConnectorError) as exc:
        set_status(client, "ERROR", exc.reason, next_poll_at=None)
        log.info("poll %s error: %s", client.id, exc.reason)
        return "error"
    sync_things(client, specs, finish=lambda: _succeeded(client))
    return "ok"


def _succeeded(client: ConnectorClient) -> None:
    now = utcnow()
    next_poll_at = now + jittered(poll_interval(client.type_id), 0.1)
    # A poll of a STARTED client (nearly every poll) is one UPDATE; otherwise a transition.
    if not poll_sql.mark_polled(client.id, "STARTED", now, next_poll_at):
        set_status(client, "STARTED", None, last_success_at=now, failure_count=0,
                   next_poll_at=next_poll_at)


def _fetch(connector, client: ConnectorClient, instance_config: dict) -> dict:
    token = None
    if connector.auth_kind == "oauth2":
        token = oauth.access_token(client.id, connector, instance_config, client=client)
    ctx = ClientContext(instance_config, client.configuration or {}, token)
    try:
        return connector.fetch(ctx)
    except TransientError as exc:
        if not getattr(exc, "token_invalid", False):
            raise
    # The provider rejected a token we thought valid (revoked early, clock skew): refresh once.
    ctx.access_token = oauth.access_token(client.id, connector, instance_config,
                                               force_refresh=True)
    return connector.fetch(ctx)


def claim_due(limit: int) -> list[str]:
    """Claim up to ``limit`` due clients; concurrent dispatchers never claim the same one."""
    now = utcnow()
    with db.atomic():
        query = (ConnectorClient.select(ConnectorClient.id)
                 .where((ConnectorClient.next_poll_at <= now)
                        & (ConnectorClient.status != "ERROR"))
                 .order_by(ConnectorClient.next_poll_at).limit(limit))
        query = locking(query, skip_locked=True)
        ids = [row.id for row in query]
        if ids:
            ConnectorClient.update(next_poll_at=now + CLAIM_LEASE).where(
                ConnectorClient.id.in_(ids)).execute()
    return ids


def dispatch() -> int:
    ids = claim_due(current_app.config["DISPATCH_BATCH"])
    for client_id in ids:
        enqueue(POLL_TASK, client_id)
    return len(ids)
