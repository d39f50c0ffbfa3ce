"""A provider that stops answering costs each process a few calls' timeouts, not one per call.

Polls of every client of a provider that hangs would each wait out the whole call timeout, so
a few hundred due clients take every worker thread for minutes, and with them the other
providers' polls, the webhooks and the actions of every app (one queue serves them all). Here
each process counts, per provider address, the calls that got no answer (a timeout, a refused
or reset connection, a name that does not resolve). After ``FAILURES`` in a row its calls are
paused for ``FIRST_PAUSE`` seconds: they fail at once with :class:`ProviderPaused`, not sent,
which a connector reports as the transient failure it is, so its clients back off as from any
outage and the threads go to other work. When the pause ends, one call goes out as a probe
while the others still fail at once: any answer, whatever its status, ends the pause; none
starts a pause twice as long, up to ``LONGEST_PAUSE``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

FAILURES = 5
FIRST_PAUSE, LONGEST_PAUSE = 30.0, 300.0


class ProviderPaused(requests.ConnectionError):
    """Not sent: the provider answered none of this process's last calls (see the module)."""


@dataclass
class _Address:
    failures: int = 0
    pause: float = 0.0
    paused_until: float = 0.0
    probing: bool = False
    last: str = ""  # the last unanswered call's error, named in the pause's reason


_addresses: dict[str, _Address] = {}
_clock = time.monotonic
_lock = threading.Lock()


def admit(address: str, request) -> bool:
    """Whether a call to ``address`` may be sent; ProviderPaused if not. True when the call is
    the probe that ends or extends a pause (report its outcome with ``probe=True``)."""
    with _lock:
        state = _addresses.get(address)
        if state is None or state.failures < FAILURES:
            return False
        wait = state.paused_until - _clock()
        if wait > 0 or state.probing:
            raise ProviderPaused(
                f"{address} answered none of this process's last {state.failures} calls (the "
                f"last: {state.last}); it is called again in {max(wait, 0):.0f} s",
                request=request)
        state.probing = True
        return True


def answered(address: str) -> None:
    """An answer came (any status): the address is called as usual again."""
    with _lock:
        state = _addresses.pop(address, None)
    if state is not None and state.failures >= FAILURES:
        log.warning("%s answers again; its calls are no longer paused", address)


def unanswered(address: str, probe: bool, error: Exception) -> None:
    """A call got no answer (``error`` says how)."""
    now = _clock()
    with _lock:
        state = _addresses.setdefault(address, _Address())
        state.last = error.__class__.__name__
        if probe:
            state.probing = False
            state.pause = min(state.pause * 2, LONGEST_PAUSE)
        elif now < state.paused_until:
            return  # sent before the pause began: the pause already counts it
        else:
            state.failures += 1
            if state.failures < FAILURES:
                return
            state.pause = state.pause or FIRST_PAUSE
        state.paused_until = now + state.pause
        failures, pause = state.failures, state.pause
    log.warning("%s answered none of the last %d calls: its calls are paused for %.0f s "
                "(failing at once, not sent)", address, failures, pause)


def forget() -> None:
    """Every address called as usual again (tests)."""
    with _lock:
        _addresses.clear()
