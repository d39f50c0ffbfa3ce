"""The developer console at /console: one app's connections, events, webhooks and actions,
server-rendered (Flask, Jinja, one stylesheet and one small script, no CDN) over the same
service functions as the API. Signed in with the app's client id and secret: a session
cookie, a CSRF token on every form, and only the app's own data (another app's is 404)."""

from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from peewee import DataError
from werkzeug.exceptions import BadRequest, HTTPException

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")
csrf = CSRFProtect()
OPEN = ("console.login", "console.static")
# The pages use only their own stylesheet, script and inline SVG; nothing may frame them.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
}


def _session_key(fernet_key: str) -> bytes:
    """The cookie signing key, derived from a secret key so no other secret is configured."""
    return hmac.new(fernet_key.strip().encode(), b"thingbridge console session",
                    hashlib.sha256).digest()


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, whose signer is built only for a request that carries
    the cookie: every API call would otherwise build one (a tenth of a small request's CPU)."""

    def open_session(self, app, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def init_app(app) -> None:
    keys = [k for k in app.config["SECRET_KEYS"].split(",") if k.strip()]
    app.secret_key = _session_key(keys[0])
    app.session_interface = _SessionInterface()
    app.config.update(
        SECRET_KEY_FALLBACKS=[_session_key(k) for k in keys[1:]],  # sessions survive rotation
        WTF_CSRF_CHECK_DEFAULT=False,  # the API is token-authenticated: only the console checks
        WTF_CSRF_TIME_LIMIT=None,      # a token lives as long as the session
        SESSION_COOKIE_NAME="thingbridge_console", SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=(app.config.get("PUBLIC_BASE_URL") or "").startswith("https:"),
        PERMANENT_SESSION_LIFETIME=app.config["CONSOLE_SESSION_LIFETIME"],
    )
    csrf.init_app(app)
    app.register_blueprint(bp)
    # A console URL no route matches is the console's page too, not the API's JSON.
    app.extensions["flask-smorest"]["apis"][""]["ext_obj"].page_errors["/console"] = _error


@bp.before_request
def _guard():
    if request.method == "POST":
        csrf.protect()
    if request.endpoint in OPEN:
        return None
    g.app = signed_in_app()
    if g.app is None:
        return redirect(url_for("console.login", next=request.full_path))
    return None


@bp.after_request
def _headers(response):
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.errorhandler(HTTPException)
def _error(error: HTTPException):
    message = error.description
    if isinstance(error, CSRFError):
        message = f"{message} Reload the page and try again."
    headers = {**SECURITY_HEADERS, **((getattr(error, "data", None) or {}).get("headers") or {})}
    if getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    return (render_template("console/error.html", code=error.code, message=message),
            error.code, headers)


@bp.errorhandler(DataError)
def _unstorable(error: DataError):
    """A filter the database cannot compare (a NUL in a subject): the console's page, as
    the API answers its own 400."""
    return _error(BadRequest("A value in the request cannot be used (a NUL character, or too "
                             "long or large)."))


# The pages register themselves on ``bp``; imported last because they import ``bp``.
from thingbridge.console import (  # noqa: E402
    activity,  # noqa: F401
    clients,  # noqa: F401
    formatting,  # noqa: F401
    overview,  # noqa: F401
    webhooks,  # noqa: F401
)
from thingbridge.console.session import signed_in_app  # noqa: E402
