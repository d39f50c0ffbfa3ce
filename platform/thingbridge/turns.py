"""Apps take turns at the dispatchers: the due rows of a table (clients to poll, action
requests to deliver) go into a batch so that every app's longest-waiting row comes before any
app's second, and so on until the batch is full. One app's backlog then delays another app's
work by a batch at most, not by the whole backlog."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from peewee import JOIN, Expression, Select, fn

from thingbridge.db import db, is_postgres
from thingbridge.models import App


@contextlib.contextmanager
def claiming() -> Iterator[None]:
    """The transaction a dispatcher claims a batch in, with PostgreSQL's JIT off: the planner
    expects ``limit`` rows from every app, so with many apps the estimate passes JIT's
    threshold, and compiling cost more than it saved (1,000 apps each 200 behind: 480-620 ms
    a claim with it, 284-302 ms without)."""
    with db.atomic():
        if is_postgres():
            db.execute_sql("SET LOCAL jit = off")
        yield


def in_turns(model, due: Callable[[type], Expression], waited: str, limit: int,
             apps: Expression | None = None) -> Select:
    """A query of the ids of up to ``limit`` rows of ``model`` that ``due(table)`` holds for,
    in turns between apps; within an app and within a turn, the row due first (by the
    ``waited`` column) first. ``apps`` (a condition on ``App``) says which apps take turns:
    every app's rows if None.

    On PostgreSQL each app's rows are read through an index on (app, ``waited``), at most
    ``limit`` of an app's, so a batch reads at most ``limit`` rows per app with rows due,
    whatever the backlog. SQLite (one machine, small numbers) numbers every due row."""
    if is_postgres():
        table = model.alias("due")
        first = (table.select(table.id, table.app, getattr(table, waited))
                 .where((table.app == App.id) & due(table))
                 .order_by(getattr(table, waited)).limit(limit))
        source = App.select(first.c.id, first.c.app_id, getattr(first.c, waited)) \
            .join(first, JOIN.LATERAL)
        if apps is not None:
            source = source.where(apps)
    else:
        source = model.select(model.id, model.app, getattr(model, waited)).where(due(model))
        if apps is not None:
            source = source.where(model.app.in_(App.select(App.id).where(apps)))
    source = source.alias("due_by_app")
    since = getattr(source.c, waited)
    turn = fn.ROW_NUMBER().over(partition_by=[source.c.app_id], order_by=[since])
    turns = Select([source], [source.c.id, since, turn.alias("turn")]).alias("turns")
    return (Select([turns], [turns.c.id])
            .order_by(turns.c.turn, getattr(turns.c, waited)).limit(limit))
