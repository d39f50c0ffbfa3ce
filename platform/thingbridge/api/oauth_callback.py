"""The provider's OAuth redirect target: finishes an end user's consent and sends the browser
back to the app (no token: the single-use ``state`` identifies the client)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import redirect, request

from thingbridge.api.common import Blueprint
from thingbridge.connectors import oauth
from thingbridge.connectors.contract import ConnectorError
from thingbridge.connectors.lifecycle import schedule_first_poll, set_status
from thingbridge.connectors.registry import build_connector
from thingbridge.errors import ApiError
from thingbridge.models import ConnectorClient

blp = Blueprint("oauth_callback", __name__, url_prefix="/api/v1/connectors",
                description="Provider OAuth callback (the end user's browser)")


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


@blp.route("/oauth/callback", methods=["GET"], endpoint="oauth_callback")
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
    set_status(client, "STARTING", None)
    schedule_first_poll(client)
    return _back_to_origin(client, "STARTING")
