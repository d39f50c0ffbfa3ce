"""Whether this thread's request has already committed a write: an API request is not one
transaction (a connector action records its request, calls the provider, then records the
outcome; a consent takes its state, exchanges the code, then stores the grant). When the
database fails a later step, the 503 must not say "nothing was written" of the earlier ones.

Statements other than reads count; a write inside a transaction counts once it commits. A CTE
(``WITH``) counts as a write if it holds one anywhere: a caller told to look before repeating
a read loses less than one told to repeat a write blindly.
"""

from __future__ import annotations

import functools
import threading

_local = threading.local()
_BOOKKEEPING: set[str] = set()
_NOT_WRITES = ("SELECT", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET ", "SHOW ")


def start() -> None:
    """A new request: nothing written yet."""
    _local.committed = _local.pending = False


def bookkeeping(sql: str) -> str:
    """Declare a constant statement a write that is not the request's work (a rate limit's
    count): a request that fails after it wrote nothing the caller must look for. Returns it."""
    _BOOKKEEPING.add(sql)
    return sql


@functools.lru_cache(maxsize=2048)  # the platform's statements are texts built once
def _writes(sql: str) -> bool:
    if sql in _BOOKKEEPING:
        return False
    head = sql.lstrip().upper()
    if head.startswith("WITH"):
        return any(verb in head for verb in ("INSERT ", "UPDATE ", "DELETE "))
    return not head.startswith(_NOT_WRITES)


def sent(sql: str, in_transaction: bool) -> None:
    """A statement ran without error."""
    if not _writes(sql):
        return
    if in_transaction:
        _local.pending = True
    else:
        _local.committed = True  # outside a transaction a statement commits itself


def ended(committed: bool) -> None:
    """A transaction committed or rolled back."""
    if committed and getattr(_local, "pending", False):
        _local.committed = True
    _local.pending = False


def committed() -> bool:
    return getattr(_local, "committed", False)


class Tracking:
    """Database mixin, first among the bases of the class the platform opens: it sees every
    statement and transaction end that reached the server through the classes below it."""

    def execute_sql(self, sql, *args, **kwargs):
        cursor = super().execute_sql(sql, *args, **kwargs)
        sent(sql, self.in_transaction())
        return cursor

    def commit(self):
        super().commit()
        ended(committed=True)

    def rollback(self):
        ended(committed=False)
        return super().rollback()
