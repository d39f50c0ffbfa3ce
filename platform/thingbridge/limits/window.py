"""A count per key in a fixed one-minute window, kept in the database.

One upsert spends from the current window, so every process on every machine draws from the
same count without another service. Provider call budgets and the per-app rate limits both
count this way.
"""

from __future__ import annotations

import datetime

from peewee import Case, Field, Model

from thingbridge.db import utcnow

WINDOW = datetime.timedelta(minutes=1)


def spend(model: type[Model], key_field: Field, key, limit: int) -> datetime.datetime | None:
    """Count one use of ``key`` in ``model`` (columns ``window_start`` and ``used``); None if
    within ``limit``, else when the next window opens."""
    window = utcnow().replace(second=0, microsecond=0)
    # One statement, committed on its own (one round trip, no transaction around it): the
    # conflicting row is locked while it is counted, so concurrent spenders queue on it, and a
    # row another process creates first is counted into rather than raced. A row of an older
    # window starts this one; a full one (or one a clock ahead already moved on) is left as it
    # is and returns nothing.
    query = (model.insert(**{key_field.name: key, "window_start": window, "used": 1})
             .on_conflict(conflict_target=[key_field],
                          update={model.used: Case(None, [(model.window_start == window,
                                                           model.used + 1)], 1),
                                  model.window_start: window},
                          where=(model.window_start < window)
                          | ((model.window_start == window) & (model.used < limit)))
             .returning(model.used).tuples())
    return None if list(query.execute()) else window + WINDOW
