"""PostgreSQL connections that heal: peewee's per-process pool, whose dead connections are
replaced, and statements that met one run again when that cannot repeat a committed write.

A server restart, failover, ``pg_terminate_backend`` or idle timeout closes connections that
sit in the pool or in a worker thread. The server says goodbye before it goes, so a connection
it spoke to while idle is replaced before anything is sent on it. A statement that still meets
a dead connection (it died under the statement, or vanished without a word) is retried once on
a new one if that is safe: a read, the start of a transaction, or a write declared repeatable.
A statement inside a transaction raises ``DatabaseUnavailable`` (the transaction died with the
connection: nothing of it committed), as does a database that cannot be reached at all. A write
outside a transaction (its own transaction) and a COMMIT whose answer was lost raise
``CommitUncertain``: it may have committed. The API answers 503 either way, saying which, and a
task is retried whole by Celery.
"""

from __future__ import annotations

import select

from peewee import InterfaceError, OperationalError, __exception_wrapper__
from playhouse.pool import MaxConnectionsExceeded
from playhouse.postgres_ext import PooledPsycopg3Database
from psycopg.pq import TransactionStatus

# Statement texts that may run twice with the effect of once: reads, and the writes that
# declared themselves so with ``repeatable`` (a lease taken with the caller's own token).
_REPEATABLE: set[str] = set()


# A connection pooler (PgBouncer) refuses the startup options a statement timeout is sent in.
POOLER_HINT = ("; behind a pooler that refuses startup options, set "
               "THINGBRIDGE_DATABASE_STATEMENT_TIMEOUT=0 and bound the role instead "
               "(ALTER ROLE ... SET statement_timeout)")


class DatabaseUnavailable(OperationalError):
    """The database could not be reached, or the connection was lost under a statement that
    must not be repeated blindly."""


class CommitUncertain(DatabaseUnavailable):
    """The connection was lost while COMMIT was on its way: the transaction may have
    committed or not, so its work must not be assumed undone."""


class DatabaseBusy(DatabaseUnavailable):
    """The server refused a statement's work for now on a connection that is fine: it ran past
    its statement timeout (a lock held elsewhere, an overloaded server), the server is out of
    a resource (disk space, memory), or it ended the transaction to break a deadlock. Nothing
    of it was written. ``why`` completes "the
    database ..." for the caller, without the server's own text (paths, sizes)."""

    def __init__(self, message: str, why: str):
        super().__init__(message)
        self.why = why


def _busy(exc: Exception) -> DatabaseBusy | None:
    """``exc`` (peewee's wrapping of psycopg's error) as the refusal it is, if it is one."""
    original = exc.__cause__ or exc.__context__
    state = getattr(original, "sqlstate", None) or ""
    if state == "57014":  # query_canceled: the statement timeout (or an operator's cancel)
        why = "did not finish this request's work in time (a lock held elsewhere, an " \
              "overloaded server)"
    elif state.startswith("53"):  # insufficient resources: disk full, out of memory
        why = "is out of a resource it needs (disk space, memory)"
    elif state in ("40001", "40P01"):  # serialization failure, deadlock detected
        why = "ended this request's work to let a concurrent one through (a deadlock)"
    else:
        return None
    return DatabaseBusy(_first_line(original), why)


def _dead(conn) -> bool:
    """psycopg marks a connection broken once a statement met the server gone."""
    return conn is None or conn.closed or conn.broken


