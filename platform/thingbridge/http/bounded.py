"""Provider calls bounded as a whole: time, size and where they go.

requests' ``timeout`` bounds the connect and each wait for bytes, not the answer: a provider
(or a proxy in front of it) that trickles its headers or body a byte at a time, or sends an
endless body, would hold a worker thread, and during a token refresh the client's row lock,
for as long as it liked. Mounted on a session, :class:`BoundedAdapter` makes the timeout a
deadline for the whole call, from connect to the last byte of the body (the outbound watchdog
shuts the socket down when it passes, whatever stage the exchange is in), and reads at most
``MAX_ANSWER`` bytes of a body, counted after decompression. :func:`within` bounds several
calls together (a poll's, within its lease). The provider's name is looked up under the same
deadline (``addresses.resolve``): the system resolver alone may wait half a minute for a name
server that does not answer. A redirect is not followed: its target is not a URL the operator
configured, and requests would post a token request's client secret there.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from thingbridge.http import addresses, breaker
from thingbridge.http.watchdog import watchdog

MAX_ANSWER = 4 * 1024 * 1024  # bytes of a provider's body; its largest real answers are KiB
CHUNK = 64 * 1024

# This thread's call: its deadline and watched sockets; and the deadline of what it is part of.
_call = threading.local()
_serials = itertools.count()


class AnswerTooLarge(requests.RequestException):
    """The provider's body passed MAX_ANSWER bytes."""


class _Watched:
    """Connection mixin: the name looked up and a socket in use for a bounded call watched,
    until its deadline."""

    def _new_conn(self) -> socket.socket:
        deadline = getattr(_call, "deadline", None)
        if deadline is None:
            return super()._new_conn()
        try:
            found = addresses.resolve(self._dns_host, self.port, deadline - time.monotonic(),
                                      f"provider:{self._dns_host}")
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"{exc} (the call's deadline)") from exc
        error: OSError | None = None
        for address in found:  # in the resolver's order, each tried as urllib3 tries them
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = min(self.timeout, left) if isinstance(self.timeout, int | float) else left
            try:
                return create_connection((str(address), self.port), wait,
                                         source_address=self.source_address,
                                         socket_options=self.socket_options)
            except OSError as exc:  # a timeout too: the next address may answer
                error = exc
        if error is None or isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out")
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    def connect(self):
        super().connect()
        self._watch()

    def request(self, *args, **kwargs):
        if self.sock is not None:  # a kept-alive connection: connect() is not called again
            self._watch()
        return super().request(*args, **kwargs)

    def _watch(self):
        # Once per call and socket: a call that connects is also asked to watch in request().
        call = getattr(_call, "serial", None)
        if _call.deadline is None or self.sock is None or getattr(self, "_watched", None) == (
                self.sock, call):
            return
        self._watched = (self.sock, call)
        _call.handles.append(watchdog.watch(self.sock, _call.deadline))


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _seconds(timeout) -> float | None:
    if isinstance(timeout, tuple):
        known = [t for t in timeout if t is not None]
        return max(known) if known else None
    return timeout


class BoundedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy, **kwargs):
        manager = super().proxy_manager_for(proxy, **kwargs)
        if manager.pool_classes_by_scheme.get("http") is HTTPConnectionPool:  # not SOCKS's own
            manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager

    def send(self, request, stream=False, timeout=None, **kwargs):
        outer = getattr(_call, "outer", None)
        if outer is not None and outer <= time.monotonic():
            raise _late(request)  # the work's budget is spent: not sent, so not the provider's
        address = urlsplit(request.url).netloc
        probe = breaker.admit(address, request)
        try:
            response = self._send(request, stream, timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            breaker.unanswered(address, probe, exc)
            raise
        except BaseException:
            breaker.answered(address)  # it answered, if not what was wanted (too large)
            raise
        breaker.answered(address)
        return response

    def _send(self, request, stream, timeout, **kwargs):
        seconds, now = _seconds(timeout), time.monotonic()
        ends = [t for t in (None if seconds is None else now + seconds,
                            getattr(_call, "outer", None)) if t is not None]
        deadline = min(ends) if ends else None
        if deadline is not None:
            if deadline <= now:
                raise _late(request)
            timeout = deadline - now  # so that connecting (TLS included) ends by it too
        _call.deadline, _call.handles, _call.serial = deadline, [], next(_serials)
        response = error = None
        try:
            response = super().send(request, stream=True, timeout=timeout, **kwargs)
            if not stream:  # a streamed body is the caller's to bound
                _read_body(response)
        except requests.RequestException as exc:
            error = exc
        finally:  # whatever ends the call, no socket stays watched (it may go back to a pool)
            cut = _release()
            _call.deadline = None
        # A cut may also end what looks like an answer: headers end at end of file.
        if cut:
            # Its socket may be back in a pool, and the watchdog's shutdown may not have come
            # yet: no later call takes it.
            self.close()
            if response is not None:
                response.close()
            raise _late(request) from error
        if error is not None:
            raise error
        return response


def _late(request) -> requests.ReadTimeout:
    return requests.ReadTimeout("no whole answer in time (the call's timeout, or what was left "
                                "of the budget of the work it is part of)", request=request)


@contextmanager
def within(seconds: float):
    """Every bounded call this thread makes inside ends within ``seconds`` from now too."""
    outer = getattr(_call, "outer", None)
    ends = time.monotonic() + seconds
    _call.outer = ends if outer is None else min(outer, ends)
    try:
        yield
    finally:
        _call.outer = outer


def _release() -> bool:
    """Stop watching this call's sockets; True if its deadline cut one."""
    handles, _call.handles = getattr(_call, "handles", []), []
    return any([watchdog.release(handle) for handle in handles])


def _read_body(response: requests.Response) -> None:
    """What ``response.content`` reads, at most MAX_ANSWER bytes of it."""
    chunks, size = [], 0
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        if size > MAX_ANSWER:
            response.close()
            raise AnswerTooLarge(f"answer larger than {MAX_ANSWER} bytes",
                                 request=response.request, response=response)
        chunks.append(chunk)
    response._content, response._content_consumed = b"".join(chunks), True


def mount(session: requests.Session) -> requests.Session:
    """Bound every call ``session`` makes, and follow no redirect (see the module's
    description): a redirect raises ``TooManyRedirects``."""
    adapter = BoundedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = 0
    return session
