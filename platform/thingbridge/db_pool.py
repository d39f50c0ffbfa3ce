"""PostgreSQL connections that heal: peewee's per-process pool, whose dead connections are
replaced, and statements that met one run again when that cannot repeat a committed write.

A server restart, failover, ``pg_terminate_backend`` or idle timeout closes connections that
sit in the pool or in a worker thread; nothing notices until the next statement fails. That
statement is then retried once on a new connection if it is a read or the start of a
transaction (nothing committed yet). Anything else (a write outside a transaction, a statement
inside one, a COMMIT whose answer was lost) raises ``DatabaseUnavailable``: the API answers 503
and a task is retried whole by Celery. So is a database that cannot be reached at all.
"""

from __future__ import annotations

from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded
from playhouse.postgres_ext import PooledPsycopg3Database

# Statement texts that may run twice with the effect of once: reads, and the writes that
# declared themselves so with ``repeatable`` (a lease taken with the caller's own token).
_REPEATABLE: set[str] = set()


class DatabaseUnavailable(OperationalError):
    """The database could not be reached, or the connection was lost under a statement that
    must not be repeated blindly."""


def _dead(conn) -> bool:
    """psycopg marks a connection broken once a statement met the server gone."""
    return conn is None or conn.closed or conn.broken


def repeatable(sql: str) -> str:
    """Declare a constant statement safe to run again after a lost connection; returns it."""
    _REPEATABLE.add(sql)
    return sql


def _repeatable(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT" or sql in _REPEATABLE


class HealingPostgresDatabase(PooledPsycopg3Database):
    def _is_closed(self, conn) -> bool:
        # A checkout costs no round trip to the server (peewee's default pings): a connection
        # that died idle is found by its first statement, which then runs again (below).
        return _dead(conn)

    def connect(self, reuse_if_open=False):
        if not self.is_closed():
            return super().connect(reuse_if_open)
        try:
            return super().connect(reuse_if_open)
        except (OperationalError, InterfaceError, MaxConnectionsExceeded) as exc:
            raise DatabaseUnavailable(f"database unreachable: {_first_line(exc)}") from exc

    def cursor(self, named_cursor=None):
        # A connection an earlier statement found dead is replaced before anything is sent.
        if not self.is_closed() and not self.in_transaction() and _dead(self._state.conn):
            self._replace_connection()
        return super().cursor(named_cursor)

    def execute_sql(self, sql, params=None, named_cursor=None):
        return self._healing(lambda: super(HealingPostgresDatabase, self).execute_sql(
            sql, params, named_cursor), _repeatable(sql))

    def begin(self, *args, **kwargs):
        return self._healing(lambda: super(HealingPostgresDatabase, self).begin(
            *args, **kwargs), repeatable=True)

    def commit(self):
        return self._healing(super().commit, repeatable=False)

    def rollback(self):
        if _dead(self._state.conn):
            return  # the server rolled back when the connection went
        return super().rollback()

    def _healing(self, run, repeatable: bool):
        try:
            return run()
        except DatabaseUnavailable:
            raise
        except (OperationalError, InterfaceError) as exc:
            if not _dead(self._state.conn):
                raise  # an error of the statement itself, on a live connection
            if self.in_transaction() or not repeatable:
                raise DatabaseUnavailable(f"connection lost: {_first_line(exc)}") from exc
            lost = exc
        self._replace_connection()
        try:
            return run()
        except (OperationalError, InterfaceError) as exc:
            if _dead(self._state.conn):
                raise DatabaseUnavailable(f"connection lost again: {_first_line(exc)}") from lost
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
