"""gunicorn workers whose own error answers are the API's standard JSON error body.

gunicorn answers a request it cannot frame (a request line or headers beyond its limits, a
malformed header, a bad chunk) before the application sees it, with a short HTML page. These
workers keep gunicorn's decision (status and reason) and replace only the page. gunicorn has no
hook for that body: its error writer sends the whole answer with one ``sendall`` on the
client's socket, so the socket handed to it here writes the JSON answer instead.
"""

from __future__ import annotations

import json
import sys

from gunicorn.config import KNOWN_SETTINGS
from gunicorn.http.errors import InvalidHeader
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from thingbridge.auth.guard import SUBJECT_HEADER
from thingbridge.errors import CODES

# gunicorn's default limits, which `thingbridge api` keeps.
DESCRIPTIONS = {
    400: "malformed HTTP request (request line, header or chunked body)",
    414: "request line too long: method, path and query must fit in 4094 bytes",
    431: "request headers too large: at most 100 header fields of 8190 bytes each",
    501: "unsupported transfer coding",
}


class RepeatedSubject(InvalidHeader):
    """The subject header sent twice names no one end user: WSGI joins the values
    (``alice,bob``, a third subject), while a proxy reading the first one sees ``alice``."""

    description = f"header {SUBJECT_HEADER} sent more than once"

    def __init__(self):
        super().__init__(SUBJECT_HEADER)


_SUBJECT = SUBJECT_HEADER.upper()  # as gunicorn holds header names


def refuse_repeated_subject(worker, req) -> None:
    """gunicorn's ``pre_request`` hook: the headers as sent, before WSGI joins them."""
    if sum(name.upper() == _SUBJECT for name, _value in req.headers) > 1:
        raise RepeatedSubject()


def json_error(answer: bytes, description: str | None = None) -> bytes:
    """gunicorn's HTML error answer rewritten with the standard JSON error body."""
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    _, code, reason = (status_line.split(" ", 2) + ["", ""])[:3]
    status = int(code) if code.isdigit() else 500
    body = json.dumps({"status": status, "error": CODES.get(status, "ERROR"),
                       "description": description or DESCRIPTIONS.get(
                           status, reason.lower() or "error")},
                      separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _JsonErrorSocket:
    """The client's socket, but what is sent on it is gunicorn's error answer: sent as JSON."""

    def __init__(self, sock, description: str | None):
        self._sock, self._description = sock, description

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def sendall(self, data):
        return self._sock.sendall(json_error(bytes(data), self._description))


class _JsonErrors:
    def init_process(self):
        configured = self.cfg.pre_request  # a gunicorn config file's own hook runs after

        def pre_request(worker, req):
            refuse_repeated_subject(worker, req)
            configured(worker, req)

        self.cfg.set("pre_request", pre_request)
        super().init_process()

    def handle_error(self, req, client, addr, exc):
        description = exc.description if isinstance(exc, RepeatedSubject) else None
        super().handle_error(req, _JsonErrorSocket(client, description), addr, exc)


class JsonErrorSyncWorker(_JsonErrors, SyncWorker):
    def handle(self, listener, client, addr):
        # A sync worker reading a request that stopped arriving is killed at gunicorn's
        # timeout, and the client gets a 500. A read deadline inside that timeout (its half,
        # when the worker reports alive) ends the read instead: the app answers 408. No
        # timeout (0) keeps the socket blocking, as gunicorn leaves it.
        client.settimeout(self.timeout or None)
        super().handle(listener, client, addr)


class JsonErrorThreadWorker(_JsonErrors, ThreadWorker):
    pass


# gunicorn 25.1 and later open a control socket for gunicornc at one path per user, which
# every API on the host would share: the last one started takes it over and the first one
# stopped removes it. Nothing here uses gunicornc (the master takes gunicorn's signals).
NO_CONTROL_SOCKET = ["--no-control-socket"] if any(
    setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS) else []


def serve_command(workers: int, threads: int, bind: str, *options: str) -> list[str]:
    """The command serving the API under gunicorn: its sync worker, or gthread with more than
    one thread (as gunicorn picks), either answering its own errors in JSON."""
    worker = JsonErrorThreadWorker if threads > 1 else JsonErrorSyncWorker
    return [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads),
            "-b", bind, "-k", f"{__name__}.{worker.__name__}", *NO_CONTROL_SOCKET, *options,
            "thingbridge.wsgi:app"]
