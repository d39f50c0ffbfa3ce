"""An app's credentials over their life: a new secret, every token revoked at once, disabled
and enabled again, and the tokens nobody can use any more pruned."""

from __future__ import annotations

import datetime
import functools
import secrets

from thingbridge.auth import secret_hash, token_cache
from thingbridge.db import db, delete_in_batches, utcnow
from thingbridge.limits import quotas
from thingbridge.models import AccessToken, App, ConnectorClient, ConsoleSession
from thingbridge.models.apps import NoApp
from thingbridge.schemas.common import unstorable


def signing_in(client_id: str) -> App | NoApp:
    """The active app whose secret is checked next (a stand-in for an id no app has), set to
    count the check's outcome. Every check of a secret goes through here, wherever it is tried
    (a token, a revocation: authlib's client lookup, on the id authlib itself read; the
    console's sign-in), the id known or not.

    A right secret spends the app's own count, a wrong one the id's count of wrong secrets
    (each 429 past ``TOKEN_REQUESTS_PER_MINUTE``): whoever knows a client id and sends wrong
    secrets under it spends only the second, and the app goes on signing in. A secret is 256
    random bits, so no rate makes guessing one worth trying; a check against a hash of the
    slow form of before (100 ms of CPU) spends the wrong secrets' count before it runs, so such
    checks stay bounded (the app's own sign-ins too, while wrong secrets keep coming: a new
    secret, stored in the fast form, ends that)."""
    if unstorable(client_id):
        return NoApp()  # no app has it, and no count can be kept under it
    app = App.signing_in(client_id)
    spent = isinstance(app, App) and secret_hash.outdated(app.client_secret_hash)
    if spent:
        _checks(client_id, right=False).check()
    app.counted = functools.partial(_counted, client_id, spent)
    return app


def _checks(client_id: str, right: bool) -> quotas.Rate:
    if right:
        return quotas.Rate("TOKEN_REQUESTS_PER_MINUTE", f"token:{client_id}",
                           "sign-ins for this client id (token, revoke, console)")
    return quotas.Rate("TOKEN_REQUESTS_PER_MINUTE", f"token-refused:{client_id}",
                       "wrong secrets for this client id")


def _counted(client_id: str, spent: bool, right: bool) -> None:
    """After a check: a right secret spends the app's count; a wrong one the wrong secrets'
    count, unless it was spent before the check (a wrong secret costs one, whatever the id)."""
    if right or not spent:
        _checks(client_id, right).check()


def find(client_id: str) -> App | None:
    return App.get_or_none(App.client_id == client_id)


def revoke_all(app: App) -> int:
    """Revoke every token of the app; how many were still unrevoked. Other processes stop
    accepting them within TOKEN_CACHE_SECONDS (see ``token_cache``), this one at once."""
    revoked = AccessToken.update(revoked=True).where(
        (AccessToken.app == app) & (AccessToken.revoked == False)).execute()  # noqa: E712
    token_cache.forget_app(app.id)
    return revoked


def end_console_sessions(app: App) -> None:
    ConsoleSession.delete().where(ConsoleSession.app == app.id).execute()


def rotate_secret(app: App, revoke_tokens: bool = False) -> str:
    """A new client secret (returned once, stored hashed); the old one stops working now, and
    every console sign-in with it ends. Tokens issued before stay valid until they expire
    unless ``revoke_tokens``."""
    secret = secrets.token_urlsafe(32)
    with db.atomic():
        App.update(client_secret_hash=secret_hash.make(secret)).where(
            App.id == app.id).execute()
        end_console_sessions(app)
        if revoke_tokens:
            revoke_all(app)
    token_cache.forget_app(app.id)
    return secret


def disable(app: App) -> int:
    """Stop the app at once: every token revoked and console sign-in ended, no new ones, its
    clients not polled; returns tokens revoked. The clients are taken off the schedule (due
    never), so the dispatcher's look for due clients does not walk past them for as long as
    the app stays disabled; it also skips a disabled app's, for a poll under way that
    schedules its next."""
    with db.atomic():
        App.update(disabled_at=utcnow()).where(App.id == app.id).execute()
        revoked = revoke_all(app)
        end_console_sessions(app)
        ConnectorClient.update(next_poll_at=None).where(ConnectorClient.app == app.id).execute()
    token_cache.forget_app(app.id)
    return revoked


def enable(app: App) -> None:
    """Let the app in again; its clients that were polled are due now (one waiting for its
    end user's consent is let go by that poll, as before)."""
    with db.atomic():
        App.update(disabled_at=None).where(App.id == app.id).execute()
        ConnectorClient.update(next_poll_at=utcnow()).where(
            (ConnectorClient.app == app.id) & ConnectorClient.next_poll_at.is_null()
            & (ConnectorClient.status != "ERROR")).execute()


def prune_tokens(now: datetime.datetime | None = None) -> int:
    """Delete revoked tokens and expired ones, and console sign-ins that have ended: none
    can authenticate anything again. Token lifetimes are few (one per setting of
    THINGBRIDGE_TOKEN_EXPIRES_IN), so each is one portable DELETE by creation time."""
    now = now or utcnow()
    pruned = delete_in_batches(AccessToken, AccessToken.revoked == True)  # noqa: E712
    lifetimes = [row.expires_in for row in AccessToken.select(AccessToken.expires_in).distinct()]
    for seconds in lifetimes:
        pruned += delete_in_batches(AccessToken, (AccessToken.expires_in == seconds) & (
            AccessToken.created_at <= now - datetime.timedelta(seconds=seconds)))
    return pruned + delete_in_batches(ConsoleSession, ConsoleSession.expires_at <= now)
