"""A count per key in a fixed one-minute window, kept in the database.

One upsert spends from the current window, so every process on every machine draws from the
same count without another service. Provider call budgets and the per-app rate limits both
count this way.
"""

from __future__ import annotations

import datetime
from functools import cache

from peewee import Case, Field, Model

from thingbridge.db import is_postgres, utcnow
from thingbridge.sql import Statement, param

WINDOW = datetime.timedelta(minutes=1)


def spend(model: type[Model], key_field: Field, key, limit: int) -> datetime.datetime | None:
    """Count one use of ``key`` in ``model`` (columns ``window_start`` and ``used``); None if
    within ``limit``, else when the next window opens."""
    now = utcnow()
    window = now.replace(second=0, microsecond=0)
    rows = _spend(model, key_field, is_postgres()).run(
        key=key, now=now, window=window, used=1, limit=limit).fetchall()
    return None if rows else window + WINDOW


@cache
def _spend(model: type[Model], key_field: Field, postgres: bool) -> Statement:
    # One statement, committed on its own (one round trip, no transaction around it): the
    # conflicting row is locked while it is counted, so concurrent spenders queue on it, and a
    # row another process creates first is counted into rather than raced. A row of an older
    # window starts this one; a full one (or one a clock ahead already moved on) is left as it
    # is and returns nothing. Built once (per model and dialect): it runs on every trigger.
    window, one = param("window"), param("used")
    return Statement.build(
        model.insert(**{key_field.name: param("key"), "created_at": param("now"),
                        "window_start": window, "used": one})
        .on_conflict(conflict_target=[key_field],
                     update={model.used: Case(None, [(model.window_start == window,
                                                      model.used + one)], one),
                             model.window_start: window},
                     where=(model.window_start < window)
                     | ((model.window_start == window) & (model.used < param("limit"))))
        .returning(model.used))
