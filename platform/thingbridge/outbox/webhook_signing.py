"""Webhook signatures in the Standard Webhooks format, so receivers can use its libraries.

Each delivery carries ``webhook-id`` (the event id), ``webhook-timestamp`` (unix seconds) and
``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body``,
one per secret still valid. During a rotation both the new and the old secret sign, so a
receiver can switch secrets at any time within the overlap.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import secrets
import time

PREFIX = "whsec_"
MAX_SKEW_SECONDS = 300


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()
                                    ).decode()


MAX_PREVIOUS = 4  # rotated-out secrets that still sign, at most


def live_secrets(stored: list[dict], now: datetime.datetime) -> list[str]:
    """Secrets that still sign: the current one and any rotated-out one within its overlap."""
    return [s["secret"] for s in stored
            if s.get("expires_at") is None
            or datetime.datetime.fromisoformat(s["expires_at"]) > now]


def rotate(stored: list[dict], now: datetime.datetime, overlap: datetime.timedelta
           ) -> tuple[str, list[dict]]:
    """A new current secret; the previous one keeps signing until ``now + overlap``, and so do
    the ones before it still within theirs, the newest ``MAX_PREVIOUS``: every delivery carries
    one signature per live secret, and an app rotating in a loop made headers of kilobytes
    that receivers refuse."""
    fresh = new_secret()
    live = live_secrets(stored, now)
    kept = [{"secret": s["secret"],
             "expires_at": s.get("expires_at") or (now + overlap).isoformat()}
            for s in stored if s["secret"] in live]
    return fresh, [{"secret": fresh, "expires_at": None}, *kept[:MAX_PREVIOUS]]


def headers(stored: list[dict], msg_id: str, body: bytes, now: datetime.datetime,
            timestamp: int | None = None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(s, msg_id, timestamp, body)
                                          for s in live_secrets(stored, now)),
            "Content-Type": "application/json"}


def verify(secret: str, msg_id: str, timestamp: str, signature_header: str, body: bytes,
           now: float | None = None) -> bool:
    """What a receiver does: the timestamp is recent and one signature matches ``secret``."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > MAX_SKEW_SECONDS:
        return False
    expected = sign(secret, msg_id, sent, body)
    return any(hmac.compare_digest(expected, candidate)
               for candidate in (signature_header or "").split())
