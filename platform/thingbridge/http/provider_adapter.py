"""A requests transport adapter over ``http.client`` for the provider sessions plugins get.

requests' own adapter goes through urllib3, which costs about three times the CPU of
``http.client`` for one small request; a poll makes up to three. This adapter serves the plain
case, a buffered request with a bytes body and no proxy or client certificate, and hands every
other one (streaming, proxies, client certificates, no verification, iterable bodies) to a
stock ``HTTPAdapter``, so plugins keep the whole ``requests.Session`` interface.

What it keeps from the stock path: connect and read timeouts (``ConnectTimeout``,
``ReadTimeout``), requests' exceptions for every network failure (``ConnectionError``,
``SSLError``, ``ChunkedEncodingError`` for an answer cut short), certificates verified against
the same bundle requests uses (certifi, or the path given as ``verify``) with host names
checked, gzip and deflate answers decoded, whole answers read with no size limit, and
connections kept alive per scheme, host and port, cookies an answer sets on the response.
They are not put in the session's jar: the provider sessions keep none (``registry._session``).
"""

from __future__ import annotations

import http.client
import io
import os
import select
import ssl
import threading
import zlib
from types import SimpleNamespace
from urllib.parse import urlsplit

import certifi
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

IDLE_PER_HOST = 10  # requests' pool_maxsize
# A request sent on a kept-alive connection the server had just closed is sent once more on a
# new one, but only when sending it twice is harmless.
RESENDABLE = frozenset({"GET", "HEAD", "OPTIONS"})
_DISCONNECTED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
# The answer codings this adapter decodes; a request that accepts another (requests offers br
# and zstd where their decoders are installed) goes to requests' own adapter.
DECODED = frozenset({"gzip", "x-gzip", "deflate", "identity", ""})

