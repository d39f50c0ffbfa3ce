"""How client secrets are stored and checked.

A client secret is 256 random bits (``secrets.token_urlsafe(32)``): nobody guesses one, so a
slow password hash buys nothing against guessing, while it made every sign-in attempt, right
or wrong, cost about 100 ms of CPU and 32 MiB (werkzeug's scrypt): whoever knew a client id, or
made ids up, could keep the API's cores busy. A secret is stored as its SHA-256 and compared in
constant time, so a known id and an unknown one cost the same microseconds. A hash stored
before (scrypt) is still checked, and replaced at the app's next successful sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from werkzeug.security import check_password_hash

PREFIX = "sha256$"


def make(secret: str) -> str:
    return PREFIX + hashlib.sha256(secret.encode()).hexdigest()


def matches(stored: str, secret: str) -> bool:
    if stored.startswith(PREFIX):
        return hmac.compare_digest(stored, make(secret))
    return check_password_hash(stored, secret)


def outdated(stored: str) -> bool:
    """A hash in the slow form of before: replace it once the secret is known to match."""
    return not stored.startswith(PREFIX)


# What an id that names no app is checked against: the same work as an app's check.
NO_SECRET = make(secrets.token_urlsafe(32))
