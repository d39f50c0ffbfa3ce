"""HMAC-SHA256 request signatures for action deliveries (key per app)."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-Thingbridge-Signature"
MAX_SKEW_SECONDS = 300


def new_key() -> str:
    return secrets.token_urlsafe(32)


def http_date(now: float | None = None) -> str:
    return email.utils.formatdate(now if now is not None else time.time(), usegmt=True)


def signature(key: str, method: str, url: str, date: str, body: bytes) -> str:
    """``sha256=<hex>`` over method, URL, Date header and body, newline-separated."""
    message = b"\n".join([method.upper().encode(), url.encode(), date.encode(), body])
    return "sha256=" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def verify(key: str, method: str, url: str, date: str | None, body: bytes,
           provided: str | None, now: float | None = None) -> str | None:
    """Why the signature is not acceptable, or None if it is."""
    if not provided or not date:
        return f"missing {SIGNATURE_HEADER} or Date header"
    try:
        sent = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return "unparseable Date header"
    if abs((now if now is not None else time.time()) - sent) > MAX_SKEW_SECONDS:
        return "Date header too far from now (replay protection)"
    # As bytes: compare_digest refuses str with non-ASCII characters, which a header can hold.
    expected = signature(key, method, url, date, body).encode()
    if not hmac.compare_digest(expected, provided.encode("utf-8", "replace")):
        return "signature mismatch"
    return None
