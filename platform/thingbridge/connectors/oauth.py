"""The host side of provider OAuth2: consent redirect, single-use state, code exchange, refresh.

Plugins only declare their endpoints (contract.OAuth2Endpoints); persisting and rotating tokens is
done here so every OAuth connector gets the same guarantees.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import secrets

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app

from thingbridge.config import TRUE, provider_setting
from thingbridge.connectors.contract import (
    ConfigError,
    Connector,
    InstanceRefused,
    ReauthRequired,
    TransientError,
)
from thingbridge.db import delete_in_batches, locking, utcnow, write_transaction
from thingbridge.http import bounded
from thingbridge.models import ConnectorClient, OAuthState
from thingbridge.observability import metrics

# An access token said to live longer is refreshed after this anyway ("expires_in": 1e20
# overflowed the date, after the provider had rotated the refresh token).
MAX_TOKEN_LIFETIME = 30 * 86400
# Refresh a little early so a token never expires between the check and the provider call.
EXPIRY_MARGIN = datetime.timedelta(seconds=60)


class StateError(Exception):
    """Unknown, used or expired `state`: the callback cannot be trusted with any client."""


def _session(connector: Connector, instance_config: dict, **kwargs) -> OAuth2Session:
    endpoints = connector.oauth2_endpoints()
    # Bounded: a refresh runs holding the client's row lock.
    session = bounded.mount(OAuth2Session(
        instance_config["client_id"], instance_config["client_secret"],
        scope=" ".join(endpoints.scopes), token_endpoint_auth_method="client_secret_post",
        **kwargs))
    for hook in ("access_token_response", "refresh_token_response"):
        session.register_compliance_hook(hook, _sane_lifetime)
    return session


def _sane_lifetime(resp: requests.Response) -> requests.Response:
    """The answer with ``expires_in`` a whole number of seconds (up to MAX_TOKEN_LIFETIME) or
    none, and no ``expires_at``: authlib converts both with ``int()`` as it reads the answer,
    and "3600.0", NaN or 1e999 raised there, losing a refresh token the provider had already
    rotated."""
    try:
        token = resp.json()
    except ValueError:
        return resp  # authlib refuses it as it is
    if not isinstance(token, dict):
        return resp
    try:
        seconds = float(token.pop("expires_in", None))
    except (TypeError, ValueError):
        seconds = math.nan
    token.pop("expires_at", None)
    if seconds >= 1:  # NaN is not
        token["expires_in"] = int(min(seconds, MAX_TOKEN_LIFETIME))
    resp._content = json.dumps(token).encode()
    return resp


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def pkce(connector: Connector) -> bool:
    """PKCE S256 if the connector declares its provider accepts it, or the operator says so
    (``THINGBRIDGE_<TYPE>_PKCE``) for a provider that added it since."""
    value = provider_setting(current_app.config, connector.type_id, "PKCE",
                             connector.oauth2_endpoints().pkce)
    return value is True or str(value).lower() in TRUE


def start_consent(client: ConnectorClient, connector: Connector, instance_config: dict,
                  redirect_uri: str) -> str:
    """Record a single-use expiring state and return the provider's authorize URL."""
    state = secrets.token_urlsafe(32)
    verifier = generate_token(64) if pkce(connector) else None
    session = _session(connector, instance_config, redirect_uri=redirect_uri,
                       code_challenge_method="S256" if verifier else None)
    url, _ = session.create_authorization_url(connector.oauth2_endpoints().authorize_url,
                                              state=state, code_verifier=verifier)
    ttl = datetime.timedelta(seconds=current_app.config["OAUTH_STATE_TTL"])
    OAuthState.create(state_hash=_state_hash(state), client=client, redirect_uri=redirect_uri,
                      code_verifier=verifier, expires_at=utcnow() + ttl)
    return url


def take_state(state: str) -> OAuthState:
    """The state's consent, deleted as it is taken: of two callbacks with one state only one
    gets it, and a reload, the back button or a copied link finds nothing."""
    row = _take(_state_hash(state or ""))
    if row is None:
        raise StateError("unknown, used or expired state")
    return row


def hold_for_confirmation(client: ConnectorClient, granted: dict) -> str:
    """Keep the granted tokens until the app confirms with the returned one-time code."""
    code = secrets.token_urlsafe(32)
    ttl = datetime.timedelta(seconds=current_app.config["OAUTH_STATE_TTL"])
    OAuthState.create(state_hash=_state_hash(code), client=client, redirect_uri="",
                      expires_at=utcnow() + ttl, **granted)
    return code


def take_confirmation(client: ConnectorClient, code: str) -> dict | None:
    """The tokens held for ``client`` under ``code`` (deleted as they are taken), or None."""
    row = _take(_state_hash(code or ""), confirming=client)
    return row and {"tokens": row.tokens, "token_expires_at": row.token_expires_at}


def _take(state_hash: str, confirming: ConnectorClient | None = None) -> OAuthState | None:
    """Read and delete one live row: a provider's state, or a confirmation of ``confirming``;
    None when there is no such row or another request took it first."""
    kind = (OAuthState.tokens.is_null() if confirming is None else
            OAuthState.tokens.is_null(False) & (OAuthState.client == confirming.id))
    live = (OAuthState.state_hash == state_hash) & (OAuthState.expires_at > utcnow()) & kind
    row = OAuthState.get_or_none(live)
    if row is None or not OAuthState.delete().where(live).execute():
        return None
    return row


