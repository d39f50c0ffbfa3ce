"""Signing in with the app's client id and secret, and out again."""

from __future__ import annotations

import hashlib

from flask import flash, redirect, render_template, request, session, url_for

from thingbridge.auth import credentials
from thingbridge.console import bp
from thingbridge.errors import ApiError
from thingbridge.models import APP_PLAIN, App
from thingbridge.schemas.common import unstorable

CLIENT_ID_LENGTH = App.client_id.max_length


def _fingerprint(app: App) -> str:
    """Changes when the app's secret does: rotating a secret signs its sessions out."""
    return hashlib.sha256(app.client_secret_hash.encode()).hexdigest()[:32]


def signed_in_app() -> App | None:
    app_id = session.get("app_id")
    app = App.select(*APP_PLAIN).where(App.id == app_id).first() if app_id else None
    if app is None or app.disabled_at is not None \
            or session.get("fingerprint") != _fingerprint(app):
        return None  # signed out by a new secret, or the app was disabled
    return app


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
        flash(f"{refused.description}. Try again later.", "error")
        return render_template("console/login.html", next=request.form.get("next", ""),
                               client_id=client_id), 429, refused.data["headers"]
    if app.check_client_secret(secret):
        session.clear()
        session.permanent = True
        session.update(app_id=app.id, fingerprint=_fingerprint(app))
        return redirect(_safe_next(request.form.get("next")))
    flash("Unknown client id or wrong secret.", "error")
    return render_template("console/login.html", next=request.form.get("next", ""),
                           client_id=client_id), 401


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("console.login"))
