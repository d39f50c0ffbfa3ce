"""Request bodies are read whole before the view, so that how a body arrived is answered for
what it is, in the standard error body: one beyond THINGBRIDGE_MAX_BODY is a 413 however it
is framed, and one that stops arriving is a 408, not a 400 about its content."""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from thingbridge.errors import ApiError


def read_whole() -> None:
    try:
        data = request.get_data(cache=True)
        if _cut_at_the_limit(len(data)):
            raise RequestEntityTooLarge()
    except (ClientDisconnected, OSError) as exc:
        if _timed_out(exc):
            raise ApiError(408, "the request body stopped arriving before its end") from exc
        raise


def _cut_at_the_limit(length: int) -> bool:
    """Whether a chunked body was cut at the limit with more to come. werkzeug refuses a
    Content-Length beyond the limit, but reads a chunked body up to the limit and stops there
    without a word: the parser would then call the rest of a valid body invalid JSON."""
    limit, environ = request.max_content_length, request.environ
    return (limit is not None and length >= limit and "CONTENT_LENGTH" not in environ
            and "wsgi.input_terminated" in environ and bool(environ["wsgi.input"].read(1)))


def _timed_out(exc: BaseException | None) -> bool:
    # werkzeug raises ClientDisconnected for any failed read; the socket's own timeout (the
    # worker's read deadline, gunicorn_workers) is what it was raised from.
    while exc is not None:
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__context__
    return False
