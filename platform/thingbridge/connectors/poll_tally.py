"""How an app's polls went, minute by minute: what the console's overview shows for the last
hour. A worker process counts its polls in memory, and a timer thread adds the counts to
``PollTally`` ``FLUSH_EVERY`` seconds after the first poll it has not written yet (and the
worker flushes when it stops), so a poll never waits for a write; a process killed outright
loses at most those seconds of counts. Counts the database did not take (it was away) are kept
for the next flush, as long as the table keeps its rows."""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import time

from peewee import EXCLUDED, IntegrityError

from thingbridge.db import db, delete_in_batches, utcnow
from thingbridge.db_pool import CommitUncertain
from thingbridge.models import App, PollTally

log = logging.getLogger(__name__)
FLUSH_EVERY = 10.0  # seconds
KEEP = datetime.timedelta(days=1)

_lock = threading.Lock()
_counts: dict[tuple[str, str, int], list[int]] = {}  # (app, type, epoch minute) -> [ok, failed]
_timer: threading.Timer | None = None


def record(app_id: str, type_id: str, succeeded: bool) -> None:
    """Count one poll that reached the provider (in memory: the timer writes it)."""
    key = (app_id, type_id, int(time.time() // 60))
    with _lock:
        counts = _counts.setdefault(key, [0, 0])
        counts[0 if succeeded else 1] += 1
        _start_timer()


def _start_timer() -> None:
    """A flush FLUSH_EVERY seconds from now, unless one is coming (the caller holds _lock)."""
    global _timer
    if _timer is None:
        _timer = threading.Timer(FLUSH_EVERY, _flush_in_thread)
        _timer.daemon = True
        _timer.start()


def _flush_in_thread() -> None:
    flush(connect=True)


def flush(connect: bool = False) -> None:
    """Add this process's counts to the table (one statement) and start counting afresh;
    ``connect``: on a connection of its own (the timer thread's), closed again."""
    global _counts, _timer
    with _lock:
        pending, _counts, _timer = _counts, {}, None
    if not pending:
        return
    # Sorted: concurrent flushes of other processes take the same rows in the same order.
    rows = [dict(app=app_id, type_id=type_id, succeeded=ok, failed=failed,
                 minute=datetime.datetime.fromtimestamp(minute * 60, datetime.UTC)
                 .replace(tzinfo=None))
            for (app_id, type_id, minute), (ok, failed) in sorted(pending.items())]
    try:
        with db.connection_context() if connect else contextlib.nullcontext():
            try:
                _add(rows)
            except IntegrityError:  # an app deleted since it polled: the others' counts go
                live = set(App.select(App.id).where(App.id.in_({r["app"] for r in rows}))
                           .tuples().iterator())
                _add([r for r in rows if (r["app"],) in live])
    except CommitUncertain:  # it may have been added: counting it again could double it
        log.warning("poll tally of %d rows may not have been recorded", len(rows))
    except Exception as exc:  # a tally is not worth failing a poll for
        log.warning("poll tally of %d rows not recorded yet (%s): kept for the next flush",
                    len(rows), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        _keep(pending)


def _keep(pending: dict) -> None:
    """Count ``pending`` again, and flush it with the next, which a timer starts."""
    oldest = int((time.time() - KEEP.total_seconds()) // 60)
    with _lock:
        for key, (ok, failed) in pending.items():
            if key[2] >= oldest:  # older rows would be pruned at once
                counts = _counts.setdefault(key, [0, 0])
                counts[0] += ok
                counts[1] += failed
        if _counts:
            _start_timer()


def _add(rows: list[dict]) -> None:
    if rows:
        PollTally.insert_many(rows).on_conflict(
            conflict_target=[PollTally.app, PollTally.type_id, PollTally.minute],
            update={PollTally.succeeded: PollTally.succeeded + EXCLUDED.succeeded,
                    PollTally.failed: PollTally.failed + EXCLUDED.failed}).execute()


def last_hour(app, now: datetime.datetime | None = None,
              step: int = 5) -> list[tuple[datetime.datetime, int, int]]:
    """The app's last hour in ``step``-minute bars, oldest first: (start, succeeded, failed)."""
    now = (now or utcnow()).replace(second=0, microsecond=0)
    first = now - datetime.timedelta(minutes=now.minute % step) - datetime.timedelta(
        minutes=60 - step)
    bars = {first + datetime.timedelta(minutes=i * step): [0, 0] for i in range(60 // step)}
    rows = PollTally.select(PollTally.minute, PollTally.succeeded, PollTally.failed).where(
        (PollTally.app == app) & (PollTally.minute >= first)).tuples()
    for minute, ok, failed in rows:
        start = minute - datetime.timedelta(minutes=minute.minute % step)
        if start in bars:
            bars[start][0] += ok
            bars[start][1] += failed
    return [(start, ok, failed) for start, (ok, failed) in bars.items()]


def prune(now: datetime.datetime | None = None) -> int:
    return delete_in_batches(PollTally, PollTally.minute < (now or utcnow()) - KEEP)
