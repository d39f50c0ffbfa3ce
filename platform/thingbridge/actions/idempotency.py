"""``Idempotency-Key`` on an action trigger (draft-ietf-httpapi-idempotency-key-header): a
client that lost a trigger's answer (its timeout, a dropped connection, a 503 that says the
request may have been recorded) sends the trigger again with the same key and gets the request
the first call recorded, as it stands now, instead of a second action on the device.

A key belongs to its app and is kept 24 hours from the request it recorded: after that the same
key records a new request. The key is stored as the request's external id under a prefix that
the signed connector-actions endpoint refuses in its own ids (``RESERVED``), so the two never
meet. A repeat while the first call is still at work answers its request PENDING (the draft
would answer 409): the request is the answer, whatever its state.
"""

from __future__ import annotations

import datetime
import re
from functools import cache

from flask import request

from thingbridge import db_writes
from thingbridge.actions.service import recorded
from thingbridge.db import is_postgres, utcnow
from thingbridge.errors import ApiError
from thingbridge.models import ActionRequest
from thingbridge.models.actions import RESERVED
from thingbridge.observability import metrics
from thingbridge.sql import Statement, param

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"  # on the answer to a repeated key, as Stripe's API says it
MAX_LENGTH = 128
KEPT = datetime.timedelta(hours=24)
# Visible ASCII but the quote (an sf-string's delimiter) and the comma (repeated headers
# arrive joined by one): a list of keys, or a string with escapes, is no key.
_PATTERN = rf'[\x21\x23-\x2b\x2d-\x7e]{{1,{MAX_LENGTH}}}'
_VALID = re.compile(_PATTERN)

PARAMETER_DOC = {
    "in": "header", "name": HEADER, "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH + 2,
               "pattern": f'^(?:"{_PATTERN}"|{_PATTERN})$'},
    "description": "A key of the client's own (a UUID, say; 1 to 128 visible ASCII "
                   "characters other than `\"` and `,`, as a structured-field string in quotes "
                   "or bare): a trigger repeated with the same key within 24 hours records "
                   "no second request and answers the first one as it stands now, with "
                   f"`{REPLAYED}: true`; the same key for a different trigger is a 422"}
REPLAYED_DOC = {REPLAYED: {"description": "`true` on the answer to a repeated Idempotency-Key",
                           "schema": {"type": "string", "enum": ["true"]}}}


def key_of() -> str | None:
    """The trigger's key, None without one; 400 for a key that is empty, too long, or holds
    anything but visible ASCII other than a quote or a comma (a structured-field string's
    quotes are taken off)."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _VALID.fullmatch(value):
        raise ApiError(400, f"{HEADER} must be 1 to {MAX_LENGTH} visible ASCII characters "
                            "other than a quote or a comma (one key, quoted or bare)",
                       "INVALID_IDEMPOTENCY_KEY")
    return value


def stored(key: str) -> str:
    """What the request's external id holds for ``key``."""
    return RESERVED + key


def earlier(app, key: str, subject: str, thing_id: str, component_id: str, action_id: str,
            parameters: dict) -> ActionRequest | None:
    """The request a trigger with ``key`` recorded within ``KEPT``, if it was this same
    trigger (subject, thing, component, action and parameters); 422 if it was another. A key
    older than that is let go, and the trigger records a new request."""
    request = recorded(app, stored(key))
    if request is None:
        return None
    if request.created_at < utcnow() - KEPT:
        _let_go(is_postgres()).run(nothing=None, id=request.id, key=stored(key))
        return None
    return replay(request, subject, thing_id, component_id, action_id, parameters)


def replay(request: ActionRequest, subject: str, thing_id: str, component_id: str,
           action_id: str, parameters: dict) -> ActionRequest:
    """``request``, recorded with this trigger's key, if it was this same trigger; else 422."""
    same = (request.external_subject_id, request.thing_id, request.component_id,
            request.action_id, request.parameters) == (subject, thing_id, component_id,
                                                       action_id, parameters)
    metrics.action_replayed("replayed" if same else "refused")
    if not same:
        raise ApiError(422, f"this {HEADER} was used for another trigger (a different "
                            "thing, component, action, parameters or subject) in the last 24 "
                            "hours: a new action needs a new key", "IDEMPOTENCY_KEY_REUSED")
    return request


@cache
def _let_go(postgres: bool) -> Statement:  # built once per database, as its placeholders
    # Bookkeeping, not the request's work: a trigger that fails after it leaves nothing to
    # look for (repeated, it finds the key free and records its request).
    statement = Statement.build(ActionRequest.update(external_id=param("nothing")).where(
        (ActionRequest.id == param("id")) & (ActionRequest.external_id == param("key"))))
    db_writes.bookkeeping(statement.sql)
    return statement
