"""One database handle for the API, workers and CLI: SQLite embedded, PostgreSQL in production."""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from peewee import DatabaseProxy, OperationalError, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import parse as parse_url
from playhouse.migrations import Runner

from thingbridge import db_writes
from thingbridge.db_pool import (
    CommitUncertain,
    DatabaseBusy,
    DatabaseUnavailable,
    HealingPostgresDatabase,
)

__all__ = ["DatabaseUnavailable", "db", "init_app", "open_database", "retry_idempotent",
           "utcnow"]

db = DatabaseProxy()

# Seconds a client of the API should wait before trying again while the database is away.
RETRY_AFTER = 5
# Seconds an outcome that must not be lost or repeated waits for the database to come back.
RECORD_PATIENCE = 10.0
# A server that vanished without closing its connections (a network partition, a dead host) is
# noticed within 25 s: TCP keepalive (idle + interval * count) while nothing is unacknowledged,
# such as a statement sent and waiting for its answer; the user timeout while something is (a
# statement the server never received), where keepalive probes are not sent.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3, "tcp_user_timeout": 25_000}

# What the migrations, locks and statements are written for: PostgreSQL, and SQLite embedded.
SCHEMES = ("postgres", "postgresql", "sqlite")

# The advisory lock key `thingbridge migrate` holds (any constant no other code uses).
MIGRATION_LOCK = 0x7468696E67  # "thing"

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def utcnow() -> datetime.datetime:
    """Naive UTC: the same column type on SQLite and PostgreSQL."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def supported_scheme(url: str) -> str:
    """The scheme of a database URL; ValueError unless the platform is written for it."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise ValueError(f"must start with one of {', '.join(s + '://' for s in SCHEMES)}")
    return scheme


class WaitingSqliteDatabase(SqliteDatabase):
    """SQLite whose "database is locked" (another writer held the one write lock past the busy
    timeout) is ``DatabaseBusy``, as a PostgreSQL statement timeout is: a 503 that wrote
    nothing, a task retried."""

    def execute_sql(self, sql, params=None, *args, **kwargs):
        return self._waiting(super().execute_sql, sql, params, *args, **kwargs)

    def begin(self, *args, **kwargs):
        return self._waiting(super().begin, *args, **kwargs)

    def commit(self):
        return self._waiting(super().commit)

    @staticmethod
    def _waiting(run, *args, **kwargs):
        try:
            return run(*args, **kwargs)
        except OperationalError as exc:
            if "database is locked" not in str(exc):
                raise
            raise DatabaseBusy(str(exc), "stayed locked by another writer") from exc


# What the platform opens: each tells the request whether it committed a write (db_writes).
class _Postgres(db_writes.Tracking, HealingPostgresDatabase):
    pass


class _Sqlite(db_writes.Tracking, WaitingSqliteDatabase):
    pass


