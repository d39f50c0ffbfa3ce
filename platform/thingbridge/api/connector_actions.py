"""The app's action callback URL for connector things, and the signed endpoint behind it: a
setup that delivers connector actions itself POSTs them here (no token: the URL's secret
segment names the app, the signature proves the body). Each call is an action request like
any other (its events included), performed at most once per request id."""

from __future__ import annotations

import math

from flask import g, request
from flask_smorest import abort
from marshmallow import ValidationError

from thingbridge.actions import signing
from thingbridge.actions.service import (
    check_parameters,
    connector_target,
    finish,
    perform_connector_action,
    record_once,
    recorded,
)
from thingbridge.api.common import Blueprint, error_responses, protected
from thingbridge.api.outside_calls import outside_call
from thingbridge.connectors import lifecycle
from thingbridge.connectors.contract import ConnectorError, TransientError
from thingbridge.db import DatabaseUnavailable
from thingbridge.errors import ApiError, found
from thingbridge.models import ActionRequest, App, Thing
from thingbridge.schemas.actions import ConnectorActionIn
from thingbridge.schemas.common import unstorable
from thingbridge.schemas.links import ConnectorActionsLink, external_url
from thingbridge.things.service import own_action, own_component

blp = Blueprint("connector_actions", __name__, url_prefix="/api/v1/connectors",
                description="Action callback URL and signed endpoint for connector things")
# How a FAILED request's error says the provider was not reached (502, not a refusal).
UNAVAILABLE = "provider unavailable: "
# Seconds the provider calls of one request may take together (a refresh, the action, and both
# again after a refused token): well inside gunicorn's 30 s, which would end the worker.
CALL_BUDGET = 20.0


@blp.route("/callbackurl", methods=["GET"])
@protected(blp, "connctd.connector", errors=())
@blp.response(200, ConnectorActionsLink)
def callback_url():
    """The URL to register as the app's action callback for connector-created things"""
    return g.app


@blp.route("/actions/<key(maxlength=64):token>", methods=["POST"],
           endpoint="perform_action")
@blp.doc(requestBody={"required": True, "content": {"application/json": {
    "schema": ConnectorActionIn}}}, parameters=[
    {"in": "header", "name": signing.SIGNATURE_HEADER, "required": True,
     "schema": {"type": "string", "maxLength": 100}, "description": "sha256=<hex>"},
    {"in": "header", "name": "Date", "required": True, "schema": {"type": "string"}}],
    responses={"204": {"description": "Performed at the provider (or performed before with "
                                      "this request id)"}, **error_responses(
        400, 401, 404, 409, 502, 503, text={
            400: "Invalid body or parameters, or refused by the provider",
            401: "Bad or missing X-Thingbridge-Signature or Date",
            409: "A request with this id is still being performed"})})
def perform_action(token):
    """Connector service: perform a signed action delivery on a connector-created thing"""
    app = found(App.get_or_none(App.callback_token == token), "connector action endpoint")
    _verify_signature(app)
    payload = request.get_json(silent=True)
    try:
        problem = unstorable(payload)
        if problem:
            raise ValidationError(problem)
        body = ConnectorActionIn().load(payload)
    except ValidationError as exc:
        abort(400, messages={"json": exc.messages})
    thing = found(Thing.get_or_none((Thing.id == body["thingId"]) & (Thing.app == app)
                                    & Thing.connector_client.is_null(False)), "connector thing")
    action = own_action(own_component(thing, body["componentId"]), body["actionId"])
    check_parameters(action, body["parameters"])
    if (earlier := recorded(app, body["id"])) is not None:
        return _answer(earlier)  # a replay: the first call's result, nothing to wait on
    # The slot before the record: a busy answer leaves no request behind to block a retry.
    with outside_call():
        action_request, first = record_once(app, thing, body["componentId"], body["actionId"],
                                            body["parameters"], body["id"])
        if not first:
            return _answer(action_request)  # a replay that raced this call
        wait = _perform(action_request, thing, body)
    return _answer(ActionRequest.get_by_id(action_request.id), wait)


def _perform(action_request: ActionRequest, thing: Thing, body: dict) -> float | None:
    """Perform the action and record its outcome; the wait the provider asked for, if it
    refused for now (its Retry-After: a usage limit)."""
    try:
        _thing, client, device_id = connector_target(thing.id)
        perform_connector_action(client, device_id, body["componentId"], body["actionId"],
                                 body["parameters"], CALL_BUDGET)
    except DatabaseUnavailable as exc:
        # Before the provider call (reading the target, a token refresh waiting on the client's
        # row): not performed. Recorded so, the request id answers that for good rather than
        # "still being performed" until it expires as a timeout.
        finish(action_request, "FAILED", f"{UNAVAILABLE}the platform's database failed before "
                                         f"the provider was called, nothing was performed: {exc}")
    except TransientError as exc:
        finish(action_request, "FAILED", UNAVAILABLE + exc.reason)
        return exc.retry_after
    except ConnectorError as exc:
        finish(action_request, "FAILED", exc.reason)
    else:
        finish(action_request, "COMPLETED")
        lifecycle.refresh_soon(client)
    return None


def _verify_signature(app: App) -> None:
    """401 unless the body is signed with the app's key, over the URL we published."""
    if app.signing_key is None:
        raise ApiError(401, "no signing key registered for this app", "BAD_SIGNATURE")
    url = external_url("connector_actions.perform_action", token=app.callback_token)
    problem = signing.verify(app.signing_key, "POST", url, request.headers.get("Date"),
                             request.get_data(), request.headers.get(signing.SIGNATURE_HEADER))
    if problem:
        raise ApiError(401, problem, "BAD_SIGNATURE")


def _answer(action_request: ActionRequest, wait: float | None = None):
    if action_request.status == "COMPLETED":
        return "", 204
    if action_request.status == "PENDING":
        raise ApiError(409, "a request with this id is still being performed", "IN_PROGRESS")
    error = action_request.error or action_request.status
    if error.startswith(UNAVAILABLE):
        unavailable = ApiError(502, error, "PROVIDER_UNAVAILABLE")
        if wait:  # the provider's own Retry-After, for the connector service's next request
            unavailable.data = {"headers": {"Retry-After": str(math.ceil(wait))}}
        raise unavailable
    raise ApiError(400, error, "ACTION_REFUSED")
