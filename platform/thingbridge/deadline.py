"""Work that may hang where no timeout reaches it (the system resolver, a client library's
reads a byte at a time): it runs on a daemon thread of its own and is waited for only until a
deadline. A thread still hanging does not hold up the process's exit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Unfinished(TimeoutError):
    """The work had not ended by its deadline; it goes on in its thread."""


def run_until(until: float, work: Callable[[], T], name: str,
              then: Callable[[], None] | None = None) -> T:
    """``work()``'s result (or its exception) if it ends by ``until`` (time.monotonic), else
    Unfinished. ``then`` runs once the work has ended, whenever that is, in its thread."""
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # handed to the waiting thread
            outcome.append((False, exc))
        finally:
            if then is not None:
                then()

    thread = threading.Thread(target=run, name=name, daemon=True)
    try:
        thread.start()
    except BaseException:
        if then is not None:
            then()
        raise
    thread.join(max(until - time.monotonic(), 0.0))
    if not outcome:
        raise Unfinished(name)
    ended, value = outcome[0]
    if not ended:
        raise value
    return value
