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
from peewee import IntegrityError

from thingbridge.db import db, utcnow
from thingbridge.errors import ApiError
from thingbridge.models.limits import RateWindow

WINDOW = datetime.timedelta(minutes=1)
COUNT_RETRY_AFTER = 60  # seconds: a size limit frees up only when the app removes something


def too_many(description: str, retry_after: float) -> ApiError:
    error = ApiError(429, description)
    error.data = {"headers": {"Retry-After": str(max(1, math.ceil(retry_after)))}}
    return error


def _spend(key: str, limit: int) -> datetime.datetime | None:
    """Count one request; None if within ``limit``, else when the next window opens."""
    window = utcnow().replace(second=0, microsecond=0)
    # Two rounds: a row another process creates between our look and our insert is spent
    # from in the second round.
    for _ in range(2):
        with db.atomic():
            if RateWindow.update(used=RateWindow.used + 1).where(
                    (RateWindow.key == key) & (RateWindow.window_start == window)
                    & (RateWindow.used < limit)).execute():
                return None
            if RateWindow.update(window_start=window, used=1).where(
                    (RateWindow.key == key) & (RateWindow.window_start < window)).execute():
                return None
            if RateWindow.select().where(RateWindow.key == key).exists():
                return window + WINDOW
        try:
            with db.atomic():
                RateWindow.create(key=key, window_start=window, used=1)
            return None
        except IntegrityError:
            continue
    return window + WINDOW


def check_rate(setting: str, key: str, what: str) -> None:
    """429 once ``key`` has spent this minute's ``setting`` (per minute)."""
    limit = current_app.config[setting]
    if limit and (opens := _spend(key[:300], limit)) is not None:
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
        RateWindow.window_start < (now or utcnow()) - WINDOW).execute()
