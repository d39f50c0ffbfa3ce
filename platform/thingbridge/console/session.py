"""Signing in with the app's client id and secret, and out again. A sign-in is a row on the
server (``ConsoleSession``) that the cookie names, so it ends for every copy of the cookie:
at sign-out, at its lifetime's end, and when the app's secret changes or the app is
disabled (``credentials``)."""

from __future__ import annotations

import datetime
import secrets

from flask import current_app, flash, redirect, render_template, request, session, url_for

from thingbridge.auth import credentials
from thingbridge.console import bp
from thingbridge.db import utcnow
from thingbridge.errors import ApiError
from thingbridge.models import APP_PLAIN, App, ConsoleSession, token_hash
from thingbridge.schemas.common import unstorable

CLIENT_ID_LENGTH = App.client_id.max_length


def signed_in_app() -> App | None:
    """The app whose sign-in the cookie names, if that sign-in has not ended."""
    token = session.get("token")
    if not isinstance(token, str):
        return None
    return App.select(*APP_PLAIN).join(ConsoleSession).where(
        (ConsoleSession.token_hash == token_hash(token))
        & (ConsoleSession.expires_at > utcnow()) & App.disabled_at.is_null()).first()


def _start(app: App) -> None:
    token = secrets.token_urlsafe(32)
    lifetime = datetime.timedelta(seconds=current_app.config["CONSOLE_SESSION_LIFETIME"])
    now = utcnow()
    ConsoleSession.create(token_hash=token_hash(token), app=app.id, created_at=now,
                          expires_at=now + lifetime)
    session.clear()
    session.permanent = True
    session["token"] = token


def _end() -> None:
    token = session.get("token")
    if isinstance(token, str):
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
        app = credentials.signing_in(client_id)  # the count the token endpoint spends
    except ApiError as refused:
        flash(f"{refused.description[:1].upper()}{refused.description[1:]}. Try again later.",
              "error")
        return render_template("console/login.html", next=request.form.get("next", ""),
                               client_id=client_id), 429, refused.data["headers"]
    if app.check_client_secret(secret):
        _start(app)
        return redirect(_safe_next(request.form.get("next")))
    flash("Unknown client id or wrong secret.", "error")
    return render_template("console/login.html", next=request.form.get("next", ""),
                           client_id=client_id), 401


@bp.route("/logout", methods=["POST"])
def logout():
    _end()
    flash("Signed out.", "info")
    return redirect(url_for("console.login"))