def _hung_up(conn) -> bool:
    """The server spoke to an idle connection. Without LISTEN/NOTIFY (unused here) that is its
    goodbye: the FATAL of a terminated, shut-down or timed-out session, then the close."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _unusable(conn) -> bool:
    return _dead(conn) or _hung_up(conn)


def repeatable(sql: str) -> str:
    """Declare a constant statement safe to run again after a lost connection; returns it."""
    _REPEATABLE.add(sql)
    return sql


def _repeatable(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT" or sql in _REPEATABLE


class HealingPostgresDatabase(PooledPsycopg3Database):
    def _is_closed(self, conn) -> bool:
        # Checked locally at checkout, without peewee's default round trip to the server.
        return _unusable(conn)

    def connect(self, reuse_if_open=False):
        if not self.is_closed():
            return super().connect(reuse_if_open)
        try:
            return super().connect(reuse_if_open)
        except (OperationalError, InterfaceError, MaxConnectionsExceeded) as exc:
            hint = POOLER_HINT if "startup parameter" in str(exc) else ""
            raise DatabaseUnavailable(f"database unreachable: {_first_line(exc)}{hint}") from exc

    def cursor(self, named_cursor=None):
        # Between transactions, a connection found dead is replaced before anything is sent.
        if not self.is_closed() and not self.in_transaction() and _unusable(self._state.conn):
            self._replace_connection()
        return super().cursor(named_cursor)

    def execute_sql(self, sql, params=None, named_cursor=None):
        return self._healing(lambda: super(HealingPostgresDatabase, self).execute_sql(
            sql, params, named_cursor), _repeatable(sql))

    def begin(self, *args, **kwargs):
        return self._healing(lambda: super(HealingPostgresDatabase, self).begin(
            *args, **kwargs), repeatable=True)

    def commit(self):
        if _unusable(self._state.conn):  # gone before COMMIT was sent: nothing committed
            raise DatabaseUnavailable("connection lost before COMMIT")
        return self._healing(super().commit, repeatable=False, lost=CommitUncertain)

    def rollback(self):
        if _unusable(self._state.conn):
            return  # the server rolls back a transaction whose connection went
        return super().rollback()

    def transaction_in_one_flight(self, statements: list[tuple[str, list]]):
        """``BEGIN``, ``statements`` and ``COMMIT`` sent together (psycopg's pipeline mode):
        one round trip where a transaction sent statement by statement waits for each. The
        server still runs each statement after the one before it ended, with its own snapshot,
        so a row lock one takes holds for what the next one reads. Returns the last statement's
        first row. A connection lost under it raises ``CommitUncertain`` (the COMMIT was on its
        way); a statement's own error rolls the transaction back and propagates."""
        if self.in_transaction():  # inside a caller's transaction: no BEGIN or COMMIT of ours
            cursors = [self.execute_sql(sql, params) for sql, params in statements]
            return cursors[-1].fetchone()
        self.cursor()  # connects, and replaces a connection the server hung up on meanwhile
        conn = self._state.conn
        try:
            with __exception_wrapper__, conn.pipeline():
                conn.execute("BEGIN")
                cursors = [conn.execute(sql, params) for sql, params in statements]
                conn.execute("COMMIT")
            return cursors[-1].fetchone()
        except (OperationalError, InterfaceError) as exc:
            if _dead(conn):
                raise CommitUncertain(f"connection lost: {_first_line(exc)}") from exc
            self._roll_back_aborted(conn)
            if busy := _busy(exc):
                raise busy from exc
            raise
        except Exception:
            if not _dead(conn):
                self._roll_back_aborted(conn)
            raise

    @staticmethod
    def _roll_back_aborted(conn) -> None:
        # After an error the pipeline skips the rest, COMMIT too: the transaction stays open.
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")

    def _healing(self, run, repeatable: bool, lost: type[DatabaseUnavailable] | None = None):
        try:
            return run()
        except DatabaseUnavailable:
            raise
        except (OperationalError, InterfaceError) as exc:
            if not _dead(self._state.conn):
                if busy := _busy(exc):
                    raise busy from exc
                raise  # an error of the statement itself, on a live connection
            if self.in_transaction() or not repeatable:
                # Outside a transaction a statement commits itself: lost under it, it may have.
                lost = lost or (DatabaseUnavailable if self.in_transaction() else CommitUncertain)
                raise lost(f"connection lost: {_first_line(exc)}") from exc
            first = exc
        self._replace_connection()
        try:
            return run()
        except (OperationalError, InterfaceError) as exc:
            if _dead(self._state.conn):
                raise DatabaseUnavailable(f"connection lost again: {_first_line(exc)}") from first
            raise

    def _replace_connection(self) -> None:
        """Swap this thread's dead connection for a new one. The pool's idle connections most
        likely died with it (a restart ends them all), so they are dropped too. The
        ``connection_context`` nesting of the thread survives the swap."""
        state = self._state
        nesting = state.ctx
        with self._lock:
            self._close(state.conn, close_conn=True)
            state.reset()
        self.close_idle()
        try:
            self.connect()
        finally:
            self._state.ctx = nesting


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [exc.__class__.__name__])[0][:200]
