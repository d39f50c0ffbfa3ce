"""Name lookups with a deadline, and a bound on how many may hang per owner.

The system resolver has no deadline of its own (glibc: 5 s per attempt, two attempts per name
server), and an app chooses the names its webhooks and callbacks go to: a name whose server
never answers would hold a sending thread, or an API request registering it, for half a
minute. A lookup runs on a thread of its own, waited for until the deadline
(``deadline.run_until``). Each owner (an app, for the names it
chose; a provider's name, for the operator's) has at most ``PER_OWNER`` lookups under way in a
process, and the process ``MAX_UNDER_WAY``; a lookup beyond waits for one of them to end, until
its deadline. So an app's hanging names cost its own sends their deadline and other apps
nothing, and the threads they hold are bounded.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from thingbridge.deadline import Unfinished, run_until

PER_OWNER = 8  # an app's webhook lanes and action callbacks in flight at once, by default
MAX_UNDER_WAY = 64


class _Slots:
    def __init__(self):
        self._changed = threading.Condition()
        self._held: Counter[str] = Counter()
        self._total = 0

    def take(self, owner: str, until: float) -> bool:
        with self._changed:
            while self._total >= MAX_UNDER_WAY or self._held[owner] >= PER_OWNER:
                left = until - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            self._held[owner] += 1
            self._total += 1
            return True

    def give_back(self, owner: str) -> None:
        with self._changed:
            self._held[owner] -= 1
            if self._held[owner] <= 0:
                del self._held[owner]
            self._total -= 1
            self._changed.notify_all()


_slots = _Slots()


def lookup(resolve: Callable[[str, int], list[str]], host: str, port: int, timeout: float,
           owner: str) -> list[str]:
    """``resolve(host, port)`` if it answers within ``timeout`` seconds, else TimeoutError."""
    until = time.monotonic() + timeout
    late = TimeoutError(f"{host} did not resolve within {max(timeout, 0):.1f} s")
    if timeout <= 0 or not _slots.take(owner, until):
        raise late
    try:
        return run_until(until, lambda: resolve(host, port), "name-lookup",
                         then=lambda: _slots.give_back(owner))
    except Unfinished:
        raise late from None
