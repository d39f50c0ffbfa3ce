"""A count per key in a fixed one-minute window, kept in the database.

A conditional UPDATE spends from the current window, so every process on every machine draws
from the same count without another service. Provider call budgets and the per-app rate limits
both count this way.
"""

from __future__ import annotations

import datetime

from peewee import Field, IntegrityError, Model

from thingbridge.db import db, utcnow

WINDOW = datetime.timedelta(minutes=1)


def spend(model: type[Model], key_field: Field, key, limit: int) -> datetime.datetime | None:
    """Count one use of ``key`` in ``model`` (columns ``window_start`` and ``used``); None if
    within ``limit``, else when the next window opens."""
    window = utcnow().replace(second=0, microsecond=0)
    mine = key_field == key
    # Two rounds: a row another process creates between our look and our insert is spent
    # from in the second round.
    for _ in range(2):
        with db.atomic():
            if model.update(used=model.used + 1).where(
                    mine & (model.window_start == window) & (model.used < limit)).execute():
                return None
            if model.update(window_start=window, used=1).where(
                    mine & (model.window_start < window)).execute():
                return None
            if model.select().where(mine).exists():
                return window + WINDOW  # this window's count is spent
        try:
            with db.atomic():
                model.create(**{key_field.name: key, "window_start": window, "used": 1})
            return None
        except IntegrityError:
            continue
    return window + WINDOW
