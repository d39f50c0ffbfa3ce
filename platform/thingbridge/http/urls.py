"""Checking a URL an app registers for callbacks or webhooks (the sender checks again).

https everywhere; plain http only to addresses the operator opened with ``OUTBOUND_ALLOW``
(the embedded mode opens loopback, so http://localhost works in development). An IP literal
or a name that resolves only to refused addresses (``addresses``) is refused here with a
clear message; a name that does not resolve yet is accepted, since every send resolves and
checks it again.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import idna
from flask import current_app, has_app_context

from thingbridge.http import addresses


def allow_list() -> tuple:
    setting = current_app.config.get("OUTBOUND_ALLOW") if has_app_context() else None
    return addresses.parse_allow(setting)


# Labels of at most 63 characters, no hyphen at either end (underscores as resolvers take them).
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def _split(url: str):
    """``(parts, host, problem)``: the URL's parts and its host as a resolver sees it
    (lower case, IDNA, no trailing dot: ``localhost.`` and ``127.0.0.1\u3002`` are checked as
    what they reach), or why it is no well-formed absolute http(s) URL."""
    if not url.isprintable() or " " in url:
        # urlsplit drops tabs and line breaks; the stored URL would keep them.
        return None, None, "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, None, "not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None, None, "must be an absolute http(s) URL"
    if port == 0:
        return None, None, "not a valid URL: port 0"
    if "@" in parts.netloc:  # even an empty user name: the sender would not send it as given
        return None, None, "must not contain credentials"
    host = parts.hostname
    if "[" in parts.netloc:  # a bracketed literal is an IPv6 address or nothing
        address = addresses.literal(host)
        if address is None or address.version != 6:
            return None, None, f"not a valid IPv6 address: {host}"
        return parts, host, None
    try:
        if not host.isascii() or "xn--" in host:
            host = idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:  # idna's errors are UnicodeErrors
        return None, None, f"not a valid host name: {parts.hostname}"
    host = host.rstrip(".")
    # A name whose last label is a number is an IPv4 address in one of its spellings.
    last = host.rsplit(".", 1)[-1]
    numeric = last.isdigit() or last.startswith("0x")
    if len(host) > 253 or not _HOST.fullmatch(host) or (
            numeric and addresses.literal(host) is None):
        return None, None, f"not a valid host name: {parts.hostname}"
    return parts, host, None


# Seconds an API request waits for a URL's name before taking it as "does not resolve yet".
REGISTRATION_LOOKUP = 2.0


def outbound_url_problem(url: str, owner: str = "") -> str | None:
    """Why ``url`` may not receive callbacks or webhooks, or None if it may (``owner``: the
    app registering it, whose name lookups these are)."""
    parts, host, problem = _split(url)
    if problem:
        return problem
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allow = allow_list()
    try:
        found = addresses.resolve(host, port, REGISTRATION_LOOKUP, owner)
    except (OSError, UnicodeError, ValueError):  # a timeout too: sends check again
        found = []
    usable = [address for address in found if addresses.is_allowed(address, allow)]
    if found and not usable:
        return (f"must reach a public address: {parts.hostname} is (or resolves to) a "
                "loopback, private, link-local or otherwise reserved address; an operator "
                "may open a range with THINGBRIDGE_OUTBOUND_ALLOW")
    if parts.scheme == "http" and not (usable and all(
            plain_http_allowed(address, allow) for address in usable)):
        return ("must use https (plain http is allowed only to addresses the operator opened "
                "with THINGBRIDGE_OUTBOUND_ALLOW, e.g. localhost in development)")
    return None


LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def redirect_url_problem(url: str) -> str | None:
    """Why ``url`` may not be where an end user's browser is sent back to, or None. The
    browser goes there, not Thingbridge, so no address policy: https, or http to localhost
    where the operator opened loopback (development)."""
    parts, host, problem = _split(url)
    if problem:
        return problem
    if parts.scheme == "http":
        if host not in LOOPBACK_HOSTS:
            return "must use https (plain http is allowed only for localhost)"
        loopback = addresses.ip_address("127.0.0.1")
        if has_app_context() and not any(loopback in net for net in allow_list()
                                         if net.version == 4):
            return "must use https (http to localhost is allowed only in development)"
    return None


def plain_http_allowed(address, allow) -> bool:
    """At send time: http only to an operator-opened address."""
    return any(address in net for net in allow if net.version == address.version)