_contexts: dict[str, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _tls_context(verify) -> ssl.SSLContext:
    """A verifying context for requests' ``verify`` (True: certifi's bundle, as requests)."""
    where = certifi.where() if verify is True else verify
    with _contexts_lock:
        if where not in _contexts:
            if os.path.isdir(where):
                _contexts[where] = ssl.create_default_context(capath=where)
            else:
                _contexts[where] = ssl.create_default_context(cafile=where)
        return _contexts[where]


def _timeouts(timeout) -> tuple[float | None, float | None]:
    if isinstance(timeout, tuple):
        try:
            connect, read = timeout
        except ValueError:
            raise ValueError(f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, "
                             "or a single float to set both timeouts to the same value.") from None
        return connect, read
    return timeout, timeout


def _decoded(body: bytes, encoding: str | None) -> bytes:
    for coding in reversed([c.strip().lower() for c in (encoding or "").split(",")]):
        try:
            if coding == "gzip" or coding == "x-gzip":
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:  # some servers send raw deflate without the zlib header
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif coding not in ("", "identity"):
                raise requests.exceptions.ContentDecodingError(
                    f"unsupported content encoding {coding!r}")
        except zlib.error as exc:
            raise requests.exceptions.ContentDecodingError(
                f"answer could not be decoded as {coding}: {exc}") from exc
    return body


def _decodable(accepted: str | None) -> bool:
    return all(coding.split(";")[0].strip().lower() in DECODED
               for coding in (accepted or "").split(","))


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle connection the server closed (or wrote to) since: readable with nothing asked."""
    sock = conn.sock
    if sock is None:
        return True
    poller = select.poll()  # not select(): descriptors above 1023 are fine
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class ProviderAdapter(BaseAdapter):
    def __init__(self):
        super().__init__()
        self._fallback = HTTPAdapter()
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        if (stream or cert or not verify or proxies
                or not (body is None or isinstance(body, bytes))
                or not _decodable(request.headers.get("Accept-Encoding"))):
            return self._fallback.send(request, stream=stream, timeout=timeout, verify=verify,
                                       cert=cert, proxies=proxies)
        parts = urlsplit(request.url)
        https = parts.scheme == "https"
        if not parts.hostname:
            raise requests.exceptions.InvalidURL(f"no host in {request.url!r}")
        key = (parts.scheme, parts.hostname, parts.port or (443 if https else 80),
               verify if https else None)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connect_timeout, read_timeout = _timeouts(timeout)
        conn = self._take_idle(key)
        if conn is not None:
            try:
                return self._exchange(conn, key, request, target, body, read_timeout)
            except _Stale as exc:
                if request.method not in RESENDABLE:
                    raise requests.ConnectionError(exc.__cause__,
                                                   request=request) from exc.__cause__
        conn = self._connect(key, request, connect_timeout)
        try:
            return self._exchange(conn, key, request, target, body, read_timeout)
        except _Stale as exc:
            raise requests.ConnectionError(exc.__cause__, request=request) from exc.__cause__

    def close(self):
        with self._lock:
            idle, self._idle = self._idle, {}
        for pool in idle.values():
            for conn in pool:
                conn.close()
        self._fallback.close()

    def _take_idle(self, key: tuple) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                pool = self._idle.get(key)
                conn = pool.pop() if pool else None
            if conn is None or not _dropped(conn):
                return conn
            conn.close()

    def _give_back(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            pool = self._idle.setdefault(key, [])
            if len(pool) < IDLE_PER_HOST:
                pool.append(conn)
                return
        conn.close()

    def _connect(self, key: tuple, request, timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port, verify = key
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=_tls_context(verify))
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()  # TCP and TLS handshake, both under the connect timeout
        except TimeoutError as exc:
            conn.close()
            raise requests.ConnectTimeout(exc, request=request) from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            conn.close()
            raise requests.exceptions.SSLError(exc, request=request) from exc
        except OSError as exc:  # refused, unreachable, name not resolved
            conn.close()
            raise requests.ConnectionError(exc, request=request) from exc
        return conn

    def _exchange(self, conn, key: tuple, request, target: str, body: bytes | None,
                  read_timeout: float | None) -> requests.Response:
        """One request and its whole answer on ``conn``; raises ``_Stale`` when the server
        closed the connection before answering anything."""
        started = False
        try:
            conn.sock.settimeout(read_timeout)
            conn.request(request.method, target, body=body, headers=request.headers)
            try:
                answer = conn.getresponse()
            except _DISCONNECTED as exc:
                raise _Stale() from exc
            started = True
            data = answer.read()
        except _Stale:
            conn.close()
            raise
        except TimeoutError as exc:
            conn.close()
            raise requests.ReadTimeout(exc, request=request) from exc
        except ssl.SSLError as exc:
            conn.close()
            raise requests.exceptions.SSLError(exc, request=request) from exc
        except (http.client.IncompleteRead, ConnectionError) as exc:
            conn.close()
            if started:  # the answer was cut short
                raise requests.exceptions.ChunkedEncodingError(exc, request=request) from exc
            if isinstance(exc, ConnectionResetError | BrokenPipeError):
                raise _Stale() from exc  # the send met a connection already closed
            raise requests.ConnectionError(exc, request=request) from exc
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            raise requests.ConnectionError(exc, request=request) from exc
        if answer.will_close:
            conn.close()
        else:
            self._give_back(key, conn)
        return self._response(request, answer, data)

    def _response(self, request, answer: http.client.HTTPResponse,
                  data: bytes) -> requests.Response:
        headers = CaseInsensitiveDict()
        for name, value in answer.getheaders():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response = requests.Response()
        response.status_code, response.reason = answer.status, answer.reason
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        content = _decoded(data, headers.get("Content-Encoding")) if data else data
        response._content, response._content_consumed = content, True
        response.raw = io.BytesIO(content)
        response.url, response.request, response.connection = request.url, request, self
        if "Set-Cookie" in headers:  # the plugin sees them; the session's jar is not fed
            extract_cookies_to_jar(response.cookies, request,
                                   SimpleNamespace(_original_response=answer))
        return response


class _Stale(Exception):
    """The server closed the connection before any byte of an answer."""
