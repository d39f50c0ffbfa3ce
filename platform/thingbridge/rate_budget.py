"""Per-instance provider call budgets (e.g. an OpenWeatherMap key's calls per minute).

A fixed one-minute window per instance, counted in the database with a conditional UPDATE, so
every worker on every machine draws from the same budget without another service.
"""

from __future__ import annotations

import datetime

from peewee import IntegrityError

from thingbridge.db import db, utcnow
from thingbridge.models import RateBudget

WINDOW = datetime.timedelta(minutes=1)


def take(instance_id: str, limit: int | None) -> datetime.datetime | None:
    """Spend one call. None if allowed, else when the next window opens."""
    if not limit:
        return None
    now = utcnow()
    window = now.replace(second=0, microsecond=0)
    with db.atomic():
        # Same window: spend if any is left.
        spent = (RateBudget.update(used=RateBudget.used + 1)
                 .where((RateBudget.instance == instance_id) & (RateBudget.window_start == window)
                        & (RateBudget.used < limit)).execute())
        if spent:
            return None
        # A new window (or the first ever): start it with this call.
        started = (RateBudget.update(window_start=window, used=1)
                   .where((RateBudget.instance == instance_id)
                          & (RateBudget.window_start < window)).execute())
        if started:
            return None
        if not RateBudget.select().where(RateBudget.instance == instance_id).exists():
            try:
                with db.atomic():
                    RateBudget.create(instance=instance_id, window_start=window, used=1)
                return None
            except IntegrityError:
                pass  # another worker created it this instant; its count is authoritative
    return window + WINDOW
