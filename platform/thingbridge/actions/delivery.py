"""Delivering action requests: to the connector (connector things) or, signed, over HTTP to
the creating app's callback URL. Every outcome moves the request out of PENDING at most once.

A worker makes every attempt (``thingbridge.deliver_action``), except that the API makes the
first one of a connector thing's request itself, in the trigger's own request, when the server
has an outside-call slot it may take (``outside_calls.slot``) and the client's token needs no
refresh: the answer then says what the provider did, and the action costs no broker hop and no
second process. Anything that keeps it from finishing the attempt there hands the request to a
worker with the same claim: the trigger is recorded before, so nothing is lost.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid

from flask import current_app

from thingbridge import backoff, crypto
from thingbridge.actions import idempotency, signing
from thingbridge.actions.service import (
    DELIVER_TASK,
    Target,
    finish,
    held_by,
    perform_connector_action,
    record_once,
    record_request,
    release_delivery,
    request_body,
    take_delivery,
)
from thingbridge.connectors import lifecycle
from thingbridge.connectors.contract import ConnectorError, TransientError
from thingbridge.connectors.plugin_call import RefreshNeeded
from thingbridge.crypto import SecretKeyError
from thingbridge.db import utcnow
from thingbridge.http import outbound
from thingbridge.http.urls import allow_list
from thingbridge.models import ActionRequest, App, Thing
from thingbridge.tasks import enqueue_soon

log = logging.getLogger(__name__)
RETRY_BASE, MAX_RETRY_DELAY = 1.0, 30.0
UNREADABLE_KEY = crypto.unreadable("the action signing key of the thing's app")
UNREADABLE_CREDENTIALS = crypto.unreadable("the stored credentials of the thing's connector")


# Outcomes after which the request left PENDING, its lease freed by the same statement.
SETTLED = ("completed", "failed", "timeout")
# The API's own attempt: its provider calls end within one call's timeout (HTTP_TIMEOUT), so
# it cuts no call sooner than a worker would. It holds the request that long and RECORDING
# more (the database's patience for writing the outcome, twice), so no dispatcher sends it
# again while the outcome is being written; it is made only where that is no longer than
# gunicorn's 30 s, after which the request is ended anyway, and a server that dies
# mid-attempt leaves it to the dispatcher long before its deadline.
API_CALL_LIMIT, RECORDING = 10.0, 20.0


def create_request(app, subject: str, thing: Thing, component_id: str, action_id: str,
                   parameters: dict, rate=None, slot=None,
                   key: str | None = None) -> tuple[ActionRequest, bool]:
    """Record a request (``rate``: as for :func:`service.record_request`) and deliver it: here
    and now when ``slot`` (``outside_calls.slot``) gives one to a connector thing's request,
    else by a worker, at once or from the dispatcher if the broker is down. The request as the
    attempt left it, and whether this call recorded it: with an idempotency ``key`` that a
    concurrent trigger recorded first, it is that one's, delivered by that trigger."""
    if key is None:
        request = record_request(app, subject, thing, component_id, action_id, parameters,
                                 deliver=True, rate=rate)
    else:
        request, first = record_once(app, thing, component_id, action_id, parameters,
                                     idempotency.stored(key), deliver=True, rate=rate)
        if not first:
            return request, False
    claim = str(uuid.uuid4())
    budget = current_app.config["HTTP_TIMEOUT"]
    if (slot is not None and thing.connector_client_id is not None
            and current_app.config["ACTIONS_IN_API"] and budget <= API_CALL_LIMIT):
        with slot(handover=True) as free:
            if free and (attempted := _attempted_here(request.id, claim, budget)) is not None:
                return attempted, True
    enqueue_soon(DELIVER_TASK, request.id, claim)
    return request, True


def _attempted_here(request_id: str, claim: str, budget: float) -> ActionRequest | None:
    """The request as this process's attempt left it, or None if it did not make the attempt
    to its end (whatever the provider said) and a worker is to take it over."""
    try:
        outcome, request = _attempt(request_id, claim, budget + RECORDING, budget,
                                    refresh=False)
        if outcome in SETTLED and request.status == "PENDING":
            return ActionRequest.get_by_id(request_id)  # ended elsewhere meanwhile (expired)
        return request
    except Exception:  # noqa: BLE001 - the trigger is recorded; a worker takes it over
        log.exception("action %s: the API's own attempt failed", request_id)
    try:
        stored = ActionRequest.get_by_id(request_id)
    except Exception:  # noqa: BLE001 - the database went: the claim's task takes it over
        return None
    # An outcome already recorded (a retry due when the provider asked, a terminal state)
    # stands: the claim would skip the retry's wait.
    return stored if stored.status != "PENDING" or stored.attempts else None


def attempt(request_id: str, claim: str | None, lease: float, budget: float) -> str:
    """One delivery attempt, holding the request's lease for ``lease`` seconds (``claim``: the
    sender's), its provider calls within ``budget``; its outcome, or "held" if another task
    holds it or it is not due."""
    return _attempt(request_id, claim, lease, budget)[0]


