"""The provider's OAuth redirect target: finishes an end user's consent and sends the browser
back to the app (no token: the single-use ``state`` identifies the client)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Response, redirect, request

from thingbridge.api import outside_calls
from thingbridge.api.common import Blueprint
from thingbridge.connectors import consent, oauth
from thingbridge.errors import ApiError

blp = Blueprint("oauth_callback", __name__, url_prefix="/api/v1/connectors",
                description="Provider OAuth callback (the end user's browser)")

# Shown for a state that is unknown, used or expired: a reload, the back button or a link from
# the history. Nothing changes and the browser goes nowhere, so a replay cannot undo a consent
# or bounce anyone through the platform's domain.
STALE_LINK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Link no longer valid</title></head>
<body><h1>This link was already used or has expired</h1>
<p>Go back to the app and start again.</p></body></html>
"""

# Shown while the server's provider calls are all under way (a provider that hangs): nothing
# was taken, so the same link finishes the consent once one is free.
BUSY_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{wait}">
<title>One moment</title></head>
<body><h1>Connecting your account is taking longer than usual</h1>
<p>This page tries again by itself in a moment; you can also reload it.</p></body></html>
"""


def _back_to_origin(outcome: consent.Outcome):
    client = outcome.client
    origin = (client.instance.configuration or {}).get("origin_callback_uri")
    params = {"client_id": client.id, "status": outcome.status}
    if outcome.error:
        params["error"] = outcome.error
    if outcome.confirmation:
        params["confirmation"] = outcome.confirmation
    if not origin:
        if outcome.error:
            raise ApiError(400, f"authorization failed: {outcome.error}", "AUTHORIZATION_FAILED")
        return params
    parts = urlsplit(origin)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return redirect(urlunsplit(parts._replace(query=query)), code=302)


@blp.route("/oauth/callback", methods=["GET"], endpoint="oauth_callback")
@blp.doc(responses={
    "302": {"description": "Back to the instance's origin_callback_uri with client_id, status, "
                           "on failure error, and with confirm_consent the confirmation code "
                           "for the app's backend"},
    "400": {"description": "The state is unknown, used or expired: an HTML page, and no "
                           "client changed", "content": {"text/html": {}}},
    "503": {"description": "The server's provider calls are all under way: an HTML page that "
                           "reloads itself (Retry-After); nothing was taken, so the same link "
                           "finishes the consent", "content": {"text/html": {}}}})
def oauth_callback():
    """Provider redirect target after the end user's consent (browser, no token)"""
    if request.method == "HEAD":
        # A link checker's or a prefetching proxy's look: the consent is the browser's GET,
        # which would otherwise find the state used.
        return _page("", 200)
    try:  # the slot before the state is taken: after a busy page, a reload can still finish
        with outside_calls.outside_call():
            outcome = consent.finish(request.args.get("state", ""), request.args)
    except oauth.StateError:
        return _page(STALE_LINK_PAGE, 400)
    except outside_calls.Busy as busy:
        return _page(BUSY_PAGE.format(wait=busy.data["headers"]["Retry-After"]), 503,
                     busy.data["headers"])
    return _back_to_origin(outcome)


def _page(html: str, status: int, headers: dict | None = None) -> Response:
    return Response(html, status, content_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-store", **(headers or {})})
