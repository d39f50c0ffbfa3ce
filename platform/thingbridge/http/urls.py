"""Outbound URL policy: https everywhere, plain http only to this machine in development
(``ALLOW_HTTP_LOOPBACK``: on by default in the embedded SQLite mode, off otherwise)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, has_app_context

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def outbound_url_problem(url: str) -> str | None:
    """Why ``url`` may not receive callbacks or redirects, or None if it may."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.scheme == "http":
        if parts.hostname not in LOOPBACK_HOSTS:
            return "must use https (plain http is allowed only for localhost)"
        if has_app_context() and not current_app.config.get("ALLOW_HTTP_LOOPBACK", True):
            return "must use https (http to localhost is allowed only in development)"
    if parts.username or parts.password:
        return "must not contain credentials"
    return None
