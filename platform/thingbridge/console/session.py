"""Signing in with the app's client id and secret, and out again. A sign-in is a row on the
server (``ConsoleSession``) that the cookie names, so it ends for every copy of the cookie:
at sign-out, at its lifetime's end, and when the app's secret changes or the app is
disabled (``credentials``)."""

from __future__ import annotations

import datetime
import secrets

from flask import current_app, flash, redirect, render_template, request, session, url_for
from peewee import Value

from thingbridge.auth import credentials
from thingbridge.console import bp
from thingbridge.db import locking, utcnow
from thingbridge.errors import ApiError
from thingbridge.models import APP_PLAIN, App, ConsoleSession, token_hash
from thingbridge.schemas.common import unstorable

CLIENT_ID_LENGTH = App.client_id.max_length


def _token() -> str | None:
    """The sign-in token the cookie names, if it can be one (it is ASCII)."""
    token = session.get("token")
    return token if isinstance(token, str) and token.isascii() else None


def signed_in_app() -> App | None:
    """The app whose sign-in the cookie names, if that sign-in has not ended."""
    token = _token()
    if token is None:
        return None
    return App.select(*APP_PLAIN).join(ConsoleSession).where(
        (ConsoleSession.token_hash == token_hash(token))
        & (ConsoleSession.expires_at > utcnow()) & App.disabled_at.is_null()).first()


def _start(app: App) -> bool:
    """Sign in as ``app``, whose secret was just checked, in place of this browser's earlier
    sign-in; False if the secret changed or the app was disabled since the check. The app row
    is read FOR SHARE: a rotation or disabling under way finishes first (and the sign-in
    fails), or waits for this one and then ends it."""
    _end()
    token = secrets.token_urlsafe(32)
    lifetime = datetime.timedelta(seconds=current_app.config["CONSOLE_SESSION_LIFETIME"])
    now = utcnow()
    still = locking(App.select(Value(token_hash(token)), App.id, Value(now),
                               Value(now + lifetime)).where(
        (App.id == app.id) & (App.client_secret_hash == app.client_secret_hash)
        & App.disabled_at.is_null()), share=True)
    fields = [ConsoleSession.token_hash, ConsoleSession.app, ConsoleSession.created_at,
              ConsoleSession.expires_at]
    if not ConsoleSession.insert_from(still, fields).as_rowcount().execute():
        return False
    session.permanent = True
    session["token"] = token
    return True


def _end() -> None:
    if (token := _token()) is not None:
        ConsoleSession.delete().where(ConsoleSession.token_hash == token_hash(token)).execute()
    session.clear()


def _safe_next(target: str | None) -> str:
    """Only a console page of this site: never an open redirect, and no character a Location
    header cannot carry (werkzeug refuses control characters there)."""
    if target and target.startswith("/console/") and target.isprintable():
        return target
    return url_for("console.overview")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method != "POST":  # GET, and HEAD (Flask routes it here and CSRF exempts it)
        return render_template("console/login.html", next=request.args.get("next", ""))
    client_id = request.form.get("client_id", "").strip()
    secret = request.form.get("client_secret", "")
    if unstorable(client_id) or len(client_id) > CLIENT_ID_LENGTH:
        client_id = ""  # no app has it: not shown back, checked as an unknown id is
    try:
        app = credentials.signing_in(client_id)  # the counts the token endpoint spends
        right = app.check_client_secret(secret)
    except ApiError as refused:
        flash(f"{refused.description[:1].upper()}{refused.description[1:]}. Try again later.",
              "error")
        return render_template("console/login.html", next=request.form.get("next", ""),
                               client_id=client_id), 429, refused.data["headers"]
    if right and _start(app):
        return redirect(_safe_next(request.form.get("next")))
    flash("Unknown client id or wrong secret.", "error")
    return render_template("console/login.html", next=request.form.get("next", ""),
                           client_id=client_id), 401


@bp.route("/logout", methods=["POST"])
def logout():
    _end()
    flash("Signed out.", "info")
    return redirect(url_for("console.login"))
