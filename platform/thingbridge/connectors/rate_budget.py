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
    window = utcnow().replace(second=0, microsecond=0)
    # Two rounds: if another worker creates the row between our look and our insert, the
    # second round spends from the row it created.
    for _ in range(2):
        with db.atomic():
            spent = (RateBudget.update(used=RateBudget.used + 1)
                     .where((RateBudget.instance == instance_id)
                            & (RateBudget.window_start == window)
                            & (RateBudget.used < limit)).execute())
            if spent:
                return None
            started = (RateBudget.update(window_start=window, used=1)
                       .where((RateBudget.instance == instance_id)
                              & (RateBudget.window_start < window)).execute())
            if started:
                return None
            if RateBudget.select().where(RateBudget.instance == instance_id).exists():
                return window + WINDOW  # this window's budget is spent
        try:
            with db.atomic():
                RateBudget.create(instance=instance_id, window_start=window, used=1)
            return None
        except IntegrityError:
            continue
    return window + WINDOW