def _attempt(request_id: str, claim: str | None, lease: float, budget: float,
             refresh: bool = True) -> tuple[str, ActionRequest | None]:
    """As :func:`attempt`; without ``refresh``, an action whose client's token needs a refresh
    (due, or rejected by the provider) is left to a worker ("held"), its lease freed: a refresh
    holds the client's row and rotates the grant, which a call cut at the API's shorter budget,
    or a process ended mid-refresh, would lose."""
    try:
        taken = take_delivery(request_id, claim, lease)
    except SecretKeyError as exc:  # taken, with a connector whose credentials no key reads
        request = ActionRequest.get_by_id(request_id)
        outcome = unreadable(request, exc, UNREADABLE_CREDENTIALS)
    else:
        if taken is None:
            return "held", None  # another task holds it, or it is no longer PENDING
        request = taken[0]
        try:
            outcome = deliver(*taken, budget=budget, refresh=refresh)
        except RefreshNeeded:  # before anything was performed
            release_delivery(request, awaiting_app=False)
            return "held", None
    if outcome not in SETTLED:
        release_delivery(request, awaiting_app=outcome == "accepted")
    return outcome, request


def deliver(request: ActionRequest, target: Target, budget: float, refresh: bool = True) -> str:
    """One attempt for a request this task holds, with its target (as
    :func:`service.take_delivery` read them), a connector's provider calls within ``budget``
    seconds (``refresh``: as :func:`service.perform_connector_action`)."""
    if utcnow() >= request.deadline:
        finish(request, "FAILED", "timeout", release=True)
        return "timeout"
    thing, client, device_id = target
    if client is not None:
        return _perform_on_connector(request, client, device_id, budget, refresh)
    try:
        owner = App.get_by_id(thing.created_by_id)
    except SecretKeyError as exc:
        return unreadable(request, exc, UNREADABLE_KEY)
    return _post_to_callback(request, owner)


def unreadable(request: ActionRequest, error: SecretKeyError, reason: str) -> str:
    """A held request whose delivery needs a stored secret no configured key decrypts: the
    operator's to fix. Said on the request and retried with backoff until its deadline, not
    a task that fails and holds the request until its lease runs out."""
    log.error("action %s: %s", request.id, error)
    return _retry(request, reason)


def _perform_on_connector(request: ActionRequest, client, device_id: str, budget: float,
                          refresh: bool) -> str:
    try:
        perform_connector_action(client, device_id, request.component_id, request.action_id,
                                 request.parameters, budget, refresh)
    except TransientError as exc:
        return _retry(request, exc.reason, exc.retry_after)
    except ConnectorError as exc:
        finish(request, "FAILED", exc.reason, release=True)
        return "failed"
    # COMPLETED as soon as the provider accepted; the device's new values follow in a poll.
    finish(request, "COMPLETED", release=True)
    lifecycle.refresh_soon(client)
    return "completed"


def _post_to_callback(request: ActionRequest, owner: App) -> str:
    if not owner.callback_url or not owner.signing_key:
        finish(request, "FAILED", "the thing's app has no action callback URL", release=True)
        return "failed"
    body = json.dumps(request_body(request), separators=(",", ":")).encode()
    date = signing.http_date()
    headers = {"Content-Type": "application/json", "Date": date,
               signing.SIGNATURE_HEADER: signing.signature(owner.signing_key, "POST",
                                                           owner.callback_url, date, body)}
    answer = outbound.post(owner.callback_url, body, headers,
                           current_app.config["OUTBOUND_TIMEOUT"], allow_list(), owner.id)
    if answer.status is None:
        return _retry(request, f"callback unreachable: {answer.reason}")
    if answer.status in (200, 204):
        finish(request, "COMPLETED", release=True)
        return "completed"
    if answer.status == 202:
        return "accepted"  # the app finishes it later with PUT /actions/requests/{id}
    if answer.status == 429 or answer.status >= 500:
        return _retry(request, f"callback answered {answer.status}")
    finish(request, "FAILED", _reason(answer), release=True)
    return "failed"


def _reason(answer: outbound.Answer) -> str:
    try:
        body = json.loads(answer.text)
        text = body.get("error") or body.get("description") or json.dumps(body)
    except (ValueError, AttributeError):
        text = answer.text
    return f"callback answered {answer.status}: {str(text)[:outbound.EXCERPT]}"


def _retry(request: ActionRequest, reason: str, retry_after: float | None = None) -> str:
    """Try again after a backoff, never sooner than the provider's ``retry_after``; a wait it
    asks for that reaches past the deadline (a usage limit) fails the request now, with the
    provider's reason: attempts it would refuse until the deadline, ending in ``timeout``,
    only spent the end user's quota and hid why."""
    attempts = request.attempts + 1
    remaining = (request.deadline - utcnow()).total_seconds()
    if retry_after and retry_after >= remaining:
        finish(request, "FAILED", reason, release=True)
        log.info("action %s attempt %d: %s; the provider asks to wait %.0fs, past the "
                 "deadline", request.id, attempts, reason, retry_after)
        return "failed"
    delay = min(backoff.delay(attempts, RETRY_BASE, MAX_RETRY_DELAY, retry_after),
                max(remaining, 0.0))
    request.attempts, request.error, request.updated_at = attempts, reason, utcnow()
    request.next_attempt_at = request.updated_at + datetime.timedelta(seconds=delay)
    ActionRequest.update(attempts=attempts, error=reason, updated_at=request.updated_at,
                         next_attempt_at=request.next_attempt_at).where(
        (ActionRequest.id == request.id) & held_by(request)).execute()
    log.info("action %s attempt %d: %s; retry in %.1fs", request.id, attempts, reason, delay)
    # At the deadline the next attempt finds it overdue and fails it with "timeout". Without a
    # broker the dispatcher sends it when it is due.
    enqueue_soon(DELIVER_TASK, request.id, countdown=delay)
    return "retry"
