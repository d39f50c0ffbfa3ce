"""Sending webhooks: one lane at a time, in order, for a bounded slice of time.

The pump (beat) fans new events out into deliveries and leases idle lanes; each lease becomes
one ``thingbridge.deliver_webhooks`` task that walks its lane until it is empty, a delivery
must wait for a retry, or its time slice ends (then it re-enqueues itself, keeping the lease).
"""

from __future__ import annotations

import logging
import time

from flask import current_app

from thingbridge import crypto
from thingbridge.config import WEBHOOK_RUN_SECONDS
from thingbridge.crypto import SecretKeyError
from thingbridge.db import utcnow
from thingbridge.http import outbound
from thingbridge.http.retry_after import parse_retry_after
from thingbridge.http.urls import allow_list
from thingbridge.outbox import events, webhook_signing, webhooks
from thingbridge.tasks import enqueue

log = logging.getLogger(__name__)
DELIVER_TASK = "thingbridge.deliver_webhooks"
TIME_SLICE = 20.0  # seconds a task walks its lane before yielding the worker to others
READ_AHEAD = 20  # deliveries of a lane read in one query, and recorded in one transaction
RETRYABLE_4XX = (408, 425, 429)
UNREADABLE_SECRET = crypto.unreadable("this endpoint's signing secret")


def pump() -> int:
    """Fan out new events, then start a task for every idle lane with a due delivery."""
    webhooks.fan_out()
    claimed = webhooks.claim_lanes()
    for delivery_id, token in claimed:
        enqueue(DELIVER_TASK, delivery_id, token)
    return len(claimed)


def deliver_lane(delivery_id: int, token: str) -> int:
    """Send the lane's deliveries in order; returns how many were attempted.

    The lane's next deliveries are read ``READ_AHEAD`` at a time; each is sent as soon as the
    one before it is acknowledged, and their outcomes are recorded together (a run ends at a
    failure, at ``READ_AHEAD`` deliveries or after ``WEBHOOK_RUN_SECONDS``). A lane that runs
    dry fans its endpoint's new events out itself instead of waiting for the pump's next
    tick."""
    until, sent = time.monotonic() + TIME_SLICE, 0
    current = webhooks.leased(delivery_id, token)
    ahead = webhooks.lane_after(current.delivery, token, READ_AHEAD) if current else []
    shown = ahead[0].endpoint.last_error if ahead else None  # the endpoint's, as last known
    while ahead:
        if time.monotonic() > until:
            enqueue(DELIVER_TASK, ahead[0].delivery.id, token)  # the lease comes along
            break
        run, run_ends = [], time.monotonic() + WEBHOOK_RUN_SECONDS
        for current in ahead:
            outcome = attempt(current)
            run.append((current.delivery, outcome))
            if not outcome.ok or time.monotonic() > run_ends:
                break
        sent += len(run)
        last, outcome = run[-1]
        next_id = webhooks.record_run(token, run)
        shown = webhooks.note_endpoint(last.endpoint_id, outcome, shown)
        if next_id is None and (outcome.ok or not outcome.retryable) and \
                webhooks.catch_up(last.endpoint_id):
            next_id = webhooks.lease_next(last, token)
        if next_id is None:
            break
        ahead = ahead[len(run):]
        if not ahead or ahead[0].delivery.id != next_id:
            # Past what was read, or an older event came first (a replay, a redelivery).
            nxt = webhooks.leased(next_id, token)
            ahead = webhooks.lane_after(nxt.delivery, token, READ_AHEAD) if nxt else []
            shown = ahead[0].endpoint.last_error if ahead else shown
    return sent


def attempt(current: webhooks.Leased) -> webhooks.Outcome:
    event, endpoint = current.event, current.endpoint
    try:
        secrets = current.secrets()
    except SecretKeyError as exc:
        # The operator's to fix: said on the delivery and the endpoint, and retried with the
        # backoff of a receiver that does not answer.
        log.error("webhook %s: %s", endpoint.id, exc)
        return webhooks.Outcome(None, UNREADABLE_SECRET, 0, retryable=True)
    body = events.body(events.envelope(event))
    # "<app>:<id>": unique even for a receiver shared by several apps; the same on every
    # attempt, redelivery and replay, so receivers dedupe on it.
    headers = webhook_signing.headers(secrets, f"{event.app_id}:{event.seq}", body, utcnow())
    config = current_app.config
    started = time.monotonic()
    answer = outbound.post(endpoint.url, body, headers, config["WEBHOOK_TIMEOUT"],
                           allow_list(), event.app_id)
    code = answer.status
    if code is None:
        # No timing beside a failure: it would tell an app open, closed and filtered apart.
        return webhooks.Outcome(None, f"unreachable: {answer.reason}", 0, retryable=True)
    took = int((time.monotonic() - started) * 1000)
    if 200 <= code < 300:
        return webhooks.Outcome(code, None, took, ok=True)
    reason = f"answered {code}: {answer.text}" if code >= 400 else \
        f"answered {code} (redirects are not followed)"
    retryable = code >= 500 or code in RETRYABLE_4XX
    retry_after = parse_retry_after(answer.headers.get("Retry-After"), None) if retryable \
        else None
    return webhooks.Outcome(code, reason, took, retryable=retryable,
                            retry_after=retry_after)
