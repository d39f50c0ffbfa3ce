"""The app's action callback URL for connector things, and the signed endpoint behind it: a
setup that delivers connector actions itself POSTs them here (no token: the URL's secret
segment names the app, the signature proves the body)."""

from __future__ import annotations

from flask import g, request

from thingbridge.actions import signing
from thingbridge.actions.service import perform_connector_action
from thingbridge.api.common import Blueprint, protected
from thingbridge.connectors.contract import ConnectorError, TransientError
from thingbridge.errors import ApiError, found
from thingbridge.models import App, Thing
from thingbridge.schemas.links import ConnectorActionsLink

blp = Blueprint("connector_actions", __name__, url_prefix="/api/v1/connectors",
                description="Action callback URL and signed endpoint for connector things")


@blp.route("/callbackurl", methods=["GET"])
@protected(blp, "connctd.connector", errors=())
@blp.response(200, ConnectorActionsLink)
def callback_url():
    """The URL to register as the app's action callback for connector-created things"""
    return g.app


@blp.route("/actions/<token>", methods=["POST"], endpoint="perform_action")
@blp.doc(responses={"204": {"description": "Performed at the provider"},
                    "400": {"description": "Refused by the provider (reason in description)"},
                    "401": {"description": "Bad or missing X-Thingbridge-Signature"},
                    "404": {"description": "Unknown token or thing"},
                    "502": {"description": "Provider unreachable; retry"}})
def perform_action(token):
    """Connector service: perform a signed action delivery on a connector-created thing"""
    app = found(App.get_or_none(App.callback_token == token), "connector action endpoint")
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
    thing = found(Thing.get_or_none((Thing.id == payload["thingId"]) & (Thing.app == app)
                                    & Thing.connector_client.is_null(False)), "connector thing")
    parameters = payload.get("parameters") or {}
    try:
        perform_connector_action(thing, payload["componentId"], payload["actionId"], parameters)
    except TransientError as exc:
        raise ApiError(502, exc.reason, "PROVIDER_UNAVAILABLE") from exc
    except ConnectorError as exc:
        raise ApiError(400, exc.reason, "ACTION_REFUSED") from exc
    return "", 204