def prune_states() -> int:
    """Delete expired states (a used one is already gone)."""
    return delete_in_batches(OAuthState, OAuthState.expires_at <= utcnow())


def _token_record(token: dict) -> tuple[dict, datetime.datetime | None]:
    """What is kept of a token answer (as ``_sane_lifetime`` left it): its tokens (non-empty
    strings only) and when the access token expires."""
    kept = {k: v for k in ("access_token", "refresh_token", "token_type")
            if isinstance(v := token.get(k), str) and v}
    expires_in = token.get("expires_in")
    return kept, utcnow() + datetime.timedelta(seconds=expires_in) if expires_in else None


def _no_access_token() -> TransientError:
    # authlib takes any JSON answer without "error" for a token (a 401 {"message": ...}).
    return TransientError("token endpoint answered without an access token")


def _classify(exc: Exception):
    if isinstance(exc, OAuthError):
        if exc.error == "invalid_grant":
            return ReauthRequired("reauthorization required")
        # The app's own OAuth client (its secret rotated at the provider, the app removed):
        # not the end user's grant, which a new consent could not exchange either.
        if exc.error in ("invalid_client", "unauthorized_client"):
            return InstanceRefused(f"the token endpoint refused the OAuth client ({exc.error})")
        return TransientError(f"token endpoint error: {exc.error}")
    if isinstance(exc, requests.RequestException):
        # The kind of failure, as the connectors say it: the exception's text holds the
        # provider's URL and the platform's socket details, which the app reads.
        return TransientError(f"token endpoint unreachable: {exc.__class__.__name__}")
    return TransientError(f"token endpoint answered something that is not a token: "
                          f"{exc.__class__.__name__}")


def exchange_code(connector: Connector, instance_config: dict, oauth_state: OAuthState,
                  code: str) -> dict:
    """Trade the authorization code for tokens: the client's ``tokens`` and
    ``token_expires_at``, for the caller to store with the client's new status."""
    session = _session(connector, instance_config, redirect_uri=oauth_state.redirect_uri)
    try:
        token = session.fetch_token(connector.oauth2_endpoints().token_url, code=code,
                                    grant_type="authorization_code",
                                    code_verifier=oauth_state.code_verifier,
                                    timeout=connector.timeout)
    except (OAuthError, requests.RequestException, ValueError) as exc:
        raise _classify(exc) from exc
    tokens, expires_at = _token_record(token)
    if "access_token" not in tokens:
        raise _no_access_token()
    return {"tokens": tokens, "token_expires_at": expires_at}


def _lock(client_id: str) -> ConnectorClient:
    client = locking(ConnectorClient.select().where(ConnectorClient.id == client_id)).first()
    if client is None:  # deleted while its poll or action ran: nothing left to call for
        raise ConfigError("the connector client was deleted")
    return client


def access_token(client_id: str, connector: Connector, instance_config: dict,
                 force_refresh: bool = False, client: ConnectorClient | None = None) -> str:
    """A usable access token, refreshing it under a per-client lock.

    Refresh tokens rotate: the provider invalidates the old one as it answers, so the new pair is
    committed before anyone uses it, and a second worker waiting on the lock sees the new pair
    instead of refreshing with a dead token.
    """
    given = client  # a caller's row learns the grant it goes on with (a poll compares them)
    client = client or ConnectorClient.get_by_id(client_id)
    if not force_refresh and fresh(client):
        return client.tokens["access_token"]
    stale = (client.tokens or {}).get("access_token")
    with write_transaction():
        client = _lock(client_id)
        tokens = client.tokens or {}
        if given is not None:
            given.tokens, given.token_expires_at = client.tokens, client.token_expires_at
            given.granted_at = client.granted_at
        # Someone refreshed (or a new grant came) while we waited for the lock: use theirs.
        if tokens.get("access_token") != stale and fresh(client):
            return tokens["access_token"]
        if "refresh_token" not in tokens:
            raise ReauthRequired("reauthorization required")
        session = _session(connector, instance_config)
        try:
            token = session.refresh_token(connector.oauth2_endpoints().token_url,
                                          refresh_token=tokens["refresh_token"],
                                          timeout=connector.timeout)
        except (OAuthError, requests.RequestException, ValueError) as exc:
            metrics.token_refreshed(connector.type_id, error := _classify(exc))
            raise error from exc
        record, expires_at = _token_record(token)
        record.setdefault("refresh_token", tokens["refresh_token"])
        # Stored even without an access token: a refresh token in the answer may be the only
        # one left (the provider rotated the old one as it answered); the next call refreshes.
        ConnectorClient.update(tokens=record, token_expires_at=expires_at,
                               updated_at=utcnow()).where(
            ConnectorClient.id == client_id).execute()
        if given is not None:
            given.tokens, given.token_expires_at = record, expires_at
    if "access_token" not in record:
        metrics.token_refreshed(connector.type_id, error := _no_access_token())
        raise error
    metrics.token_refreshed(connector.type_id)
    return record["access_token"]


def fresh(client: ConnectorClient) -> bool:
    """Whether the client's access token is usable without a refresh."""
    tokens = client.tokens or {}
    if "access_token" not in tokens:
        return False
    return client.token_expires_at is None or client.token_expires_at - EXPIRY_MARGIN > utcnow()
