"""An end user's consent to an OAuth provider, from the first redirect to the client's new
status: for a new client, for a reauthorization of an existing one (same id, mappings and
things), and for consents that were never finished. Shared by the API, the provider's callback
and the workers (and any other view, such as a console, that offers reauthorization)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from peewee import fn

from thingbridge.connectors import lifecycle, oauth
from thingbridge.connectors.contract import ConnectorError
from thingbridge.connectors.registry import build_connector, connector_classes, installed
from thingbridge.connectors.service import own_client
from thingbridge.db import db, locking, retry_idempotent, utcnow
from thingbridge.errors import ApiError, found
from thingbridge.models import ConnectorClient, OAuthState
from thingbridge.outbox import events
from thingbridge.schemas.common import storable
from thingbridge.schemas.links import external_url

CONSENT_NOT_COMPLETED = "consent not completed"


def uses_consent(type_id: str) -> bool:
    return installed(type_id).auth_kind == "oauth2"


def begin(client: ConnectorClient) -> str:
    """A fresh consent for ``client`` (its instance loaded): any earlier one it had stops
    working. Returns the provider's consent URL, for the end user's browser."""
    OAuthState.delete().where(OAuthState.client == client.id).execute()
    return oauth.start_consent(client, build_connector(client.type_id),
                               client.instance.configuration,
                               external_url("oauth_callback.oauth_callback"))


def reauthorize(app, subject: str, client_id: str) -> tuple[ConnectorClient, str]:
    """A new consent for an existing client, whatever its status; its current grant keeps
    working until the new one replaces it. 404 for another app's or subject's client, 409 for
    a connector without consent."""
    client = own_client(app, subject, client_id)
    if not uses_consent(client.type_id):
        raise ApiError(409, f"{client.type_id} clients connect without the end user's consent; "
                            "fix the configuration with PATCH instead", "NOT_OAUTH")
    with db.atomic():
        # The client's row before its consent states, the order a DELETE of the client takes
        # them in (the states go with it): racing, one waits for the other, neither deadlocks.
        found(locking(ConnectorClient.select(ConnectorClient.id).where(
            ConnectorClient.id == client.id), share=True).first(), "connector client")
        return client, begin(client)


@dataclass
class Outcome:
    """Where a consent ended: the client, the status to tell the app, the provider's error."""

    client: ConnectorClient
    status: str
    error: str | None = None
    confirmation: str | None = None  # for the app's backend to confirm (``confirm_consent``)


def finish(state: str, args) -> Outcome:
    """The provider's callback (``args``: its query). Raises ``oauth.StateError`` for a state
    that is unknown, used or expired, and then no client changes."""
    oauth_state = oauth.take_state(state)
    client = oauth_state.client
    if args.get("error"):
        error = storable(str(args["error"]), 100)  # the provider's text, or anyone's
        return _not_granted(client, error, f"consent not given: {error}")
    if not args.get("code"):
        return _not_granted(client, "invalid_request", "authorization failed: no code")
    try:
        granted = oauth.exchange_code(build_connector(client.type_id),
                                      client.instance.configuration, oauth_state, args["code"])
    except ConnectorError as exc:
        return _not_granted(client, "token_exchange_failed",
                            lifecycle.error_reason(exc, "authorization failed: "))
    # The state is used and the code exchanged: the grant exists only in this request now, so
    # storing it waits out a database restart or a lock (each a transaction of its own).
    if client.instance.configuration.get("confirm_consent"):
        return Outcome(client, client.status, confirmation=retry_idempotent(
            oauth.hold_for_confirmation)(client, granted))
    retry_idempotent(lifecycle.grant)(client, granted)
    return Outcome(client, "STARTING")


def confirm(app, subject: str, client_id: str, code: str) -> ConnectorClient:
    """The app's backend vouches that its own end user (``subject``) gave the consent that came
    back with ``code``; only then does the client get the grant. A consent link that reached
    someone else cannot attach their account to the subject that asked for it: their browser
    brings the code to the app under their own subject, where this client is a 404."""
    client = own_client(app, subject, client_id)
    granted = oauth.take_confirmation(client, code)
    if granted is None:
        raise ApiError(400, "unknown, used or expired confirmation code; reauthorize to start "
                            "again", "INVALID_CONFIRMATION")
    lifecycle.grant(client, granted)
    return client


def _not_granted(client: ConnectorClient, error: str, reason: str) -> Outcome:
    if client.tokens and client.status != "ERROR":
        # A reauthorization the user abandoned: the grant in use still works, so it stays.
        return Outcome(client, client.status, error)
    lifecycle.set_status(client, "ERROR", reason, next_poll_at=None)
    return Outcome(client, "ERROR", error)


def expire_unfinished() -> int:
    """STARTING OAuth clients that never got a grant and have no consent under way any more
    (the end user closed the tab): ERROR ``consent not completed``, which a reauthorization
    repairs. Then expired states are deleted. Returns how many clients moved."""
    now = utcnow()
    oauth_types = [t for t, cls in connector_classes().items() if cls.auth_kind == "oauth2"]
    under_way = OAuthState.select().where((OAuthState.client == ConnectorClient.id)
                                          & (OAuthState.expires_at > now))
    stuck = ConnectorClient.select().where(
        (ConnectorClient.status == "STARTING") & ConnectorClient.tokens.is_null()
        & ConnectorClient.type_id.in_(oauth_types) & ~fn.EXISTS(under_way))
    moved = 0
    for client in stuck.limit(current_app.config["DISPATCH_BATCH"]):
        with db.atomic():
            # A consent may have finished since the query: only a client still waiting moves.
            waiting = locking(ConnectorClient.select(ConnectorClient.id).where(
                (ConnectorClient.id == client.id) & (ConnectorClient.status == "STARTING")
                & ConnectorClient.tokens.is_null())).first() is not None
            said = lifecycle.transition(client, "ERROR", CONSENT_NOT_COMPLETED,
                                        next_poll_at=None) if waiting else None
            events.emit_many(client.app_id, said or [])
            moved += bool(said)
    oauth.prune_states()
    return moved
