"""A count per key in a fixed one-minute window, kept in the database.

One upsert spends from the current window, so every process on every machine draws from the
same count without another service. Provider call budgets and the per-app rate limits both
count this way.
"""

from __future__ import annotations

import datetime
from functools import cache
from typing import NamedTuple

from peewee import Case, Field, Model

from thingbridge import db_writes
from thingbridge.db import db, is_postgres, utcnow
from thingbridge.sql import Statement, param

WINDOW = datetime.timedelta(minutes=1)


class Spend(NamedTuple):
    """One use of a key, not yet spent: its statement returns a row if within ``limit``."""
    sql: str
    params: list
    limit: int
    opens: datetime.datetime  # when the next window opens: a refused spend's Retry-After

    def run(self) -> bool:
        """Spend as a statement of its own; True if within the limit."""
        return bool(db.execute_sql(self.sql, self.params).fetchall())


def spending(model: type[Model], key_field: Field, key, limit: int) -> Spend:
    """One use of ``key`` in ``model`` (columns ``window_start`` and ``used``), for the caller
    to run alone or fold into a statement of its own (on PostgreSQL, as a CTE)."""
    now = utcnow()
    window = now.replace(second=0, microsecond=0)
    statement = _spend(model, key_field, is_postgres())
    return Spend(statement.sql, statement.values(key=key, now=now, window=window, used=1,
                                                 limit=limit), limit, window + WINDOW)


def spend(model: type[Model], key_field: Field, key, limit: int) -> datetime.datetime | None:
    """Count one use of ``key`` in ``model``; None if within ``limit``, else when the next
    window opens."""
    use = spending(model, key_field, key, limit)
    return None if use.run() else use.opens


@cache
def _spend(model: type[Model], key_field: Field, postgres: bool) -> Statement:
    # One statement, committed on its own or with the statement it is folded into (one round
    # trip, no transaction around it): the conflicting row is locked while it is counted, so
    # concurrent spenders queue on it, and a row another process creates first is counted into
    # rather than raced. A row of an older window starts this one; a full one (or one a clock
    # ahead already moved on) is left as it is and returns nothing. Built once (per model and
    # dialect): it runs on every trigger.
    window, one = param("window"), param("used")
    statement = Statement.build(
        model.insert(**{key_field.name: param("key"), "created_at": param("now"),
                        "window_start": window, "used": one})
        .on_conflict(conflict_target=[key_field],
                     update={model.used: Case(None, [(model.window_start == window,
                                                      model.used + one)], one),
                             model.window_start: window},
                     where=(model.window_start < window)
                     | ((model.window_start == window) & (model.used < param("limit"))))
        .returning(model.used))
    db_writes.bookkeeping(statement.sql)  # a count spent is not a request's work
    return statement
