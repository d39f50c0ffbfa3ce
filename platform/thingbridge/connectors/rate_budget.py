"""Per-instance provider call budgets (e.g. an OpenWeatherMap key's calls per minute).

A fixed one-minute window per instance (``limits/window.py``), so every worker on every machine
draws from the same budget without another service.
"""

from __future__ import annotations

import datetime

from thingbridge.limits import window
from thingbridge.models import RateBudget


def take(instance_id: str, limit: int | None) -> datetime.datetime | None:
    """Spend one call. None if allowed, else when the next window opens."""
    if not limit:
        return None
    return window.spend(RateBudget, RateBudget.instance, instance_id, limit)
