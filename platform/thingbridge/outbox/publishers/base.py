"""What every broker publisher shares: URL handling, a reused connection, one retry, and a
deadline for the whole attempt.

The clients' timeouts bound each wait for bytes, not an answer: a broker (or a proxy in front of
it) that sends a byte now and then held a publish task for ever, and the worker processes with
it, which polls and webhooks share. An attempt runs on a thread of its own and is waited for
``ATTEMPT`` seconds (``deadline.run_until``); then its sockets are shut down (``cut``), which
ends whatever it is waiting for, and the publisher is given up (``abandoned``): the process
builds a new one, and the old one closes what it still holds once its thread ends.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from thingbridge.deadline import Unfinished, run_until

log = logging.getLogger(__name__)

# Seconds to connect, and to wait for the broker to confirm a whole batch.
TIMEOUT = 10.0
# Seconds a whole attempt may take: connect, send, confirmations, and one reconnection.
ATTEMPT = 3 * TIMEOUT
# Seconds a batch waits for its turn on the process's publisher (see publishing.drain).
TURN_WAIT = 2.0


def redact(url: str) -> str:
    """The URL without its password: a publisher's stable name, safe to store and log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class Publisher:
    """One configured broker. ``publish`` returns only once the broker has confirmed every
    message of the batch and raises otherwise; the connection is kept for the next batch."""

    # Options this publisher reads from the URL's query; the rest stay in the connection URL.
    options: tuple[str, ...] = ()

    def __init__(self, url: str):
        self.url = url
        self.name = redact(url)
        # One batch at a time: the process's threads share this publisher, and a client's
        # connection (py-amqp's above all) is not theirs to share; see publishing.drain.
        self.turn = threading.Lock()
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.params = {k: v for k, v in query if k in self.options}
        rest = urlencode([(k, v) for k, v in query if k not in self.options])
        self.connection_url = urlunsplit(parts._replace(query=rest))
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.path = parts.path
        self.secure = parts.scheme.endswith("s")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    abandoned = False
    attempt_started: float | None = None  # time.monotonic() of the attempt under way

    def step_aside(self) -> float:
        """Seconds a batch that waited ``TURN_WAIT`` for its turn leaves its pair alone: until
        the attempt under way ends, if that one attempt held the turn all along (a slow or
        silent broker), else a moment (it queued behind several healthy batches)."""
        started, now = self.attempt_started, time.monotonic()
        if started is not None and now - started >= TURN_WAIT:
            return max(started + ATTEMPT - now, TURN_WAIT)
        return TURN_WAIT / 2

    def publish(self, envelopes: list[dict]) -> None:
        """Send ``envelopes`` and return once the broker confirmed each; raise otherwise,
        TimeoutError after ``ATTEMPT`` seconds (the publisher is then abandoned)."""
        if not envelopes:
            return
        self.attempt_started = started = time.monotonic()
        try:
            run_until(started + ATTEMPT, lambda: self._attempt(envelopes),
                      f"publish {self.name}", then=self._close_if_abandoned)
        except Unfinished:
            self.abandoned = True
            self.cut()
            raise TimeoutError(f"no confirmation within {ATTEMPT:g}s (the whole attempt)") \
                from None
        finally:
            self.attempt_started = None

    def _close_if_abandoned(self) -> None:
        if self.abandoned:
            self.close()

    def _attempt(self, envelopes: list[dict]) -> None:
        reused = self.connected()
        try:
            if not reused:
                self.close()  # whatever is left of a broken connection (paho's loop thread)
                self.connect()
            self.send(envelopes)
            return
        except Exception as exc:
            self.close()
            if not reused or self.abandoned:
                raise
            # A connection kept across batches may have died while idle (broker restart,
            # idle timeout): that is no reason to back off, so try once on a fresh one.
            log.info("%s: kept connection failed (%s), reconnecting", self.name, exc)
        try:
            self.connect()
            self.send(envelopes)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Drop the connection (never raises); the next ``publish`` opens a new one."""
        try:
            self.disconnect()
        except Exception as exc:  # a dead connection may fail to close; it is gone anyway
            log.debug("%s: close failed: %s", self.name, exc)

    def cut(self) -> None:
        """From another thread: end what an attempt waits for, now (never raises). A polite
        close may itself wait on the broker; a broker's publisher shuts its sockets down."""
        self.close()

    # --- per broker ----------------------------------------------------------------------

    def connected(self) -> bool:
        raise NotImplementedError

    def connect(self) -> None:
        raise NotImplementedError

    def send(self, envelopes: list[dict]) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        raise NotImplementedError

