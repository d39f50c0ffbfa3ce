"""Statements built once by peewee and then run as constant text with parameters.

Building a statement with peewee's query builder costs more CPU than running a small one, and
constant text lets psycopg prepare each statement once per connection. So a hot path builds its
statements from the models on first use (per dialect) and keeps them; placeholders are named
while building and given values when the statement runs.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

from peewee import SQL, Select, Value

from thingbridge.db import db, is_postgres


def param(name: str) -> Value:
    """A named placeholder while a statement is built; its value is given when it runs."""
    return Value(name, converter=False)


class Statement(NamedTuple):
    sql: str
    names: tuple[str, ...]  # the placeholders' names, in the order the text takes them

    @classmethod
    def build(cls, query) -> Statement:
        """The query's text, built once by peewee for this database."""
        sql, names = query.sql()
        return cls(sql, tuple(names))

    def values(self, **values) -> list:
        """The parameters in the order the text takes them."""
        return [values[name] for name in self.names]

    def run(self, **values):
        return db.execute_sql(self.sql, self.values(**values))


@cache
def _insert(model, postgres: bool, only_if: str | None) -> Statement:
    fields = model._meta.sorted_fields
    if only_if is None:
        return Statement.build(model.insert({f: param(f.name) for f in fields}))
    return Statement.build(model.insert_from(
        Select(columns=[param(f.name) for f in fields])
        .where(SQL(f"EXISTS (SELECT 1 FROM {only_if})")), fields))


def insert_values(instance, only_if: str | None = None) -> tuple[str, list]:
    """The statement (built once per model and dialect, where ``Model.create`` builds it each
    time) and parameters that insert a model instance built in Python, its defaults filled in
    by the model. ``only_if`` names a CTE the statement is to follow (PostgreSQL): the row is
    inserted only if that CTE returns one."""
    data = instance.__data__
    statement = _insert(type(instance), is_postgres(), only_if)
    instance._dirty.clear()
    return statement.sql, statement.values(
        **{f.name: f.db_value(data.get(f.name)) for f in instance._meta.sorted_fields})
