"""The one HTTP client for everything sent to an app's URL (webhooks, action callbacks).

Each send resolves the URL's host, keeps only the addresses the outbound policy allows
(``addresses``) and connects to one of them, sending the original Host header and TLS server
name, so a name that changes between the check and the connection (DNS rebinding) gets
nowhere. Redirects are not followed. One deadline bounds connect, send and read together
(``watchdog``); answers are read raw (``Accept-Encoding: identity``, nothing is decompressed)
and at most ``MAX_READ`` bytes of them, of which ``EXCERPT`` are kept. What comes back is the
status and a short classified reason for failures, nothing about the network beyond that.

Connections are kept alive per (scheme, host, port, address): a pooled connection was made to
a checked address, and a new one is made only after a fresh check.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import certifi

from thingbridge.http import addresses
from thingbridge.http.urls import plain_http_allowed
from thingbridge.http.watchdog import watchdog

MAX_READ = 64 * 1024  # bytes read of an answer; a longer one costs its connection
EXCERPT = 300  # bytes of an answer kept as text
IDLE_PER_DESTINATION = 8
USER_AGENT = "Thingbridge"


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer (``reason`` says why)
    reason: str | None = None  # classified: "timeout", "connection refused", ...
    text: str = ""  # the first EXCERPT bytes of the answer, decoded
    headers: dict = field(default_factory=dict)


class _LastLine:
    """A file whose last line read is known: whether a header block ended."""

    def __init__(self, fp):
        self.fp, self.last = fp, b""

    def readline(self, *args):
        self.last = self.fp.readline(*args)
        return self.last

    def __getattr__(self, name):
        return getattr(self.fp, name)


class _WholeResponse(http.client.HTTPResponse):
    """An answer whose header block ends: http.client takes the end of the connection for the
    blank line, so a receiver that closed mid-headers gave a "200"."""

    def begin(self):
        real = self.fp
        self.fp = watched = _LastLine(real)
        try:
            super().begin()
            ended = watched.last in (b"\r\n", b"\n")
        finally:
            if self.fp is watched:  # not when http.client closed it (a status line it refused)
                self.fp = real
        if not ended:
            raise http.client.IncompleteRead(b"", None)


class _Pinned(http.client.HTTPConnection):
    """A connection to a checked address that speaks TLS with the URL's host name."""

    response_class = _WholeResponse

    def __init__(self, address: str, port: int, timeout: float, server_name: str | None,
                 context: ssl.SSLContext | None):
        super().__init__(address, port, timeout=timeout)
        self._server_name, self._context = server_name, context

    def connect(self) -> None:
        super().connect()
        if self._context is not None:
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


_tls = ssl.create_default_context(cafile=certifi.where())
_idle: dict[tuple, list[_Pinned]] = {}
_idle_lock = threading.Lock()


def _take_idle(key: tuple) -> _Pinned | None:
    with _idle_lock:
        pool = _idle.get(key)
        return pool.pop() if pool else None


def _give_back(key: tuple, conn: _Pinned) -> None:
    with _idle_lock:
        pool = _idle.setdefault(key, [])
        if len(pool) < IDLE_PER_DESTINATION:
            pool.append(conn)
            return
    conn.close()


def _classify(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls error"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, socket.gaierror | UnicodeError):
        return "name does not resolve"
    if isinstance(exc, http.client.LineTooLong | http.client.HTTPException):
        return "invalid http answer"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset"
    return "unreachable"


def post(url: str, body: bytes, headers: dict, deadline: float, allow: tuple,
         owner: str = "") -> Answer:
    """POST ``body`` to ``url`` within ``deadline`` seconds, under the ``allow`` policy; the
    name looked up for ``owner``, the app whose URL it is (``lookups``)."""
    until = time.monotonic() + deadline
    try:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        host = parts.hostname or ""
        address = addresses.allowed_addresses(host, port, allow, deadline, owner)[0]
    except addresses.RefusedAddress:
        return Answer(None, "refused address")
    except (OSError, UnicodeError, ValueError) as exc:
        return Answer(None, _classify(exc))
    if parts.scheme not in ("http", "https"):
        return Answer(None, "refused address")
    if not https and not plain_http_allowed(address, allow):
        return Answer(None, "refused address (plain http)")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent_headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": USER_AGENT,
                    "Accept-Encoding": "identity", **headers}
    key = (parts.scheme, host, port, str(address))
    reused = _take_idle(key)
    answer = _exchange(reused, key, target, body, sent_headers, until, https)
    if reused is not None and answer.status is None and answer.reason == "stale":
        # A kept-alive connection the receiver had closed: once more on a new one.
        answer = _exchange(None, key, target, body, sent_headers, until, https)
    if answer.reason == "stale":
        answer.reason = "connection reset"
    return answer


def _exchange(conn: _Pinned | None, key: tuple, target: str, body: bytes, headers: dict,
              until: float, https: bool) -> Answer:
    fresh = conn is None
    remaining = until - time.monotonic()
    if remaining <= 0:
        return Answer(None, "timeout")
    handle = None
    try:
        if conn is None:
            _scheme, host, port, address = key
            conn = _Pinned(address, port, remaining, host if https else None,
                           _tls if https else None)
            conn.connect()  # bounded by the socket timeout: the watchdog needs a socket
        handle = watchdog.watch(conn.sock, until)
        conn.sock.settimeout(max(until - time.monotonic(), 0.001))
        conn.request("POST", target, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(MAX_READ)
        if len(data) < MAX_READ and resp.length:  # the body ended before its Content-Length
            raise http.client.IncompleteRead(data, resp.length)
        reusable = not resp.will_close and resp.isclosed()
        answer = Answer(resp.status, None, data[:EXCERPT].decode("utf-8", "replace"),
                        {k.title(): v for k, v in resp.getheaders()})
    except Exception as exc:  # everything the network can raise becomes a reason
        cut = handle is not None and watchdog.release(handle)
        handle = None
        if conn is not None:
            conn.close()
        if cut:
            return Answer(None, "timeout")
        if not fresh and isinstance(exc, http.client.RemoteDisconnected | ConnectionError
                                    | BrokenPipeError):
            return Answer(None, "stale")
        return Answer(None, _classify(exc))
    if watchdog.release(handle):  # the deadline cut it: whatever was read is not an answer
        conn.close()
        return Answer(None, "timeout")
    if reusable:
        _give_back(key, conn)
    else:
        conn.close()
    return answer
