"""How long to wait before trying again: one rule for polls, actions, webhooks and publishing.

Exponential from ``base``, capped, spread by jitter so that work that failed together (a
provider outage, a receiver restart) does not come back in lockstep, and never sooner than the
other side asked for (``Retry-After``).
"""

from __future__ import annotations

import datetime
import random


def delay(failures: int, base: float, cap: float, retry_after: float | None = None,
          spread: float = 0.2) -> float:
    """Seconds before attempt ``failures + 1``: ``base`` after the first failure, doubling."""
    seconds = base * 2 ** max(failures - 1, 0) * random.uniform(1 - spread, 1 + spread)
    return max(min(cap, seconds), retry_after or 0.0)


def jittered(seconds: float, spread: float = 0.1) -> datetime.timedelta:
    """``seconds`` give or take ``spread``: thousands of clients created together do not
    poll in lockstep."""
    return datetime.timedelta(seconds=seconds * random.uniform(1 - spread, 1 + spread))
