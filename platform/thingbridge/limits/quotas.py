"""Per-app limits on what one app may ask of the shared platform (README "Running it safely").

Rates (token requests per client id, action triggers per app) count in a fixed one-minute
window in the database, so every API process draws from the same count without another
service; sizes (webhooks per app, replays in flight, things per subject) are counted where
they are created. Every refusal is a 429 in the standard error body with Retry-After.
Defaults are far above what a real app does; THINGBRIDGE_* settings change them (0: no limit).
"""

from __future__ import annotations

import datetime
import math

from flask import current_app

from thingbridge.db import utcnow
from thingbridge.errors import ApiError
from thingbridge.limits import window
from thingbridge.models.limits import RateWindow

COUNT_RETRY_AFTER = 60  # seconds: a size limit frees up only when the app removes something


def too_many(description: str, retry_after: float) -> ApiError:
    error = ApiError(429, description)
    error.data = {"headers": {"Retry-After": str(max(1, math.ceil(retry_after)))}}
    return error


def check_rate(setting: str, key: str, what: str) -> None:
    """429 once ``key`` has spent this minute's ``setting`` (per minute)."""
    limit = current_app.config[setting]
    if limit and (opens := window.spend(RateWindow, RateWindow.key, key[:300], limit)) is not None:
        raise too_many(f"too many {what}: at most {limit} per minute "
                       f"(THINGBRIDGE_{setting})", (opens - utcnow()).total_seconds())


def check_size(setting: str, count: int, what: str) -> None:
    """429 when ``count`` existing ``what`` already reach the ``setting`` limit."""
    limit = current_app.config[setting]
    if limit and count >= limit:
        raise too_many(f"too many {what}: at most {limit} (THINGBRIDGE_{setting})",
                       COUNT_RETRY_AFTER)


def prune(now: datetime.datetime | None = None) -> int:
    """Forget windows that ended: a client id seen once does not stay forever."""
    return RateWindow.delete().where(
        RateWindow.window_start < (now or utcnow()) - window.WINDOW).execute()
