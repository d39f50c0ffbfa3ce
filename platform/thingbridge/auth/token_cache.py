"""Bearer tokens remembered per process for a few seconds, so a request does not read its
token and app from the database every time.

The bound: a token revoked, or an app disabled, in another process (the CLI, another gunicorn
worker) stops working here at most ``TOKEN_CACHE_SECONDS`` after it was committed, since an
entry is trusted only that long after it was read. The process that revokes or disables forgets
the app's entries at once. Expiry needs no lookup: it is computed from the cached row. Unknown
tokens are not remembered, so a token issued a moment ago works on its first request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from flask import current_app

from thingbridge.models import APP_PLAIN, AccessToken, App, token_hash

# Entries kept at most, least recently used dropped first: bounds the memory a flood of
# distinct valid tokens can take.
MAX_ENTRIES = 10_000

_entries: OrderedDict[str, tuple[float, AccessToken]] = OrderedDict()
_lock = threading.Lock()


def lookup(token_string: str) -> AccessToken | None:
    """The unrevoked token of an enabled app, read at most ``TOKEN_CACHE_SECONDS`` ago."""
    key = token_hash(token_string)
    ttl = current_app.config["TOKEN_CACHE_SECONDS"]
    now = time.monotonic()
    with _lock:
        entry = _entries.get(key)
        if entry and now - entry[0] < ttl:
            _entries.move_to_end(key)
            return entry[1]
    token = _read(key)
    if token is not None and ttl > 0:
        with _lock:
            _entries[key] = (now, token)
            _entries.move_to_end(key)
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
    return token


def forget(token: AccessToken) -> None:
    """Drop one token (it was revoked here)."""
    with _lock:
        _entries.pop(token.token_hash, None)


def forget_app(app_id: str) -> None:
    """Drop every cached token of the app (it was revoked, disabled or rotated here)."""
    with _lock:
        for key in [k for k, (_, token) in _entries.items() if token.app_id == app_id]:
            del _entries[key]


def _read(key: str) -> AccessToken | None:
    # A disabled app's tokens are revoked too; this also covers one issued meanwhile.
    return (AccessToken.select(AccessToken, *APP_PLAIN).join(App)
            .where((AccessToken.token_hash == key) & App.disabled_at.is_null()).first())
