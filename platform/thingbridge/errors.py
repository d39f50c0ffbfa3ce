"""The one error body of the API: ``{"status": int, "error": CODE, "description": str}``.

Every error is an ``HTTPException`` (werkzeug's own, webargs' validation aborts, ``ApiError``),
so one handler, the ``Api``'s (``api/error_body.py``), writes every error body; anything else is
a 500 in the same body. This module stays free of the API stack: workers raise these too.
"""

from __future__ import annotations

from werkzeug.exceptions import HTTPException

CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE", 408: "REQUEST_TIMEOUT", 409: "CONFLICT",
    410: "GONE",
    413: "PAYLOAD_TOO_LARGE", 414: "URI_TOO_LONG", 415: "UNSUPPORTED_MEDIA_TYPE",
    417: "EXPECTATION_FAILED", 422: "UNPROCESSABLE_CONTENT", 424: "FAILED_DEPENDENCY",
    429: "TOO_MANY_REQUESTS",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE", 500: "INTERNAL_ERROR", 501: "NOT_IMPLEMENTED",
    502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE",
}


class ApiError(HTTPException):
    """An answer in the standard body: ``error`` defaults to the status's code, ``extra``
    fields (e.g. ``errors``) join the body."""

    def __init__(self, status: int, description: str, error: str | None = None, **extra):
        super().__init__(description)
        self.code = status
        self.error = error or CODES.get(status, "ERROR")
        self.extra = extra


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, f"{what} not found")


def found(row, what: str):
    """``row``, or a 404 ``{what} not found`` when there is none (``None``)."""
    if row is None:
        raise not_found(what)
    return row
