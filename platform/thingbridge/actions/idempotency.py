"""``Idempotency-Key`` on an action trigger (draft-ietf-httpapi-idempotency-key-header): a
client that lost a trigger's answer (its timeout, a dropped connection, a 503 that says the
request may have been recorded) sends the trigger again with the same key and gets the request
the first call recorded, as it stands now, instead of a second action on the device.

A key belongs to its app and is kept 24 hours from the request it recorded: after that the same
key records a new request. The key is stored as the request's external id, under a prefix of
its own, so it never meets the ids the signed connector-actions endpoint stores there.
"""

from __future__ import annotations

import datetime
import re

from flask import request

from thingbridge.actions.service import recorded
from thingbridge.db import utcnow
from thingbridge.errors import ApiError
from thingbridge.models import ActionRequest

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"  # on the answer to a repeated key, as Stripe's API says it
MAX_LENGTH = 128
KEPT = datetime.timedelta(hours=24)
_PREFIX = "idempotency-key:"
_VALID = re.compile(rf"[\x21-\x7e]{{1,{MAX_LENGTH}}}")

PARAMETER_DOC = {
    "in": "header", "name": HEADER, "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH},
    "description": "A key of the client's own (a UUID, say; 1 to 128 visible ASCII "
                   "characters, quoted or not): a trigger repeated with the same key within "
                   "24 hours records no second request and answers the first one as it stands "
                   f"now, with `{REPLAYED}: true`; the same key for a different trigger is a 422"}


def key_of() -> str | None:
    """The trigger's key, None without one; 400 for a key that is empty, too long, or not
    visible ASCII (a structured-field string's quotes are taken off)."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _VALID.fullmatch(value):
        raise ApiError(400, f"{HEADER} must be 1 to {MAX_LENGTH} visible ASCII characters",
                       "INVALID_IDEMPOTENCY_KEY")
    return value


def stored(key: str) -> str:
    """What the request's external id holds for ``key``."""
    return _PREFIX + key


def earlier(app, key: str, subject: str, thing_id: str, component_id: str, action_id: str,
            parameters: dict) -> ActionRequest | None:
    """The request a trigger with ``key`` recorded within ``KEPT``, if it was this same
    trigger (subject, thing, component, action and parameters); 422 if it was another. A key
    older than that is let go, and the trigger records a new request."""
    request = recorded(app, stored(key))
    if request is None:
        return None
    if request.created_at < utcnow() - KEPT:
        ActionRequest.update(external_id=None).where(
            (ActionRequest.id == request.id)
            & (ActionRequest.external_id == stored(key))).execute()
        return None
    return replay(request, subject, thing_id, component_id, action_id, parameters)


def replay(request: ActionRequest, subject: str, thing_id: str, component_id: str,
           action_id: str, parameters: dict) -> ActionRequest:
    """``request``, recorded with this trigger's key, if it was this same trigger; else 422."""
    if (request.external_subject_id, request.thing_id, request.component_id,
            request.action_id, request.parameters) != (subject, thing_id, component_id,
                                                       action_id, parameters):
        raise ApiError(422, f"this {HEADER} was used for another trigger (a different thing, "
                            "action, parameters or subject) in the last 24 hours: a new "
                            "action needs a new key", "IDEMPOTENCY_KEY_REUSED")
    return request
