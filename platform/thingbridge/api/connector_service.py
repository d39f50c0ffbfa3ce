"""Connector-service routes: the app's action callback URL, the endpoint behind it, and the
provider OAuth callback."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import g, redirect, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from thingbridge.actions import signing
from thingbridge.actions.service import perform_connector_action
from thingbridge.api.common import href, protected
from thingbridge.connectors import lifecycle, oauth
from thingbridge.connectors.contract import ConnectorError, TransientError
from thingbridge.connectors.lifecycle import set_status
from thingbridge.connectors.registry import build_connector
from thingbridge.errors import ApiError, not_found
from thingbridge.models import App, ConnectorClient, Thing

blp = Blueprint("connector_service", __name__, url_prefix="/api/v1/connectors",
                description="Action callback URL and provider OAuth callback")


class CallbackUrlSchema(Schema):
    href = fields.Url(required=True)


@blp.route("/callbackurl", methods=["GET"])
@protected(blp, "connctd.connector", errors=())
@blp.response(200, CallbackUrlSchema)
def callback_url():
    """The URL to register as the app's action callback for connector-created things"""
    return {"href": href(f"/api/v1/connectors/actions/{g.app.callback_token}")}


def _back_to_origin(client: ConnectorClient, status: str, error: str | None = None):
    origin = (client.instance.configuration or {}).get("origin_callback_uri")
    params = {"client_id": client.id, "status": status}
    if error:
        params["error"] = error
    if not origin:
        if error:
            raise ApiError(400, f"authorization failed: {error}", "AUTHORIZATION_FAILED")
        return {"client_id": client.id, "status": status}
    parts = urlsplit(origin)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return redirect(urlunsplit(parts._replace(query=query)), code=302)


@blp.route("/oauth/callback", methods=["GET"])
@blp.doc(responses={"302": {"description": "Back to the instance's origin_callback_uri with "
                                           "client_id, status and (on failure) error"}})
def oauth_callback():
    """Provider redirect target after the end user's consent (browser, no token)"""
    try:
        oauth_state = oauth.consume_state(request.args.get("state", ""))
    except oauth.StateError as exc:
        if exc.oauth_state is None:
            raise ApiError(400, "unknown or missing OAuth state", "INVALID_STATE") from exc
        client = exc.oauth_state.client
        set_status(client, "ERROR", f"authorization failed: {exc.reason}")
        return _back_to_origin(client, "ERROR", "invalid_state")

    client = oauth_state.client
    if request.args.get("error"):
        error = request.args["error"][:100]
        set_status(client, "ERROR", f"consent not given: {error}")
        return _back_to_origin(client, "ERROR", error)
    code = request.args.get("code")
    if not code:
        set_status(client, "ERROR", "authorization failed: no code in callback")
        return _back_to_origin(client, "ERROR", "invalid_request")
    try:
        oauth.exchange_code(client, build_connector(client.type_id),
                                 client.instance.configuration, oauth_state, code)
    except ConnectorError as exc:
        set_status(client, "ERROR", f"authorization failed: {exc.reason}")
        return _back_to_origin(client, "ERROR", "token_exchange_failed")
    lifecycle.consented(client)
    lifecycle.poll_soon(client)
    return _back_to_origin(client, "STARTING")


@blp.route("/actions/<token>", methods=["POST"])
@blp.doc(responses={"204": {"description": "Performed at the provider"},
                    "400": {"description": "Refused by the provider (reason in description)"},
                    "401": {"description": "Bad or missing X-Thingbridge-Signature"},
                    "404": {"description": "Unknown token or thing"},
                    "502": {"description": "Provider unreachable; retry"}})
def perform_action(token):
    """Connector service: perform a signed action delivery on a connector-created thing"""
    app = App.get_or_none(App.callback_token == token)
    if app is None:
        raise not_found("connector action endpoint")
    body = request.get_data()
    if app.signing_key is None:
        raise ApiError(401, "no signing key registered for this app", "BAD_SIGNATURE")
    problem = signing.verify(app.signing_key, "POST", request.url, request.headers.get("Date"),
                             body, request.headers.get(signing.SIGNATURE_HEADER))
    if problem:
        raise ApiError(401, problem, "BAD_SIGNATURE")
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not all(
            isinstance(payload.get(k), str) for k in ("thingId", "componentId", "actionId")):
        raise ApiError(400, "body must be an action request {id, thingId, componentId, "
                            "actionId, parameters}")
    thing = Thing.get_or_none((Thing.id == payload["thingId"]) & (Thing.app == app)
                              & Thing.connector_client.is_null(False))
    if thing is None:
        raise not_found("connector thing")
    parameters = payload.get("parameters") or {}
    try:
        perform_connector_action(thing, payload["componentId"], payload["actionId"], parameters)
    except TransientError as exc:
        raise ApiError(502, exc.reason, "PROVIDER_UNAVAILABLE") from exc
    except ConnectorError as exc:
        raise ApiError(400, exc.reason, "ACTION_REFUSED") from exc
    return "", 204