def open_database(url: str, pool_size: int = 0, connect_timeout: float = 5,
                  application_name: str = "thingbridge", statement_timeout: float = 0):
    """The database behind ``db``. PostgreSQL gets a pool per process (``pool_size``
    connections at most, 0 for one per thread that uses it; a thread that finds it full waits
    ``connect_timeout`` seconds, as long as opening a connection may take), its statements
    ended by the server after ``statement_timeout`` seconds (0: never)."""
    if supported_scheme(url) != "sqlite":
        bound = {"options": f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"} \
            if statement_timeout else {}
        database = _Postgres(
            "postgresql://" + url.split("://", 1)[1], max_connections=pool_size or None,
            timeout=connect_timeout, connect_timeout=max(1, round(connect_timeout)),
            application_name=application_name, **KEEPALIVES, **bound)
    else:
        database = _Sqlite(**parse_url(url), pragmas={
            # WAL lets the API read while a worker writes; the timeout rides out writer overlap.
            "journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000,
        })
    db.initialize(database)
    return database


def retry_idempotent(fn):
    """Run ``fn`` again while the database is unreachable or the connection was lost under
    it, for up to RECORD_PATIENCE seconds: long enough for a restart. ``fn`` works in a
    transaction of its own and is a conditional move (a second run after a first that
    committed, its answer lost, changes nothing). For recording the outcome of something that
    must not happen twice (a webhook sent, an action performed): a task retry would repeat it."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        deadline, pause = time.monotonic() + RECORD_PATIENCE, 0.25
        while True:
            try:
                return fn(*args, **kwargs)
            except DatabaseUnavailable:
                if db.in_transaction() or time.monotonic() + pause > deadline:
                    raise  # the caller's own transaction is lost too, or patience ran out
            time.sleep(pause)
            pause *= 2

    return run


def init_app(app) -> None:
    """Requests take a pooled connection on their first query and give it back at the end;
    while the database is unreachable they answer 503 with Retry-After, never 500."""
    from thingbridge.errors import ApiError

    @app.teardown_request
    def _give_back(exc):
        if not db.is_closed():
            db.close()

    @app.before_request
    def _nothing_written_yet():
        db_writes.start()

    @app.errorhandler(DatabaseUnavailable)
    def _unavailable(exc):
        if db_writes.committed() and not isinstance(exc, CommitUncertain):
            # An earlier step of this request committed (a recorded action request, a used
            # consent state): "nothing was written" would have the client repeat it blindly.
            what = exc.why if isinstance(exc, DatabaseBusy) else "became unreachable"
            error = ApiError(503, f"the database {what}; this request had already recorded "
                                  "part of its work: look before repeating it",
                             "COMMIT_UNCERTAIN")
        elif isinstance(exc, DatabaseBusy):
            error = ApiError(503, f"the database {exc.why}; nothing was written, try again "
                                  "shortly", "DATABASE_BUSY")
        elif isinstance(exc, CommitUncertain):
            # Answering "nothing happened" here could have a client repeat what happened.
            error = ApiError(503, "the database connection was lost while this request's "
                                  "write was on its way: it may have been recorded; look before "
                                  "repeating it", "COMMIT_UNCERTAIN")
        else:
            error = ApiError(503, "the database is unreachable; try again shortly")
        error.data = {"headers": {"Retry-After": str(RETRY_AFTER)}}
        return app.handle_http_exception(error)  # the error body, as for every error


def is_postgres() -> bool:
    return isinstance(db.obj, PostgresqlDatabase)


def locking(query, skip_locked: bool = False, share: bool = False):
    """``query`` with FOR UPDATE (SKIP LOCKED) on PostgreSQL, or FOR SHARE (``share``: the
    rows are read, and must not change, until the transaction ends). SQLite has no row locks
    and serializes writers anyway, so there the query is unchanged."""
    if not is_postgres():
        return query
    if share:
        return query.for_update("FOR SHARE")
    return query.for_update("FOR UPDATE SKIP LOCKED" if skip_locked else True)


@contextlib.contextmanager
def migration_lock(waiting: Callable[[], None] = lambda: None):
    """Hold PostgreSQL's session advisory lock of migrations while the block runs, so two
    ``thingbridge migrate`` at once run one after the other (the second finds nothing to do)
    instead of racing on the catalog; ``waiting`` is called if another holds it. SQLite's own
    write lock serializes them already."""
    if not is_postgres():
        yield
        return
    if not db.execute_sql("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK,)).fetchone()[0]:
        waiting()
        db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        yield
    finally:
        db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def write_transaction():
    """A transaction whose reads stay true for its writes: SQLite takes its one write lock at
    the start (IMMEDIATE) instead of failing at the first write after another writer
    committed; on PostgreSQL an ordinary one, in which callers lock what they read."""
    return db.atomic() if is_postgres() else db.atomic("IMMEDIATE")


# Rows a prune deletes per transaction.
PRUNE_BATCH = 5000


def delete_in_batches(model, condition, batch: int | None = None) -> int:
    """Delete ``model``'s rows that meet ``condition``, ``batch`` at a time, each batch a
    transaction of its own; returns how many. A backlog (the first prune after a receiver or
    broker was away for days: millions of rows) then never holds one transaction, or SQLite's
    one write lock, for all of it, and what a prune that is stopped did stays done."""
    batch = batch or PRUNE_BATCH
    key = model._meta.primary_key
    deleted = 0
    while True:
        with db.atomic():
            count = model.delete().where(key.in_(
                model.select(key).where(condition).limit(batch))).execute()
        deleted += count
        if count < batch:
            return deleted


def serialize(key: str) -> None:
    """Inside a transaction: wait until no other transaction that serialized on ``key`` is
    open, and hold ``key`` until this one ends (a PostgreSQL advisory lock; a collision of
    two keys' hashes only makes them wait for each other). SQLite's writers are serial."""
    if is_postgres():
        lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", [lock_id])


def migrator() -> Runner:
    return Runner(db.obj, directory=str(MIGRATIONS_DIR))


def migrate_up() -> list[str]:
    return migrator().up()
