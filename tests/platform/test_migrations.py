"""Migrations up and down on empty databases: PostgreSQL (a scratch database) and SQLite."""

import psycopg
import pytest
from helpers import DATABASE_URL
from peewee import SqliteDatabase
from playhouse.migrations import Runner

from thingbridge.db import MIGRATIONS_DIR, open_database
from thingbridge.models import ALL_MODELS

# Named after the session's database, so suites of several checkouts never share it.
SCRATCH = DATABASE_URL.rsplit("/", 1)[1] + "_migrations"
TABLES = {m._meta.table_name for m in ALL_MODELS}
ALL_MIGRATIONS = ["0001_initial", "0002_events", "0003_lean_indexes",
                  "0004_client_lifecycle", "0005_app_lifecycle", "0007_work_leases",
                  "0008_console", "0009_outbound_limits",
                  "0010_deliveries_in_flight", "0011_due_actions",
                  "0012_newest_requests", "0013_endpoint_deliveries",
                  "0014_endpoint_last_error", "0015_due_work_by_app",
                  "0016_console_sessions", "0017_client_granted_at"]


@pytest.fixture
def scratch_postgres():
    admin = psycopg.connect(DATABASE_URL, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
    admin.execute(f"CREATE DATABASE {SCRATCH}")
    url = DATABASE_URL.rsplit("/", 1)[0] + "/" + SCRATCH
    yield url
    admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    admin.close()


def _up_and_down(database):
    runner = Runner(database, directory=str(MIGRATIONS_DIR))
    assert runner.up() == ALL_MIGRATIONS
    assert set(database.get_tables()) == TABLES | {"schema_migration"}
    assert runner.up() == []  # idempotent
    assert runner.down(target=ALL_MIGRATIONS[0]) == ALL_MIGRATIONS[::-1]
    assert set(database.get_tables()) == {"schema_migration"}
    assert runner.up() == ALL_MIGRATIONS  # and back up again


def test_postgres_up_down(scratch_postgres):
    import thingbridge.db as tdb

    saved = tdb.db.obj
    database = open_database(scratch_postgres)
    try:
        _up_and_down(database)
    finally:
        database.close()
        tdb.db.initialize(saved)


def test_sqlite_up_down(tmp_path):
    _up_and_down(SqliteDatabase(str(tmp_path / "m.db"), pragmas={"foreign_keys": 1}))


def test_migration_matches_models_on_postgres(flask_app):
    """The frozen migration creates exactly the columns the models expect."""
    from thingbridge.db import db

    with db.connection_context():
        for model in ALL_MODELS:
            columns = {c.name for c in db.get_columns(model._meta.table_name)}
            assert columns == {f.column_name for f in model._meta.sorted_fields}, model


def test_migrations_create_exactly_the_models_indexes_on_postgres(flask_app):
    """No index the models do not declare (each costs a write per row on the poll path), and
    none missing."""
    from thingbridge.db import db

    def columns(index):
        return [getattr(f, "column_name", None) or str(f) for f in index._expressions]

    with db.connection_context():
        for model in ALL_MODELS:
            table = model._meta.table_name
            found = {(tuple(i.columns), i.unique) for i in db.get_indexes(table)}
            wanted = {(tuple(columns(i)), i._unique) for i in model._meta.fields_to_index()}
            wanted.add(((model._meta.primary_key.column_name,), True))
            assert found == wanted, table
