"""Per-app limits on what one app may ask of the shared platform (README "Running it safely").

Rates (secret checks per client id: token, revoke, console sign-in; action triggers and
instance checks per app) count in a fixed one-minute window in the database, so every API
process draws from the same count without another service; sizes (webhooks per app, replays
in flight, things per subject and what they hold) are counted in the transaction that creates
more. Every refusal is a 429 in the standard error body with Retry-After.
Defaults are far above what a real app does; THINGBRIDGE_* settings change them (0: no limit).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from contextlib import contextmanager
from typing import NamedTuple

from flask import current_app

from thingbridge import db
from thingbridge.db import utcnow
from thingbridge.errors import ApiError
from thingbridge.limits import window
from thingbridge.models.limits import RateWindow

COUNT_RETRY_AFTER = 60  # seconds: a size limit frees up only when the app removes something


def too_many(description: str, retry_after: float) -> ApiError:
    error = ApiError(429, description)
    error.data = {"headers": {"Retry-After": str(max(1, math.ceil(retry_after)))}}
    return error


class Rate(NamedTuple):
    """A per-minute rate ``key`` spends from: ``setting`` names the limit, ``what`` what the
    429 says was too many."""
    setting: str
    key: str
    what: str

    def use(self) -> window.Spend | None:
        """One use, not yet spent (run it, or fold it into a statement); None: no limit."""
        if not (limit := current_app.config[self.setting]):
            return None
        return window.spending(RateWindow, RateWindow.key, self.key[:300], limit)

    def refused(self, use: window.Spend) -> ApiError:
        """The 429 for a ``use`` the window had no room for."""
        return too_many(f"too many {self.what}: at most {use.limit} per minute "
                        f"(THINGBRIDGE_{self.setting})", (use.opens - utcnow()).total_seconds())

    def check(self) -> None:
        """429 once ``key`` has spent this minute's limit."""
        if (use := self.use()) is not None and not use.run():
            raise self.refused(use)


def check_size(setting: str, count: int, what: str, adding: int = 1) -> None:
    """429 when ``count`` existing ``what`` and ``adding`` more would pass the ``setting``
    limit."""
    limit = current_app.config[setting]
    if limit and count + adding > limit:
        raise too_many(f"too many {what}: at most {limit} (THINGBRIDGE_{setting})",
                       COUNT_RETRY_AFTER)


@contextmanager
def room_for(setting: str, key: str, count: Callable[[], int], what: str, adding: int = 1):
    """A transaction for creating ``adding`` more of what ``count`` counts, entered only while
    they stay within the ``setting`` limit, else 429. Callers with the same ``key`` run one at
    a time, each counting what the one before created: requests racing cannot pass the limit.
    Nested, the inner limit's lock is taken in the outer transaction."""
    with db.write_transaction():
        if serialize(setting, key):
            check_size(setting, count(), what, adding)
        yield


def serialize(setting: str, key: str) -> bool:
    """Inside a write transaction, before counting toward the ``setting`` limit of ``key``:
    wait for any other transaction counting toward it to end, and hold it off until this one
    ends. False (and nothing held) when the limit is off."""
    if not current_app.config[setting]:
        return False
    db.serialize(f"{setting}:{key}")
    return True


def prune(now: datetime.datetime | None = None) -> int:
    """Forget windows that ended: a client id seen once does not stay forever."""
    return db.delete_in_batches(RateWindow,
                                RateWindow.window_start < (now or utcnow()) - window.WINDOW)
