"""Outbound URL policy: https everywhere, plain http only to this machine (development)."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def outbound_url_problem(url: str) -> str | None:
    """Why ``url`` may not receive callbacks or redirects, or None if it may."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return "must use https (plain http is allowed only for localhost)"
    if parts.username or parts.password:
        return "must not contain credentials"
    return None
