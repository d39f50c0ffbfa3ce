"""One database handle for the API, workers and CLI: SQLite embedded, PostgreSQL in production."""

from __future__ import annotations

import datetime
from pathlib import Path

from peewee import DatabaseProxy, PostgresqlDatabase
from playhouse.db_url import connect as connect_url
from playhouse.migrations import Runner

db = DatabaseProxy()

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def utcnow() -> datetime.datetime:
    """Naive UTC: the same column type on SQLite and PostgreSQL."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def open_database(url: str):
    if url.startswith(("postgres://", "postgresql://")):
        url = "psycopg3://" + url.split("://", 1)[1]
        database = connect_url(url, autoconnect=True)
    elif url.startswith("sqlite:"):
        database = connect_url(url, pragmas={
            # WAL lets the API read while a worker writes; the timeout rides out writer overlap.
            "journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000,
        })
    else:
        database = connect_url(url)
    db.initialize(database)
    return database


def is_postgres() -> bool:
    return isinstance(db.obj, PostgresqlDatabase)


def locking(query, skip_locked: bool = False):
    """``query`` with FOR UPDATE (SKIP LOCKED) on PostgreSQL. SQLite has no row locks and
    serializes writers anyway, so there the query is unchanged."""
    if not is_postgres():
        return query
    return query.for_update("FOR UPDATE SKIP LOCKED" if skip_locked else True)


def migrator() -> Runner:
    return Runner(db.obj, directory=str(MIGRATIONS_DIR))


def migrate_up() -> list[str]:
    return migrator().up()
